"""Finding and loading plugins through the ``zoo`` entry-point group.

Each entry point is loaded on its own: one that raises on import is reported
(``zoo plugins``) and skipped, never taking the CLI down. A plugin may declare the
plugins it builds on (``ZOO_DEPENDS``, see :mod:`zoo.hookspecs`): they are registered
before it, and its entries look short names up in them. ``ZOO_PLUGINS=a,b`` loads only
those plugins and what they depend on; ``ZOO_PLUGINS=`` (empty) none. The core plugin
``zoo`` is always loaded, last: it registers the entries of ``ZOO_REGISTRY`` when set.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from zoo import hookspecs
from zoo.errors import ZooError, first_line
from zoo.registry.deps import (
    Candidate,
    HiddenPlugins,
    declared_depends,
    dependency_order,
)
from zoo.registry.entries import EntryRegister, entry_key_register
from zoo.registry.names import Registry, Spec
from zoo.runtime.untrusted import printable  # plugin names and errors come from installed packages' files

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo"
CORE_PLUGIN = "zoo"

# hook name -> registry kind; entries last, so that a variant's base and its components are registered
REGISTER_HOOKS = {
    "zoo_register_models": "model",
    "zoo_register_tokenizers": "tokenizer",
    "zoo_register_datasets": "dataset",
    "zoo_register_tasks": "task",
    "zoo_register_loggers": "logger",
    "zoo_register_entry_keys": "entry_key",  # before entries: the keys their tables may hold
    "zoo_register_entries": "entry",
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
    depends: list[str] = field(default_factory=list)  # the plugins it declares it builds on (ZOO_DEPENDS)
    note: str = ""  # e.g. "loaded because cnn depends on it (ZOO_PLUGINS does not list it)"
    warnings: list[str] = field(default_factory=list)  # name clashes, missing dependencies
    entry_keys: list[str] = field(default_factory=list)  # keys of entry tables it declared it reads


@dataclass
class Loaded:
    pm: pluggy.PluginManager
    registry: Registry
    plugins: dict[str, PluginInfo]
    # Unknown-name errors say themselves which plugin hidden by ZOO_PLUGINS provides the name
    # (zoo.registry.names.HiddenNameError); this stays empty and is kept for callers that append it.
    filter_note: str = ""

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
    from zoo.registry import catalog  # light: reads no file until a hook or a message needs it

    environ = dict(os.environ if environ is None else environ)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    eps = list(md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points)
    found = _candidates(eps, extra, infos)
    objects = _import_wanted(found, allowed_plugins(environ), infos)
    order, cycles = dependency_order({n: infos[n].depends for n in objects})
    for cycle in cycles:
        for name in dict.fromkeys(cycle):
            infos[name].warnings.append(f"dependency cycle {' -> '.join(cycle)}: loaded in name order")
    for name in order:
        _register(pm, infos, name, objects[name])
    core = catalog.CorePlugin(environ)
    infos[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, "ok", catalog.__name__, _zoo_version(), note=core.note)
    _register(pm, infos, CORE_PLUGIN, core)
    registry = _run_register_hooks(pm, infos)
    registry = registry.without(n for n, i in infos.items() if i.status == "failed")
    for info in infos.values():
        if info.status == "failed":
            info.registered.clear()
    _describe(registry, infos, found, environ)
    registry.alias = catalog.retired_id
    return Loaded(pm, registry, infos)


def _candidates(eps: list[md.EntryPoint], extra: Iterable[tuple[str, object]],
                infos: dict[str, PluginInfo]) -> dict[str, Candidate]:
    """Every plugin that could be loaded, by name; each gets a PluginInfo (``blocked`` until loaded)."""
    found: dict[str, Candidate] = {}
    for ep in sorted(eps, key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else ""
        dist_name = dist.metadata["Name"] if dist is not None else ""
        if ep.name in found:
            infos[ep.name].error = (
                f"entry point '{ep.name}' is declared twice ({infos[ep.name].distribution or '?'} and "
                f"{dist_name or '?'}); the second was ignored"
            )
            continue
        found[ep.name] = Candidate(ep.name, ep.load, ep.value, entry_point=ep)
        infos[ep.name] = PluginInfo(ep.name, "blocked", ep.value, version, dist_name, error="not listed in ZOO_PLUGINS")
    for name, obj in extra:
        found[name] = Candidate(name, lambda obj=obj: obj, getattr(obj, "__name__", repr(obj)), obj=obj)
        infos[name] = PluginInfo(name, "blocked", found[name].module, error="not listed in ZOO_PLUGINS")
    return found


def _import_wanted(found: dict[str, Candidate], allowed: set[str] | None,
                   infos: dict[str, PluginInfo]) -> dict[str, object]:
    """Import the plugins ZOO_PLUGINS allows (all without it), and what they depend on, transitively."""
    objects: dict[str, object] = {}
    queue = sorted(n for n in found if allowed is None or n in allowed)
    while queue:
        name = queue.pop(0)
        info = infos[name]
        if name in objects or info.status == "failed":
            continue
        obj = _import(found[name], info)
        if obj is None:
            continue
        objects[name] = obj
        for dep in info.depends:
            if dep not in found:
                info.warnings.append(f"depends on plugin '{dep}', which is not installed")
            elif dep not in objects and dep not in queue:
                if infos[dep].status == "blocked":
                    infos[dep].note = f"loaded because {name} depends on it (ZOO_PLUGINS does not list it)"
                queue.append(dep)
    for name in objects:
        for dep in infos[name].depends:
            if dep in infos and infos[dep].status == "failed":
                infos[name].warnings.append(f"depends on plugin '{dep}', which failed to load")
    return objects


def _import(candidate: Candidate, info: PluginInfo) -> object | None:
    """The plugin object, its ``ZOO_DEPENDS`` read into ``info``; None (and ``info`` failed) when it raises."""
    info.status, info.error = "ok", info.error if "declared twice" in info.error else ""
    try:
        obj = candidate.loader()
        info.depends = declared_depends(obj, candidate.name)
    except Exception as exc:
        info.status, info.error = "failed", _error_line(exc)
        log.warning("plugin %s failed to load: %s", printable(candidate.name), printable(exc))
        return None
    return obj


def _register(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], name: str, obj: object) -> None:
    info = infos[name]
    try:
        pm.register(obj, name=name)
    except Exception as exc:
        info.status, info.error = "failed", _error_line(exc)
        log.warning("plugin %s failed to load: %s", printable(name), printable(exc))
        return
    try:
        pm.check_pending()  # a misspelled hook name fails loudly, and only this plugin
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        info.status, info.error = "failed", _error_line(exc)
        log.warning("plugin %s has an unknown hook: %s", printable(name), printable(exc))


def _run_register_hooks(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> Registry:
    """Every plugin's ``zoo_register_*`` hooks, in the order the plugins were registered."""
    registry = Registry({n: i.depends for n, i in infos.items() if i.status == "ok"})
    for hook_name, kind in REGISTER_HOOKS.items():
        if kind == "entry":  # plugins that are not here may declare keys that entries hold
            registry.incomplete = sorted(n for n, i in infos.items() if i.status != "ok")
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
                log.warning("plugin %s failed in %s: %s", printable(impl.plugin_name), hook_name, printable(exc))
    return registry


