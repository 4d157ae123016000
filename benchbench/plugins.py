"""Plugin discovery and the registries of everything plugins register.

Plugins come from the entry-point group ``benchbench`` (the built-ins too, declared in our own
pyproject.toml) and from ``--plugin module.path`` for modules that are not installed. Each hook
implementation is called on its own, so a plugin that fails to import, raises, or registers a
malformed object is reported once, by name and distribution, and contributes nothing; every other
plugin keeps working. ``BENCHBENCH_PLUGINS=name,name`` restricts which entry points load, so a
results table can say exactly which code produced it.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from benchbench import hookspecs
from benchbench.errors import DuplicateNameError, UsageError
from benchbench.params import Param, unknown_name
from benchbench.specs import Backend, DatasetFamily, Executor, Metric, Objective, Report, Sampler

ENTRY_POINT_GROUP = "benchbench"
BUILTIN_DISTRIBUTION = "benchbench"

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
    conflicts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """broken (contributes nothing), conflict (a name it registers is not its), warning, or ok."""
        return "broken" if self.error else "conflict" if self.conflicts else "warning" if self.warnings else "ok"

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

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
        except Exception as error:  # noqa: BLE001 - the user named the module: a bad name is bad input (exit 2)
            raise UsageError(f"--plugin {module_name}: failed to import: {type(error).__name__}: {error}") from None
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
        self._check_hook_names()

    def _check_hook_names(self) -> None:
        """A hook implementation whose name no hook has (a typo) is never called: pluggy's ``check_pending``
        would raise on the first; say it once per implementation, with the closest hook name."""
        known = [name for name in dir(hookspecs) if name.startswith("register_")]
        for name, caller in vars(self.manager.hook).items():
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                info = self.plugins.get(impl.plugin_name)
                if impl.optionalhook or info is None or info.error:
                    continue
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; hooks: {', '.join(known)}"
                info.warnings.append(f"hook {name!r} is unknown")
                self.errors.append(
                    f"{info.label}: hook implementation {name!r} matches no benchbench hook and is never called{hint}"
                )

    def _add(self, kind: str, obj: Any, info: PluginInfo) -> None:
        registry = self.registries[kind]
        key = (kind, obj.name)
        if key in self.conflicts:
            self.conflicts[key].append(info)
            info.conflicts.append(f"{kind} {obj.name!r}")
            return
        if obj.name in registry and info.builtin != registry[obj.name][1].builtin:
            # A built-in keeps its name: a results table that says "denoising" must mean ours, and a plugin must
            # not silently disable a built-in. The plugin's object is ignored, and said so.
            builtin, other = (info, registry[obj.name][1]) if info.builtin else (registry[obj.name][1], info)
            if info.builtin:
                registry[obj.name] = (obj, info)
                info.registered.setdefault(kind, []).append(obj.name)
                other.registered[kind].remove(obj.name)
            other.conflicts.append(f"{kind} {obj.name!r}")
            self.errors.append(
                f"{other.label}: its {kind} {obj.name!r} is ignored: the name belongs to the built-in "
                f"{builtin.label}; the plugin must register it under another name"
            )
            return
        if obj.name in registry:
            first = registry.pop(obj.name)[1]
            first.registered[kind].remove(obj.name)
            first.conflicts.append(f"{kind} {obj.name!r}")
            info.conflicts.append(f"{kind} {obj.name!r}")
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
