"""The key of a cache entry: a hash of everything that changes what a task prepares.

Files count by content (sha256). A file's hash is computed once and remembered in
``file-hashes.json`` beside the entries, under its path, size, mtime and inode: a later
run reads no byte of an unchanged file to know it is unchanged (the assumption make and
rsync make too), and any change of size or mtime hashes it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INDEX = "file-hashes.json"
_MAX_INDEX = 10_000  # remembered files; the oldest are forgotten first


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _read_index(root: Path) -> dict[str, str]:
    try:
        index = json.loads((root / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def file_hashes(paths: Iterable[Path], root: Path) -> list[str]:
    """The sha256 of every file of ``paths``, from the index where size, mtime and inode are unchanged."""
    from zoo.sdk.atomic import atomic_write
    from zoo.sdk.files import sha256_file

    index, changed, out = _read_index(root), False, []
    for path in paths:
        key = _stat_key(Path(path))
        if key not in index:
            log.info("hashing %s (once: the hash is remembered while its size and mtime stay)", path)
            index[key], changed = sha256_file(Path(path)), True
        out.append(index[key])
    if changed:
        keep = dict(list(index.items())[-_MAX_INDEX:])
        try:  # a read-only cache still works: the files are hashed again next time
            root.mkdir(parents=True, exist_ok=True)
            atomic_write(root / INDEX, json.dumps(keep, indent=0))
        except OSError as exc:
            log.debug("cannot remember file hashes in %s: %s", root, exc)
    return out


def _plain(value: Any) -> Any:
    """A config (dataclass, mapping, sequence) as JSON-able data."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A 32-hex-digit key for ``parts`` (configs, hashes, versions): equal parts, equal key."""
    text = json.dumps(_plain(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]
