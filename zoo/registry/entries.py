"""Entries: the ``register`` callback of ``zoo_register_entries``, variants of a base entry, entry files.

One path for every plugin, built-in or not: ``register(name, table)`` registers one entry,
``register.from_toml(file)`` every ``[entries.NAME]`` table of a TOML file (a plugin passes its
``entries.toml`` through :mod:`importlib.resources`). A table with ``base = "other-entry"``
starts from that entry and lists only what differs: it inherits the components and the
``config`` table (merged key by key), the keys plugins declare (``zoo_register_entry_keys``:
``tiny`` and ``tune`` are replaced whole by the variant's own), and never the base's ``summary``, ``command``, ``reference`` or ``notes``. The base must be registered first: an entry of the same
plugin (earlier in the file is enough) or of a plugin it depends on.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.config import merge
from zoo.errors import ZooError, ZooUsageError
from zoo.sdk.files import check_sha256, is_url
from zoo.registry.names import EntryKey, Registry, Spec

ENTRY_KEYS = {  # the core's keys; plugins declare theirs (tiny, tune, ...) with zoo_register_entry_keys
    "summary",  # one line for `zoo list`
    "model", "task", "dataset", "tokenizer",  # components: short names (looked up owner-first) or full ids
    "config",  # overrides of the components' and the trainer's defaults
    "reference", "command",  # the published result it must reach ({metric, value, source}); how to reproduce it
    "notes",  # a few lines of prose: what the entry is for, how to point it at your files
    "base",  # the entry this one varies
    "weights",  # published trained weights, {url = ..., sha256 = ...}: zoo.load(NAME, pretrained=True)
}
REQUIRED = ("model", "task", "dataset")
OWN_KEYS = ("summary", "command", "reference", "notes", "weights")  # never inherited from a base
INHERIT = ("replace", "merge")  # what a variant does with a plugin-declared key of its base
COMPONENTS = ("model", "task", "dataset", "tokenizer")


def qualify(registry: Registry, kind: str, name: Any, scope: tuple[str, ...]) -> Any:
    """The full id that ``name`` means in ``scope`` (see :meth:`Registry.get`)."""
    return registry.get(kind, str(name), scope).id


def entry_ids(registry: Registry, spec: Spec) -> dict[str, Any]:
    """The component ids an entry names, short names looked up in its plugin and its dependencies first.

    ``tokenizer`` is one id (every role) or ``{role: id}``, as the entry writes it. A name that
    cannot be found raises, with the entry's id in the message.
    """
    scope = registry.scope(spec.plugin)
    out: dict[str, Any] = {}
    for key in COMPONENTS:
        value = spec.data.get(key)
        if value is None:
            continue
        try:
            if isinstance(value, dict):
                out[key] = {role: qualify(registry, "tokenizer", n, scope) for role, n in value.items()}
            else:
                out[key] = qualify(registry, key, value, scope)
        except ZooError as exc:
            exc.args = (f"entry {spec.id}: {exc}{_missing_dependency(registry, spec.plugin)}",)
            raise
    return out


def _missing_dependency(registry: Registry, plugin: str) -> str:
    loaded = {s.plugin for kind in ("model", "tokenizer", "dataset", "task", "entry") for s in registry.specs(kind)}
    missing = [d for d in registry.depends.get(plugin, ()) if d not in loaded]
    return f" (plugin {plugin} depends on {', '.join(missing)}, which registered nothing here)" if missing else ""


class EntryRegister:
    """The ``register`` callback handed to ``zoo_register_entries`` for one plugin."""

    def __init__(self, registry: Registry, plugin: str, registered: Callable[[str], None],
                 warn: Callable[[str], None] | None = None):
        self.registry, self.plugin, self._registered = registry, plugin, registered
        self._warn = warn or (lambda message: None)

    def __call__(self, name: str, entry: dict[str, Any], *, where: str = "") -> None:
        """Register entry ``name`` (short name; its id is ``PLUGIN:name``) from its table."""
        where = where or f"plugin {self.plugin}"
        if not isinstance(entry, dict):
            raise ZooError(f"{where}: entry '{name}' must be a table/dict, got {type(entry).__name__}")
        entry = self._declared_keys(name, entry, where)
        if "weights" in entry:
            entry = {**entry, "weights": check_weights(entry["weights"], f"{where}: entry '{name}'")}
        data = self._with_base(name, entry, where)
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ZooError(f"{where}: entry '{name}' is missing '{missing[0]}' (an entry names a model, a task and "
                           "a dataset, or a base entry to take them from)")
        self.registry.add(Spec("entry", name, self.plugin, None, str(data.get("summary", "")), data))
        self._registered(f"entry:{name}")

    def from_toml(self, source: Any) -> list[str]:
        """Register every ``[entries.NAME]`` table of a TOML file (a path or an importlib.resources file).

        Bases in the same file are registered before their variants. Returns the names, in that order.
        """
        text, where = _read(source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ZooError(f"{where}: invalid TOML: {exc}") from exc
        extra = sorted(set(data) - {"entries"})
        if extra:
            raise ZooError(f"{where}: unknown table '{extra[0]}'; an entry file holds [entries.NAME] tables")
        entries = data.get("entries", {})
        order = _bases_first(entries, self.plugin, where)
        for name in order:
            self(name, entries[name], where=where)
        return order

    def _declared_keys(self, name: str, entry: dict[str, Any], where: str) -> dict[str, Any]:
        """``entry`` with every key checked: the core's, or one a loaded plugin declared (and its check passed).

        A key nobody declared is an error, unless plugins are missing from this process (hidden by
        ZOO_PLUGINS, or failed to load): it may be theirs, so it is kept and a warning says so.
        """
        declared = self.registry.entry_keys
        unknown = sorted(set(entry) - ENTRY_KEYS - set(declared))
        if unknown and not self.registry.incomplete:
            plugin_keys = ", ".join(f"{k} (plugin {v.plugin})" for k, v in sorted(declared.items())) or "none"
            raise ZooError(f"{where}: entry '{name}' has unknown key(s) {unknown}; the core's keys: "
                           f"{sorted(ENTRY_KEYS)}; keys plugins declare: {plugin_keys}")
        if unknown:
            self._warn(f"entry '{name}': key(s) {unknown} read by no loaded plugin (not loaded here: "
                       f"{', '.join(self.registry.incomplete)}); kept as written")
        for key in sorted(set(entry) & set(declared)):
            check = declared[key].check
            if check is not None:
                check(entry[key], f"{where}: entry '{name}' [{key}]")
        return entry

    def _with_base(self, name: str, entry: dict[str, Any], where: str) -> dict[str, Any]:
        entry = dict(entry)
        base = entry.pop("base", None)
        if base is None:
            return entry
        if not isinstance(base, str):
            raise ZooError(f"{where}: entry '{name}': base must be an entry name, got {base!r}")
        try:
            spec = self.registry.get("entry", base, self.registry.scope(self.plugin))
        except ZooError as exc:
            raise ZooError(f"{where}: entry '{name}': base '{base}': {exc} (a base is an entry registered before "
                           "it: of the same plugin, or of a plugin it depends on)") from None
        inherited = {k: v for k, v in spec.data.items()
                     if k not in OWN_KEYS and k != "base" and not (k in entry and self._replaces(k))}
        if spec.plugin != self.plugin:  # the base's short names keep meaning what they mean for the base
            inherited.update(self._ids_of(spec))
        return {**merge(inherited, entry), "base": spec.id}

    def _replaces(self, key: str) -> bool:
        """Whether a variant's own ``key`` replaces its base's whole (plugin keys declared so; undeclared ones too)."""
        if key in ENTRY_KEYS:
            return False  # the core's inherited keys (config, components) merge
        declared = self.registry.entry_keys.get(key)
        return declared is None or declared.inherit == "replace"

    def _ids_of(self, spec: Spec) -> dict[str, Any]:
        try:
            return entry_ids(self.registry, spec)
        except ZooError:
            return {}  # left as written: resolving the variant reports it


def entry_key_register(registry: Registry, plugin: str, declared: Callable[[str], None],
                       warn: Callable[[str], None]) -> Callable[..., None]:
    """The ``register`` callback handed to ``zoo_register_entry_keys`` for one plugin."""

    def register(key: str, *, summary: str, inherit: str = "replace", check: Any = None) -> None:
        if not isinstance(key, str) or not key.isidentifier():
            raise ZooError(f"plugin {plugin} declared entry key {key!r}: use a name of letters, digits and '_'")
        if key in ENTRY_KEYS:
            raise ZooError(f"plugin {plugin} declared entry key '{key}', which is the core's: pick another name")
        if inherit not in INHERIT:
            raise ZooError(f"plugin {plugin}, entry key '{key}': inherit must be one of {list(INHERIT)}, "
                           f"got {inherit!r}")
        if check is not None and not callable(check):
            raise ZooError(f"plugin {plugin}, entry key '{key}': check must be callable(value, where)")
        first = registry.entry_keys.get(key)
        if first is not None:  # the first declaration wins; entries can only mean one thing by a key
            warn(f"entry key '{key}' is also declared by plugin {first.plugin}, which reads it; ignored here")
            return
        registry.entry_keys[key] = EntryKey(key, plugin, summary, inherit, check)
        declared(key)
    return register


def _read(source: Any) -> tuple[str, str]:
    path = Path(source) if isinstance(source, str) else source
    where = str(path)
    try:
        return path.read_text(encoding="utf-8"), where
    except OSError as exc:
        raise ZooError(f"{where}: cannot read it ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ZooError(f"{where}: not UTF-8 text (byte {exc.start}); an entry file is TOML") from exc


def _bases_first(entries: Any, plugin: str, where: str) -> list[str]:
    """The file's entry names, each base of the same file before the entries built on it."""
    if not isinstance(entries, dict):
        raise ZooError(f"{where}: 'entries' must be a table of [entries.NAME] tables")
    order: list[str] = []

    def visit(name: str, chain: list[str]) -> None:
        if name in order:
            return
        if name in chain:
            raise ZooError(f"{where}: entries name each other as base: {' -> '.join([*chain, name])}")
        table = entries[name]
        base = table.get("base") if isinstance(table, dict) else None
        if isinstance(base, str):
            short = base[len(plugin) + 1:] if base.startswith(f"{plugin}:") else base
            if short in entries:
                visit(short, [*chain, name])
        order.append(name)

    for name in entries:
        visit(name, [])
    return order


def check_weights(weights: Any, where: str) -> dict[str, str]:
    """An entry's ``weights = {url = ..., sha256 = ...}`` table, checked; errors name ``where``."""
    if not isinstance(weights, dict) or set(weights) != {"url", "sha256"}:
        raise ZooError(f"{where}: weights must be a table {{url = \"https://...\", sha256 = \"...\"}}, "
                       f"found {weights!r}")
    if not is_url(str(weights["url"])):
        raise ZooError(f"{where}: weights.url {weights['url']!r} is not an https://, http://, file:// or s3:// URL")
    try:
        sha = check_sha256(weights["sha256"], f"{where}: weights.sha256")
    except ZooUsageError as exc:
        raise ZooError(str(exc)) from None
    return {"url": str(weights["url"]), "sha256": sha}
