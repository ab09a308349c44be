"""The plugin state of a process: one :class:`Zoo` owns the plugin manager, registry and plugin infos.

The module-level API (``zoo.list_models``, ``zoo.train``, ...) uses :data:`default`; a test or an
embedding application may make its own ``Zoo(loaded)`` or install one with :meth:`Zoo.reset`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from .plugins import Loaded


class Zoo:
    """Plugins loaded on first use (entry points of the ``zoo`` group), or the ``loaded`` given."""

    def __init__(self, loaded: Loaded | None = None):
        self._loaded = loaded

    @property
    def loaded(self) -> Loaded:
        """The plugin manager, registry and plugin infos; loaded on first use."""
        if self._loaded is None:
            from . import plugins

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
