"""Plugin discovery with pluggy over the ``dfqbench`` entry-point group.

Every plugin, built-in or third-party, is a module named by an entry point. Loading is
isolated per plugin: one that fails to import, whose hook raises, or that contributes a
name another plugin already took is reported (plugin, distribution, error) and everything
else still works. The built-in distribution loads first, so a third party cannot shadow a
built-in name; among the others the order is sorted and therefore deterministic.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from dfqbench import hookspecs
from dfqbench.api import DatasetInfo, MethodInfo, ModelInfo, SuiteInfo
from dfqbench.errors import unknown

GROUP = "dfqbench"
BUILTIN_DIST = "dfqbench"

T = TypeVar("T")


@dataclass(frozen=True)
class Plugin:
    """One entry point of the ``dfqbench`` group and the distribution that declared it."""

    name: str
    module: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Problem:
    """A plugin that could not be used, or a contribution that was rejected."""

    plugin: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} (distribution {self.distribution}): {self.error}"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A contributed description together with the plugin it came from."""

    info: T
    plugin: Plugin


@dataclass
class Registry:
    plugins: list[Plugin] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    methods: dict[str, Entry[MethodInfo]] = field(default_factory=dict)
    models: dict[str, Entry[ModelInfo]] = field(default_factory=dict)
    datasets: dict[str, Entry[DatasetInfo]] = field(default_factory=dict)
    suites: dict[str, Entry[SuiteInfo]] = field(default_factory=dict)

    def method(self, name: str) -> Entry[MethodInfo]:
        return _lookup(self.methods, "method", name)

    def model(self, name: str) -> Entry[ModelInfo]:
        return _lookup(self.models, "model", name)

    def dataset(self, name: str) -> Entry[DatasetInfo]:
        return _lookup(self.datasets, "dataset", name)

    def suite(self, name: str) -> Entry[SuiteInfo]:
        return _lookup(self.suites, "suite", name)


def _lookup(table: dict[str, Entry[Any]], kind: str, name: str) -> Entry[Any]:
    try:
        return table[name]
    except KeyError:
        raise unknown(kind, name, table) from None


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    eps = list(importlib.metadata.entry_points(group=group))

    def order(ep: importlib.metadata.EntryPoint) -> tuple[bool, str, str]:
        dist = ep.dist.name if ep.dist else ""
        return (dist != BUILTIN_DIST, dist, ep.name)

    return sorted(eps, key=order)


_HOOKS = (
    ("dfqbench_methods", "methods", MethodInfo),
    ("dfqbench_models", "models", ModelInfo),
    ("dfqbench_datasets", "datasets", DatasetInfo),
    ("dfqbench_suites", "suites", SuiteInfo),
)


def load_registry(group: str = GROUP) -> Registry:
    """Discover, import and register every plugin of ``group``; collect what they add."""
    pm = pluggy.PluginManager("dfqbench")
    pm.add_hookspecs(hookspecs)
    reg = Registry()
    by_name: dict[str, Plugin] = {}
    for ep in _entry_points(group):
        dist = ep.dist.name if ep.dist else "?"
        plugin = Plugin(ep.name, ep.value, dist, ep.dist.version if ep.dist else "?")
        if pm.has_plugin(ep.name):
            reg.problems.append(Problem(ep.name, dist, "another plugin already uses this name"))
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # an arbitrary third-party import can fail in any way
            reg.problems.append(Problem(ep.name, dist, f"failed to load: {_describe(exc)}"))
            continue
        reg.plugins.append(plugin)
        by_name[ep.name] = plugin
    for hook_name, attr, kind in _HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # in registration order
            _collect(reg, by_name[impl.plugin_name], impl.function, getattr(reg, attr), kind)
    return reg


def _collect(reg: Registry, plugin: Plugin, hook: Any, table: dict, kind: type) -> None:
    label = kind.__name__.removesuffix("Info").lower()
    try:
        items = list(hook() or [])
    except Exception as exc:
        reg.problems.append(Problem(plugin.name, plugin.distribution, f"hook failed: {_describe(exc)}"))
        return
    for item in items:
        if not isinstance(item, kind):
            reg.problems.append(
                Problem(plugin.name, plugin.distribution, f"returned {type(item).__name__}, expected {kind.__name__}")
            )
        elif item.name in table:
            owner = table[item.name].plugin
            reg.problems.append(
                Problem(
                    plugin.name,
                    plugin.distribution,
                    f"{label} name {item.name!r} clashes with plugin {owner.name!r} "
                    f"(distribution {owner.distribution}); ignored",
                )
            )
        else:
            table[item.name] = Entry(item, plugin)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
