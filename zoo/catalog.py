"""The catalog of zoo entries, ``registry.toml``, registered as plugin ``zoo``.

The file lives at the repository root and ships inside the package, so a wheel
install sees it too. It is read as data: listing entries imports no model code.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ZooError
from .hookspecs import hookimpl

# tiny: overrides that make the entry train in seconds, used by the contract tests
ENTRY_KEYS = {"summary", "model", "task", "dataset", "tokenizer", "config", "reference", "command", "notes", "tiny",
              "tune"}  # tune: the default search space of `zoo tune`


def catalog_text() -> tuple[str, str]:
    """(text, where) of the catalog; ``ZOO_REGISTRY`` points at another file."""
    override = os.environ.get("ZOO_REGISTRY")
    if override:
        path = Path(override)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ZooError(f"ZOO_REGISTRY={override}: cannot read it ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise ZooError(f"ZOO_REGISTRY={override}: not UTF-8 text (byte {exc.start}); point it at a TOML "
                           "catalog") from exc
    res = resources.files("zoo").joinpath("registry.toml")
    return res.read_text(encoding="utf-8"), str(res)


def read_catalog() -> dict[str, dict[str, Any]]:
    text, where = catalog_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ZooError(f"{where}: invalid TOML: {exc}") from exc
    entries = data.get("entries", {})
    for name, entry in entries.items():
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ZooError(f"{where}: entry '{name}' has unknown key(s) {sorted(unknown)}; "
                           f"allowed: {sorted(ENTRY_KEYS)}")
        for key in ("model", "task", "dataset"):
            if key not in entry:
                raise ZooError(f"{where}: entry '{name}' is missing '{key}'")
    return entries


@hookimpl
def zoo_register_entries(register) -> None:
    for name, entry in read_catalog().items():
        register(name, entry)
