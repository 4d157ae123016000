"""Plugin discovery and the registries of everything plugins register.

Plugins come from the entry-point group ``benchbench`` (the built-ins too, declared in our own
pyproject.toml) and from ``--plugin module.path`` for modules that are not installed. Each hook
implementation is called on its own, so a plugin that fails to import, raises, or registers a
malformed object is reported once, by name and distribution, and contributes nothing; every other
plugin keeps working. ``BENCHBENCH_PLUGINS=name,name`` restricts which entry points load, so a
results table can say exactly which code produced it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from benchbench import hookspecs
from benchbench.errors import DuplicateNameError, PluginError
from benchbench.params import Param, unknown_name
from benchbench.specs import Backend, DatasetFamily, Executor, Metric, Objective, Report, Sampler

ENTRY_POINT_GROUP = "benchbench"

KINDS: dict[str, tuple[str, type]] = {
    "objective": ("register_objectives", Objective),
    "backend": ("register_backends", Backend),
    "dataset": ("register_datasets", DatasetFamily),
    "metric": ("register_metrics", Metric),
    "sampler": ("register_samplers", Sampler),
    "report": ("register_reports", Report),
    "executor": ("register_executors", Executor),
}


@dataclass
class PluginInfo:
    """One plugin as ``bench list plugins`` shows it."""

    name: str
    module: str
    distribution: str
    version: str
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "broken" if self.error else "ok"

    @property
    def label(self) -> str:
        return f"plugin {self.name!r} (distribution {self.distribution} {self.version})"


class Plugins:
    """The loaded plugins and one registry per kind (objective, backend, dataset, ...)."""

    def __init__(self, extra_modules: Sequence[str] = (), entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[str] = []
        self.registries: dict[str, dict[str, tuple[Any, PluginInfo]]] = {kind: {} for kind in KINDS}
        self.conflicts: dict[tuple[str, str], list[PluginInfo]] = {}
        self.extra_modules = tuple(extra_modules)
        if entry_points:
            self._load_entry_points()
        for module_name in self.extra_modules:
            self._load_module(module_name)
        self._collect()

    # -- loading -----------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        allowed = os.environ.get("BENCHBENCH_PLUGINS")
        allowed_names = {name.strip() for name in allowed.split(",")} if allowed else None
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            if allowed_names is not None and entry_point.name not in allowed_names:
                continue
            dist = entry_point.dist
            info = PluginInfo(
                name=entry_point.name,
                module=entry_point.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
            )
            if entry_point.name in self.plugins:
                self._fail(info, f"entry point name also used by {self.plugins[entry_point.name].label}")
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # noqa: BLE001 - a plugin may fail in any way; we report it
                self._fail(info, f"failed to import: {type(error).__name__}: {error}")
                continue
            self._register(plugin, info)

    def _load_module(self, module_name: str) -> None:
        info = PluginInfo(name=module_name, module=module_name, distribution="(not installed)", version="-")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001
            raise PluginError(f"--plugin {module_name}: failed to import: {type(error).__name__}: {error}") from error
        self._register(module, info)

    def _register(self, plugin: ModuleType | object, info: PluginInfo) -> None:
        self.plugins[info.name] = info
        try:
            self.manager.register(plugin, name=info.name)
        except Exception as error:  # noqa: BLE001 - pluggy rejects hooks with unknown names or arguments
            self._fail(info, f"invalid hook implementation: {error}")

    def _fail(self, info: PluginInfo, problem: str) -> None:
        info.error = problem
        self.plugins.setdefault(info.name, info)
        self.errors.append(f"{info.label}: {problem}")

    # -- registration ------------------------------------------------------------------------
    def _collect(self) -> None:
        for kind, (hook_name, expected) in KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                info = self.plugins[impl.plugin_name]
                if info.error:
                    continue
                found: list[Any] = []
                try:
                    impl.function(register=found.append)
                    for obj in found:
                        _check(obj, kind, expected)
                except Exception as error:  # noqa: BLE001
                    self._fail(info, f"{hook_name} failed: {type(error).__name__}: {error}")
                    continue
                for obj in found:
                    self._add(kind, obj, info)
        for registry in self.registries.values():
            for name in [name for name, (_, info) in registry.items() if info.error]:
                del registry[name]

    def _add(self, kind: str, obj: Any, info: PluginInfo) -> None:
        registry = self.registries[kind]
        key = (kind, obj.name)
        if key in self.conflicts:
            self.conflicts[key].append(info)
            return
        if obj.name in registry:
            first = registry.pop(obj.name)[1]
            self.conflicts[key] = [first, info]
            self.errors.append(
                f"{kind} {obj.name!r} is registered by both {first.label} and {info.label}; "
                "it is unusable until one is uninstalled (or excluded with BENCHBENCH_PLUGINS)"
            )
            return
        registry[obj.name] = (obj, info)
        info.registered.setdefault(kind, []).append(obj.name)

    # -- lookup ------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.registries[kind])

    def items(self, kind: str) -> Iterable[tuple[Any, PluginInfo]]:
        return (self.registries[kind][name] for name in self.names(kind))

    def get(self, kind: str, name: str) -> Any:
        if (kind, name) in self.conflicts:
            both = " and ".join(info.label for info in self.conflicts[(kind, name)])
            raise DuplicateNameError(f"{kind} {name!r} is registered by both {both}")
        if name not in self.registries[kind]:
            raise unknown_name(kind, name, self.registries[kind])
        return self.registries[kind][name][0]

    def owner(self, kind: str, name: str) -> PluginInfo:
        return self.registries[kind][name][1]


def _check(obj: Any, kind: str, expected: type) -> None:
    """Reject malformed registrations with a message that says what is wrong with the object."""
    if not isinstance(obj, expected):
        raise TypeError(f"registered {type(obj).__name__} {obj!r:.60}, expected a benchbench.specs.{expected.__name__}")
    if not isinstance(obj.name, str) or not obj.name or any(c in obj.name for c in " :,=/"):
        raise ValueError(f"{kind} name {obj.name!r} must be a non-empty string without spaces or any of ':,=/'")
    for param in getattr(obj, "params", ()):
        if not isinstance(param, Param):
            raise TypeError(f"{kind} {obj.name!r}: params must be benchbench.params.Param, got {param!r:.60}")
        param.kind  # noqa: B018 - raises on an unknown declared type
    if kind == "metric" and obj.direction not in ("lower", "higher"):
        raise ValueError(f"metric {obj.name!r}: direction must be 'lower' or 'higher', got {obj.direction!r}")
    if kind == "objective" and not obj.losses:
        raise ValueError(f"objective {obj.name!r} implements no backend")


_LOADED: dict[tuple[str, ...], Plugins] = {}


def get_plugins(extra_modules: Sequence[str] = ()) -> Plugins:
    """The process-wide plugin manager (loaded once per set of ``--plugin`` modules)."""
    key = tuple(extra_modules)
    if key not in _LOADED:
        _LOADED[key] = Plugins(key)
    return _LOADED[key]
