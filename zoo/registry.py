"""Names of everything plugins provide: canonical ``plugin:name`` ids, short
names when unique, fnmatch patterns, suggestions, and collisions reported."""

from __future__ import annotations

import fnmatch
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import AmbiguousNameError, UnknownNameError, ZooError

KINDS = ("entry", "model", "tokenizer", "dataset", "task")


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
        if isinstance(self.factory, str):
            self.factory = resolve_dotted(self.factory)
        return self.factory


@dataclass
class Collision:
    kind: str
    name: str
    plugins: list[str]

    def __str__(self) -> str:
        ids = ", ".join(f"{p}:{self.name}" for p in self.plugins)
        return f"{self.kind} '{self.name}' is registered more than once ({ids})"


class Registry:
    """Every spec, by kind and canonical id."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, Spec]] = {kind: {} for kind in KINDS}
        self.collisions: list[Collision] = []

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

    def specs(self, kind: str) -> list[Spec]:
        return sorted(self._specs[kind].values(), key=lambda s: natural_key(s.id))

    def list(self, kind: str, pattern: str = "*") -> list[Spec]:
        """Specs whose id or short name matches the fnmatch ``pattern``, naturally sorted."""
        return [
            s
            for s in self.specs(kind)
            if fnmatch.fnmatchcase(s.id, pattern) or fnmatch.fnmatchcase(s.name, pattern)
        ]

    def get(self, kind: str, name: str) -> Spec:
        """Look up by canonical id, or by short name when exactly one plugin owns it."""
        table = self._specs[kind]
        if name in table:
            return table[name]
        matches = [s for s in table.values() if s.name == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AmbiguousNameError(kind, name, [s.id for s in matches])
        raise UnknownNameError(kind, name, list(table) + [s.name for s in table.values()])
