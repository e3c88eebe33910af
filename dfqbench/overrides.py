"""``--set TARGET.FIELD=VALUE``: change one field of a method config or of the quantizer."""

from __future__ import annotations

import ast
import dataclasses
import math
import reprlib
import types
import typing
from typing import Any

from dfqbench.errors import DfqError, unknown


def parse(assignments: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``["gdfq.lr_s=1e-5"]`` → ``{"gdfq": {"lr_s": 1e-05}}``."""
    out: dict[str, dict[str, Any]] = {}
    for text in assignments:
        target, dot, rest = text.partition(".")
        field_name, eq, raw = rest.partition("=")
        if not (dot and eq and target and field_name):
            raise DfqError(f"bad --set {text!r}; valid form: METHOD.FIELD=VALUE, quantizer.FIELD=VALUE or data.FIELD=VALUE")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = raw  # bare words are strings
        if target == "quantizer" and field_name == "name":
            raise DfqError("--set quantizer.name would only relabel the convention; choose one with --quantizer NAME")
        given = out.setdefault(target, {})
        if field_name in given and given[field_name] != value:
            raise DfqError(f"--set {target}.{field_name} is given twice, as {given[field_name]!r} and {value!r}; give it once")
        given[field_name] = value
    return out


def describe(changes: dict[str, Any]) -> str:
    """``{"lr_s": 1e-05}`` → ``lr_s=1e-05``: how tables and plans name a variant."""
    return ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))


def labelled(name: str, changes: dict[str, Any]) -> str:
    """``GDFQ (lr_s=1e-05)``, or just ``GDFQ`` without changes."""
    return f"{name} ({describe(changes)})" if changes else name


def apply(obj: Any, changes: dict[str, Any], what: str) -> Any:
    """A copy of the dataclass ``obj`` with ``changes``, each checked against its field's
    annotated type (``int | None``, ``tuple[float, float]`` …): one line naming the field
    and the type for anything else, before any cell runs."""
    if not changes:
        return obj
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # noqa: BLE001 - annotations that do not resolve: judge by the current values
        hints = {}
    current = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    try:
        return dataclasses.replace(obj, **_checked(changes, current, hints, what))
    except ValueError as exc:  # the config's own range and choice checks (api.check_config)
        raise DfqError(f"bad --set value for {what}: {exc}") from None


def apply_to_dict(settings: dict[str, Any], changes: dict[str, Any], what: str, whose: str) -> dict[str, Any]:
    """``settings`` (plain data, such as a suite's data settings) with ``changes``, each of
    the type of the value it replaces."""
    return {**settings, **_checked(changes, settings, {}, what, whose)}


def _checked(changes: dict[str, Any], current: dict[str, Any], hints: dict[str, Any], what: str, whose: str = "") -> dict[str, Any]:
    out = {}
    for name, value in changes.items():
        if name not in current:
            raise unknown("field", name, current, f" of {whose or what}")
        kind = hints.get(name, Any if current[name] is None else type(current[name]))
        try:
            out[name] = as_type(value, kind)
        except (TypeError, OverflowError):
            raise DfqError(f"bad --set value for {what}.{name}: {reprlib.repr(value)} is not {type_name(kind)}") from None
    return out


def as_type(value: Any, kind: Any) -> Any:
    """``value`` as a ``kind``, or TypeError. Floats must be finite: a record is strict JSON."""
    if kind is Any:
        return value
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            try:
                return as_type(value, option)
            except (TypeError, OverflowError):
                continue
    elif typing.get_origin(kind) is typing.Literal:
        if value in typing.get_args(kind):
            return value
    elif kind is type(None):
        if value is None:
            return None
    elif kind in (bool, str):
        if isinstance(value, kind):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(kind)
            if len(args) == 2 and args[1] is Ellipsis:
                args = (args[0],) * len(value)
            if len(args) == len(value):
                return tuple(as_type(v, a) for v, a in zip(value, args))
    elif isinstance(kind, type):  # any other class: an instance of it
        if isinstance(value, kind):
            return value
    else:  # an annotation this cannot check
        return value
    raise TypeError(kind)


def type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(type_name(k) for k in typing.get_args(kind))
    if kind is type(None):
        return "None"
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(kind))
    if kind is float:
        return "a finite number"
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if args[-1] is Ellipsis:
            return "a tuple of " + {int: "integers", float: "finite numbers"}.get(args[0], type_name(args[0]))
        return f"a tuple of ({', '.join(type_name(a) for a in args)})"
    return {bool: "True or False", int: "an integer", str: "a string"}.get(kind, getattr(kind, "__name__", str(kind)))
