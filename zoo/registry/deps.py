"""Dependencies between plugins: ``ZOO_DEPENDS``, the order plugins register in, and what a
``ZOO_PLUGINS`` filter hides (looked at only when a name is not found)."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError


@dataclass
class Candidate:
    """A plugin that can be loaded: an entry point, or an object handed to ``plugins.load(extra=...)``."""

    name: str
    loader: Callable[[], object]
    module: str
    entry_point: md.EntryPoint | None = None
    obj: object = None


def declared_depends(obj: object, plugin: str) -> list[str]:
    """The plugin names ``obj.ZOO_DEPENDS`` lists (none when it has no such attribute)."""
    value = getattr(obj, "ZOO_DEPENDS", ())
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(v, str) and v.strip() for v in value):
        raise ZooError(f"plugin {plugin}: ZOO_DEPENDS must be a list of plugin names (as 'zoo plugins' shows "
                       f"them), got {value!r}")
    return [v.strip() for v in dict.fromkeys(value) if v.strip() != plugin]


def dependency_order(depends: dict[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """Plugin names, each after the plugins it depends on (otherwise by name), and any cycles found."""
    order: list[str] = []
    cycles: list[list[str]] = []
    on_stack: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in on_stack:
            cycles.append([*on_stack[on_stack.index(name):], name])
            return
        on_stack.append(name)
        for dep in depends[name]:
            if dep in depends:
                visit(dep)
        on_stack.pop()
        if name not in order:
            order.append(name)

    for name in sorted(depends):
        visit(name)
    return order, cycles


class HiddenPlugins:
    """What the plugins hidden by ``ZOO_PLUGINS`` would register, loaded the first time a name is missing.

    Called as ``hidden(kind, name)``: the specs of that kind whose id, or short name, is ``name``.
    A hidden plugin that fails to import is skipped: this only serves a better error message.
    """

    def __init__(self, candidates: list[Candidate], load: Callable[..., Any]):
        self._candidates, self._load = candidates, load
        self._registry: Any = None

    def __call__(self, kind: str, name: str) -> list[Any]:
        if self._registry is None:
            self._registry = self._load_hidden()
        return [s for s in self._registry.specs(kind) if name in (s.id, s.name)]

    def _load_hidden(self) -> Any:
        objects = []
        for cand in self._candidates:
            try:
                objects.append((cand.name, cand.loader()))
            except Exception:  # noqa: BLE001 - a broken hidden plugin just provides nothing here
                continue
        return self._load(entry_points=[], environ={}, extra=objects).registry
