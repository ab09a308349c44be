"""Finding and loading plugins through the ``zoo`` entry-point group.

Each entry point is loaded on its own: one that raises on import is reported
(``zoo plugins``) and skipped, never taking the CLI down. ``ZOO_PLUGINS=a,b``
loads only those plugins, ``ZOO_PLUGINS=`` (empty) none. The registry.toml
catalog that ships with zoo is always loaded, as the plugin ``zoo``.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import ZooError, first_line
from .registry import Registry, Spec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo"
CORE_PLUGIN = "zoo"

# hook name -> registry kind
REGISTER_HOOKS = {
    "zoo_register_entries": "entry",
    "zoo_register_models": "model",
    "zoo_register_tokenizers": "tokenizer",
    "zoo_register_datasets": "dataset",
    "zoo_register_tasks": "task",
}


@dataclass
class PluginInfo:
    """What ``zoo plugins`` shows for one plugin."""

    name: str
    status: str  # "ok", "failed" or "blocked" (not in ZOO_PLUGINS)
    module: str = ""
    version: str = ""
    distribution: str = ""
    error: str = ""
    registered: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    pm: pluggy.PluginManager
    registry: Registry
    plugins: dict[str, PluginInfo]
    filter_note: str = ""  # what ZOO_PLUGINS hides, for messages about names that are not found

    def __post_init__(self) -> None:
        blocked = sorted(n for n, i in self.plugins.items() if i.status == "blocked")
        if blocked:
            self.filter_note = f"ZOO_PLUGINS hides the plugins {', '.join(blocked)}"

    def unknown_in_filter(self, environ: dict[str, str] | None = None) -> list[str]:
        """Names in ZOO_PLUGINS that no installed plugin has (typos)."""
        allowed = allowed_plugins(environ)
        return sorted(allowed - set(self.plugins)) if allowed else []


def allowed_plugins(environ: dict[str, str] | None = None) -> set[str] | None:
    """The plugin names ``ZOO_PLUGINS`` allows, or None for all."""
    environ = os.environ if environ is None else environ
    if "ZOO_PLUGINS" not in environ:
        return None
    return {p.strip() for p in environ["ZOO_PLUGINS"].split(",") if p.strip()}


def _error_line(exc: BaseException) -> str:
    line = first_line(exc, limit=10_000)
    return type(exc).__name__ if line == type(exc).__name__ else f"{type(exc).__name__}: {line}"


def load(
    entry_points: Iterable[md.EntryPoint] | None = None,
    environ: dict[str, str] | None = None,
    extra: Iterable[tuple[str, object]] = (),
) -> Loaded:
    """Build a fresh plugin manager and registry.

    ``extra`` are ``(name, plugin_object)`` pairs registered as if found by entry
    point (tests use it for fake plugins).
    """
    from . import catalog  # light: reads registry.toml only when its hook runs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    allowed = allowed_plugins(environ)
    eps = list(md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points)
    _register(pm, infos, CORE_PLUGIN, lambda: catalog, module=catalog.__name__, version=_zoo_version())
    for ep in sorted(eps, key=lambda e: e.name):
        _register_entry_point(pm, infos, ep, allowed)
    for name, obj in extra:
        if allowed is not None and name not in allowed:
            infos[name] = PluginInfo(name, "blocked", repr(obj), error="not listed in ZOO_PLUGINS")
            continue
        _register(pm, infos, name, lambda obj=obj: obj, module=getattr(obj, "__name__", repr(obj)))
    return Loaded(pm, _without_failed(_run_register_hooks(pm, infos), infos), infos)


def _register_entry_point(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], ep: md.EntryPoint,
                          allowed: set[str] | None) -> None:
    dist = getattr(ep, "dist", None)
    version = dist.version if dist is not None else ""
    dist_name = dist.metadata["Name"] if dist is not None else ""
    if ep.name in infos:
        infos[ep.name].error = (
            f"entry point '{ep.name}' is declared twice ({infos[ep.name].distribution or '?'} and "
            f"{dist_name or '?'}); the second was ignored"
        )
        return
    if allowed is not None and ep.name not in allowed:
        infos[ep.name] = PluginInfo(ep.name, "blocked", ep.value, version, dist_name, error="not listed in ZOO_PLUGINS")
        return
    _register(pm, infos, ep.name, ep.load, module=ep.value, version=version, dist=dist_name)


def _run_register_hooks(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> Registry:
    """Every plugin's ``zoo_register_*`` hooks, in the order the plugins were registered."""
    registry = Registry()
    for hook_name, kind in REGISTER_HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            info = infos[impl.plugin_name]
            if info.status != "ok":
                continue
            register = _make_register(registry, kind, impl.plugin_name, info)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except Exception as exc:  # a plugin's bug must not take zoo down
                info.status, info.error = "failed", f"{hook_name} raised {_error_line(exc)}"
                log.warning("plugin %s failed in %s: %s", impl.plugin_name, hook_name, exc)
    return registry


def _without_failed(registry: Registry, infos: dict[str, PluginInfo]) -> Registry:
    """A plugin that failed half-way through registering contributes nothing."""
    failed = {n for n, i in infos.items() if i.status == "failed"}
    if not failed:
        return registry
    clean = Registry()  # re-adding records the collisions among the remaining plugins again
    for kind in REGISTER_HOOKS.values():
        for spec in registry.specs(kind):
            if spec.plugin not in failed:
                clean.add(spec)
    for name in failed:
        infos[name].registered.clear()
    return clean


def _register(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], name: str,
              loader: Callable[[], object], *, module: str, version: str = "", dist: str = "") -> None:
    info = PluginInfo(name, "ok", module, version, dist)
    infos[name] = info
    try:
        obj = loader()
        pm.register(obj, name=name)
    except Exception as exc:
        info.status, info.error = "failed", _error_line(exc)
        log.warning("plugin %s failed to load: %s", name, exc)
        return
    try:
        pm.check_pending()  # a misspelled hook name fails loudly, and only this plugin
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        info.status, info.error = "failed", _error_line(exc)
        log.warning("plugin %s has an unknown hook: %s", name, exc)


def _make_register(registry: Registry, kind: str, plugin: str, info: PluginInfo) -> Callable[..., None]:
    if kind == "entry":
        def register_entry(name: str, entry: dict[str, Any]) -> None:
            if not isinstance(entry, dict):
                raise ZooError(f"entry '{name}' must be a table/dict, got {type(entry).__name__}")
            registry.add(Spec("entry", name, plugin, None, str(entry.get("summary", "")), dict(entry)))
            info.registered.append(f"entry:{name}")
        return register_entry

    def register(name: str, factory: Any, *, summary: str = "", **extra: Any) -> None:
        if factory is None:
            raise ZooError(f"{kind} '{name}' was registered without a factory")
        registry.add(Spec(kind, name, plugin, factory, summary, dict(extra)))
        info.registered.append(f"{kind}:{name}")
    return register


def _zoo_version() -> str:
    from . import __version__
    return __version__
