"""Names of everything plugins provide: canonical ``plugin:name`` ids, owner-first short names,
fnmatch patterns, suggestions, and clashes recorded.

How :meth:`Registry.get` reads a name:

- a full id ``plugin:name`` means exactly that spec, whatever else is installed;
- a short name looked up *for a plugin* (``scope``: the plugin, then the plugins it declares it
  depends on) is found there first. This is how an entry's ``model = "gru-seq2seq"`` keeps
  meaning its own plugin's model after another plugin registers a model of that name;
- otherwise a short name works when exactly one plugin registers it. A short name several
  plugins register is ambiguous: the error lists every full id and who registered it.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import AmbiguousNameError, UnknownNameError, ZooError, ZooUsageError

KINDS = ("entry", "model", "tokenizer", "dataset", "task", "logger")


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``gpt2`` before ``gpt10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def resolve_dotted(path: str) -> Any:
    """Import ``"package.module:Attr"`` (or ``package.module.Attr``)."""
    module_name, _, attr = path.partition(":")
    if not attr:
        module_name, _, attr = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ZooError(f"cannot import '{path}': {exc}") from exc
    return obj


@dataclass
class Spec:
    """One registered thing. ``factory`` is an object or a dotted path resolved on first use."""

    kind: str
    name: str
    plugin: str
    factory: Any = None
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # entries: the entry table

    @property
    def id(self) -> str:
        return f"{self.plugin}:{self.name}"

    def load(self) -> Any:
        """The factory, imported on first use; a path that does not import names who registered it."""
        if isinstance(self.factory, str):
            try:
                self.factory = resolve_dotted(self.factory)
            except ZooError as exc:
                raise ZooError(f"{self.kind} {self.id}, registered by plugin {self.plugin}: {exc}; "
                               "'zoo plugins --check' tests every factory of every plugin") from exc
        return self.factory


@dataclass
class EntryKey:
    """A key of entry tables that a plugin declared it reads (``zoo_register_entry_keys``)."""

    key: str
    plugin: str
    summary: str = ""
    inherit: str = "replace"  # what a variant does with its base's value: "replace" or "merge"
    check: Callable[[Any, str], None] | None = None  # raises ZooError naming ``where`` on a bad value


@dataclass
class Collision:
    """One short name of one kind that more than one plugin registered (or one plugin twice)."""

    kind: str
    name: str
    plugins: list[str]

    @property
    def ids(self) -> list[str]:
        return [f"{p}:{self.name}" for p in dict.fromkeys(self.plugins)]

    def __str__(self) -> str:
        if len(set(self.plugins)) == 1:
            return f"{self.kind} '{self.name}' is registered twice by plugin {self.plugins[0]}; the first is kept"
        return (f"{self.kind} '{self.name}' is registered more than once ({', '.join(self.ids)}): a bare "
                f"'{self.name}' typed by a user is ambiguous; entries keep meaning their own plugin's")


class NameClashError(AmbiguousNameError):
    """A bare short name that several plugins register: lists every full id and who registered it."""

    def __init__(self, kind: str, name: str, specs: Sequence[Spec], owners: dict[str, str]):
        self.kind, self.name = kind, name
        specs = sorted(specs, key=lambda s: natural_key(s.id))
        self.ids = [s.id for s in specs]
        listed = "; ".join(f"{s.id} (from {owners.get(s.plugin) or 'plugin ' + s.plugin})" for s in specs)
        ZooUsageError.__init__(self, f"{kind} name '{name}' is ambiguous, several plugins register it: {listed}. "
                                     "Use the full id of the one you mean")


class HiddenNameError(UnknownNameError):
    """A name that only a plugin hidden by ``ZOO_PLUGINS`` registers: says which plugin, and how to show it."""

    def __init__(self, kind: str, name: str, specs: Sequence[Spec], filter_text: str):
        self.kind, self.name = kind, name
        self.plugins = sorted({s.plugin for s in specs})
        ids = ", ".join(sorted(s.id for s in specs))
        if len(self.plugins) == 1:
            which, add = f"plugin {self.plugins[0]} provides it ({ids}), but {filter_text} hides it", self.plugins[0]
        else:
            which = f"plugins {', '.join(self.plugins)} provide it ({ids}), but {filter_text} hides them"
            add = "the one you mean"
        ZooUsageError.__init__(self, f"unknown {kind} '{name}': {which}; add {add} to ZOO_PLUGINS, or unset ZOO_PLUGINS")


class Registry:
    """Every spec, by kind and canonical id, and what the plugin loader told it about the plugins."""

    def __init__(self, depends: dict[str, Sequence[str]] | None = None) -> None:
        self._specs: dict[str, dict[str, Spec]] = {kind: {} for kind in KINDS}
        self.collisions: list[Collision] = []
        self.depends: dict[str, tuple[str, ...]] = {p: tuple(d) for p, d in (depends or {}).items()}
        self.owners: dict[str, str] = {}  # plugin -> who it is, for messages ("plugin cnn (zoo-cnn 0.3.1)")
        # specs that plugins hidden by ZOO_PLUGINS would register, for unknown-name messages
        self.hidden: Callable[[str, str], list[Spec]] | None = None
        self.filter_text = ""  # "ZOO_PLUGINS=cnn" while a filter hides plugins
        self.alias: Callable[[str, str], str | None] | None = None  # (kind, old id) -> id, for retired ids
        self.entry_keys: dict[str, EntryKey] = {}  # keys of entry tables that plugins declared they read
        self.incomplete: list[str] = []  # plugins not loaded (hidden by ZOO_PLUGINS, failed): keys may be theirs

    def add(self, spec: Spec) -> None:
        if spec.kind not in self._specs:
            raise ZooError(f"unknown kind '{spec.kind}' (expected one of {', '.join(KINDS)})")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", spec.name):
            raise ZooError(
                f"plugin '{spec.plugin}' registered an invalid {spec.kind} name {spec.name!r}: "
                "use letters, digits, '-', '_' and '.'"
            )
        table = self._specs[spec.kind]
        if spec.id in table:  # the same plugin registered one name twice: keep the first, report
            self.collisions.append(Collision(spec.kind, spec.name, [spec.plugin, spec.plugin]))
            return
        same = [s.plugin for s in table.values() if s.name == spec.name]
        if same:
            self.collisions.append(Collision(spec.kind, spec.name, [*same, spec.plugin]))
        table[spec.id] = spec

    def without(self, plugins: Iterable[str]) -> Registry:
        """A copy without what ``plugins`` registered (collisions among the others recorded again)."""
        drop = set(plugins)
        clean = Registry(self.depends)
        clean.owners, clean.hidden, clean.filter_text, clean.alias = self.owners, self.hidden, self.filter_text, self.alias
        clean.entry_keys = {k: v for k, v in self.entry_keys.items() if v.plugin not in drop}
        clean.incomplete = [*self.incomplete, *(p for p in drop if p not in self.incomplete)]
        for kind in KINDS:
            for spec in self._specs[kind].values():  # registration order, so collisions list plugins in order
                if spec.plugin not in drop:
                    clean.add(spec)
        return clean

    def scope(self, plugin: str) -> tuple[str, ...]:
        """Where a short name used by ``plugin`` is looked up first: the plugin, then what it depends on."""
        return (plugin, *self.depends.get(plugin, ()))

    def specs(self, kind: str) -> list[Spec]:
        return sorted(self._specs[kind].values(), key=lambda s: natural_key(s.id))

    def list(self, kind: str, pattern: str = "*") -> list[Spec]:
        """Specs whose id or short name matches the fnmatch ``pattern``, naturally sorted."""
        return [
            s
            for s in self.specs(kind)
            if fnmatch.fnmatchcase(s.id, pattern) or fnmatch.fnmatchcase(s.name, pattern)
        ]

    def clashes(self, plugin: str) -> list[Collision]:
        """The collisions ``plugin`` takes part in."""
        return [c for c in self.collisions if plugin in c.plugins]

    def get(self, kind: str, name: str, scope: Sequence[str] = ()) -> Spec:
        """The spec ``name`` means: a full id exactly; a short name in ``scope`` first, then when unique."""
        table = self._specs[kind]
        if ":" in name:
            if name in table:
                return table[name]
            new = self.alias(kind, name) if self.alias else None
            if new and new in table:
                return table[new]
            raise self._unknown(kind, name)
        for plugin in scope:
            spec = table.get(f"{plugin}:{name}")
            if spec is not None:
                return spec
        matches = [s for s in table.values() if s.name == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NameClashError(kind, name, matches, self.owners)
        raise self._unknown(kind, name)

    def find(self, name: str) -> list[Spec]:
        """What ``name`` means in every kind (``zoo info NAME``); ambiguous or unknown names raise."""
        found: list[Spec] = []
        for kind in KINDS:
            try:
                found.append(self.get(kind, name))
            except NameClashError:
                raise
            except UnknownNameError:
                continue
        if found:
            return found
        for kind in KINDS:  # a plugin hidden by ZOO_PLUGINS that has it says more than "unknown"
            hidden = self.hidden(kind, name) if self.hidden else []
            if hidden:
                raise HiddenNameError("name", name, hidden, self.filter_text)
        known = [n for kind in KINDS for s in self._specs[kind].values() for n in (s.id, s.name)]
        raise UnknownNameError("name", name, known)

    def _unknown(self, kind: str, name: str) -> UnknownNameError:
        hidden = self.hidden(kind, name) if self.hidden else []
        if hidden:
            return HiddenNameError(kind, name, hidden, self.filter_text)
        table = self._specs[kind]
        return UnknownNameError(kind, name, list(table) + [s.name for s in table.values()])