def _make_register(registry: Registry, kind: str, plugin: str, info: PluginInfo) -> Callable[..., Any]:
    if kind == "entry":
        return EntryRegister(registry, plugin, info.registered.append, info.warnings.append)
    if kind == "entry_key":
        return entry_key_register(registry, plugin, info.entry_keys.append, info.warnings.append)

    def register(name: str, factory: Any, *, summary: str = "", **extra: Any) -> None:
        if factory is None:
            raise ZooError(f"{kind} '{name}' was registered without a factory")
        registry.add(Spec(kind, name, plugin, factory, summary, dict(extra)))
        info.registered.append(f"{kind}:{name}")
    return register


def _describe(registry: Registry, infos: dict[str, PluginInfo], found: dict[str, Candidate],
              environ: dict[str, str]) -> None:
    """What messages need to know: who each plugin is, its clashes, what ZOO_PLUGINS hides."""
    registry.owners = {n: _owner(i) for n, i in infos.items()}
    for c in registry.collisions:
        for plugin in dict.fromkeys(c.plugins):
            others = [i for i in c.ids if not i.startswith(f"{plugin}:")]
            if others:
                infos[plugin].warnings.append(
                    f"{c.kind} name '{c.name}' is also registered as {', '.join(others)}: a bare '{c.name}' "
                    f"is ambiguous (use {plugin}:{c.name}); entries keep meaning their own plugin's")
            else:
                infos[plugin].warnings.append(str(c))
    blocked = [found[n] for n, i in infos.items() if i.status == "blocked" and n in found]
    if blocked:
        registry.hidden = HiddenPlugins(blocked, load)
        registry.filter_text = f"ZOO_PLUGINS={environ.get('ZOO_PLUGINS', '')}"


def _owner(info: PluginInfo) -> str:
    package = f"{info.distribution} {info.version}".strip()
    if info.name == CORE_PLUGIN:
        return f"zoo's core plugin ({info.note})" if info.note else "zoo's core plugin"
    return f"plugin {info.name}, package {package}" if package else f"plugin {info.name}"


def _zoo_version() -> str:
    from zoo._version import __version__
    return __version__


# --- the plugin state of a process ----------------------------------------------------------------
# The plugin state of a process: one :class:`Zoo` owns the plugin manager, registry and plugin infos.
#
# The module-level API (``zoo.list_models``, ``zoo.train``, ...) uses :data:`default`; a test or an
# embedding application may make its own ``Zoo(loaded)`` or install one with :meth:`Zoo.reset`.

if TYPE_CHECKING:  # pragma: no cover
    from zoo.registry.discovery import Loaded


class Zoo:
    """Plugins loaded on first use (entry points of the ``zoo`` group), or the ``loaded`` given."""

    def __init__(self, loaded: Loaded | None = None):
        self._loaded = loaded

    @property
    def loaded(self) -> Loaded:
        """The plugin manager, registry and plugin infos; loaded on first use."""
        if self._loaded is None:
            from zoo.registry import discovery as plugins

            self._loaded = plugins.load()
        return self._loaded

    @property
    def registry(self) -> Registry:
        return self.loaded.registry

    def reset(self, loaded: Loaded | None = None) -> None:
        """Forget the loaded plugins (or install ``loaded``); the next use reloads them."""
        self._loaded = loaded


default = Zoo()


def plugin_state() -> Loaded:
    """The plugin manager and registry of the default :class:`Zoo`, loaded on first use."""
    return default.loaded


def reset(loaded: Loaded | None = None) -> None:
    """Forget the default Zoo's plugins (or install ``loaded``); the next call reloads them."""
    default.reset(loaded)


def get_registry() -> Registry:
    """The registry of every name the plugins registered."""
    return default.registry
