"""``--set TARGET.FIELD=VALUE``: change one field of a method config or of the quantizer."""

from __future__ import annotations

import ast
import dataclasses
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
        except (ValueError, SyntaxError):
            value = raw  # bare words are strings
        out.setdefault(target, {})[field_name] = value
    return out


def describe(changes: dict[str, Any]) -> str:
    """``{"lr_s": 1e-05}`` → ``lr_s=1e-05``: how tables and plans name a variant."""
    return ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))


def labelled(name: str, changes: dict[str, Any]) -> str:
    """``GDFQ (lr_s=1e-05)``, or just ``GDFQ`` without changes."""
    return f"{name} ({describe(changes)})" if changes else name


def apply(obj: Any, changes: dict[str, Any], what: str) -> Any:
    """A copy of the dataclass ``obj`` with ``changes``, type-checked against its fields."""
    if not changes:
        return obj
    fields = {f.name: f for f in dataclasses.fields(obj)}
    coerced = {}
    for name, value in changes.items():
        if name not in fields:
            raise unknown("field", name, fields, f" of {what}")
        current = getattr(obj, name)
        coerced[name] = _coerce(value, current, f"{what}.{name}")
    return dataclasses.replace(obj, **coerced)


def _coerce(value: Any, current: Any, where: str) -> Any:
    if current is None or value is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    elif isinstance(value, type(current)) and not isinstance(value, bool):
        return value
    raise DfqError(f"bad --set value for {where}: {value!r} is not of type {type(current).__name__}")
