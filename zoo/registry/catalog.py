"""The zoo's catalog ``registry.toml``, and ``ZOO_REGISTRY``, a file of your own entries.

``registry.toml`` (at the repository root, shipped inside the package) is the readable index of
the entries that ship with zoo: one short table per entry with its plugin, components (full ids),
summary, reference result and the command that reproduces it. It is not where entries come
from: each plugin registers its own (the built-ins from their ``entries.toml``), and
``tests/test_catalog.py`` checks that the index and the plugins agree.

``ZOO_REGISTRY=FILE`` adds your own entries without writing a plugin: ``[entries.NAME]`` tables
in the format of a plugin's ``entries.toml`` (a variant may name any registered entry as its
``base``). The core plugin ``zoo`` registers them, last and whatever ``ZOO_PLUGINS`` says, as
``zoo:NAME``; their short component names are looked up among every loaded plugin.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl

INDEX_KEYS = ("plugin", "summary", "model", "task", "dataset", "tokenizer", "reference", "command")
RETIRED_PLUGIN = "zoo"  # zoo 0.1's built-in entries were "zoo:NAME"; they now live in their plugins


def index_text() -> tuple[str, str]:
    """(text, where) of the shipped ``registry.toml``."""
    res = resources.files("zoo").joinpath("registry.toml")
    return res.read_text(encoding="utf-8"), str(res)


def read_index(text: str | None = None, where: str = "registry.toml") -> dict[str, dict[str, Any]]:
    """The index's ``[entries.NAME]`` tables (the shipped file unless ``text`` is given)."""
    if text is None:
        text, where = index_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"{where}: invalid TOML: {exc}") from exc
    entries = data.get("entries", {})
    for name, row in entries.items():
        unknown = sorted(set(row) - set(INDEX_KEYS))
        if unknown:
            raise ZooError(f"{where}: [entries.{name}] has unknown key(s) {unknown}: the index holds only "
                           f"{', '.join(INDEX_KEYS)}; configs live in the plugin's entries.toml")
        for key in ("plugin", "model", "task", "dataset"):
            if key not in row:
                raise ZooError(f"{where}: [entries.{name}] is missing '{key}'")
    return entries


def retired_id(kind: str, name: str) -> str | None:
    """``zoo:NAME`` of a built-in entry (zoo 0.1) -> its id now, from the index; None otherwise."""
    plugin, _, short = name.partition(":")
    if kind != "entry" or plugin != RETIRED_PLUGIN:
        return None
    try:
        row = read_index().get(short)
    except (OSError, ZooError):
        return None
    return f"{row['plugin']}:{short}" if row else None


def index_row(plugin: str, summary: str, data: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    """What the index should say of a registered entry, given the component ids it resolves to."""
    row: dict[str, Any] = {"plugin": plugin, "summary": summary, **ids}
    for key in ("reference", "command"):
        if data.get(key):
            row[key] = data[key]
    return {k: row[k] for k in INDEX_KEYS if row.get(k) not in (None, "")}


def index_problems(index: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]) -> list[str]:
    """Where ``registry.toml`` (``index``) and what the plugins register (``rows``, by entry name) differ."""
    problems = [f"[entries.{n}] is in registry.toml, but no built-in plugin registers entry '{n}'"
                for n in sorted(set(index) - set(rows))]
    problems += [f"entry '{n}' (plugin {rows[n]['plugin']}) is registered but missing from registry.toml; add:\n"
                 f"{format_row(n, rows[n])}" for n in sorted(set(rows) - set(index))]
    for name in sorted(set(index) & set(rows)):
        diff = [k for k in INDEX_KEYS if index[name].get(k) != rows[name].get(k)]
        if diff:
            problems.append(f"[entries.{name}] of registry.toml says {diff[0]} = {index[name].get(diff[0])!r}, "
                            f"plugin {rows[name]['plugin']} registers {rows[name].get(diff[0])!r}; the table should "
                            f"read:\n{format_row(name, rows[name])}")
    return problems


def format_row(name: str, row: dict[str, Any]) -> str:
    """One index table, as registry.toml writes it."""
    lines = [f"[entries.{name}]"]
    for key in INDEX_KEYS:
        if key in row:
            lines.append(f"{key} = {_toml_value(row[key])}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value).lower() if isinstance(value, bool) else repr(value)


class CorePlugin:
    """The plugin ``zoo``: declares the ``tiny`` entry key (read by the conformance kit, :mod:`zoo.testing`)
    and registers the entries of ``ZOO_REGISTRY`` when it is set."""

    def __init__(self, environ: dict[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.path = environ.get("ZOO_REGISTRY") or ""
        self.note = f"entries from ZOO_REGISTRY={self.path}" if self.path else ""

    @hookimpl
    def zoo_register_entry_keys(self, register) -> None:
        register("tiny", summary="config overrides that train the entry in seconds: the conformance kit "
                 "and tests use them", check=_overrides_table)

    @hookimpl
    def zoo_register_entries(self, register) -> None:
        if not self.path:
            return
        try:
            register.from_toml(Path(self.path))
        except ZooError as exc:
            raise ZooError(f"ZOO_REGISTRY: {exc}") from None


def _overrides_table(value: Any, where: str) -> None:
    """An entry's ``tiny``: a table of ``[section] key = value`` overrides."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ZooError(f"{where}: must be a table of config overrides ([SECTION] tables, e.g. "
                       f"train = {{max_steps = 2}}), got {value!r}")
