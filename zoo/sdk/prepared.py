"""Cache entries on disk: ``$ZOO_CACHE_DIR/prepared/KEY/`` (default ``~/.cache/zoo/prepared/``).

An entry is a folder of raw arrays (``NAME.bin``), small JSON documents (``NAME.json``) and
``manifest.json``, which names every file with its size and CRC-32, every array with its dtype and
shape, and the task's metadata. Rows of varying length (tokenised sentences) are two arrays: their
values one after another, and the offsets where each row starts (:meth:`ArrayWriter.put_ragged`,
:meth:`Entry.ragged`). It is written in a
temporary folder beside it; the manifest goes last, then the folder is renamed into place,
so a killed preparation leaves nothing that a later run takes for an entry. An entry is used
only when its manifest reads and every file has the size and checksum the manifest says;
anything else is removed and prepared again.

Two processes preparing the same key take turns on an OS lock (``flock`` on ``KEY.lock``):
the first prepares, the second waits and then reads what the first wrote. The lock dies with
its process, so a preparer killed with ``kill -9`` blocks nobody.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1  # the layout of an entry; an entry of another format is prepared again
_TMP = ".tmp-"  # prefix of a folder being written: KEY-PID-RANDOM follows
SCRATCH = ".nocache-"  # prefix of the folder of a preparation kept nowhere (train.cache=false): PID-RANDOM follows
_CHUNK = 1 << 22
_PIECE = 1 << 22  # values put_ragged gathers before it writes them


class CacheError(ZooError):
    """The cache folder cannot be used (not writable, not a folder)."""


def cache_root() -> Path:
    """``$ZOO_CACHE_DIR/prepared``, else ``~/.cache/zoo/prepared`` (downloads live beside it)."""
    from zoo.sdk.files import cache_dir

    return cache_dir() / "prepared"


def int_dtype(max_value: int, min_value: int = 0) -> str:
    """The smallest integer dtype holding every value in ``min_value .. max_value``: unsigned (``uint8``,
    ``uint16``, ``uint32``, ``uint64``) when ``min_value >= 0``, else signed (``int8`` ... ``int64``)."""
    import numpy as np

    kinds = ("uint8", "uint16", "uint32", "uint64") if min_value >= 0 else ("int8", "int16", "int32", "int64")
    for name in kinds:
        info = np.iinfo(name)
        if info.min <= min_value and max_value <= info.max:
            return name
    raise ValueError(f"no integer dtype holds {min_value} .. {max_value}")


@dataclass(frozen=True)
class Ragged:
    """Rows of varying length, stored flat: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

    Both arrays are memory-mapped when read from an entry; :func:`zoo.pad_ragged` lays the rows
    out as one padded tensor, :func:`zoo.ragged_rows` as one tensor per row.
    """

    values: Any  # 1-D, every row's values one after another
    offsets: Any  # 1-D int64, len(rows) + 1 items: where each row starts, then the end

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Any:
        return self.values[int(self.offsets[i]):int(self.offsets[i + 1])]

    @property
    def lengths(self) -> Any:
        import numpy as np

        return np.diff(np.asarray(self.offsets, dtype=np.int64))


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


class ArrayWriter:
    """Where a task writes what it prepares: arrays (whole, appended in pieces, or ragged rows), JSON
    documents, and ``meta`` (JSON kept in the manifest: a few numbers, not per-example data)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.arrays: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] = {}
        self._open: dict[str, Any] = {}
        self._json: set[str] = set()

    @staticmethod
    def _check_name(name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"array or document name must be an identifier, got {name!r}")

    def append(self, name: str, values: Any, dtype: str | None = None) -> None:
        """Append the 1-D ``values`` to array ``name`` (created on first use with ``dtype``)."""
        import numpy as np

        self._check_name(name)
        if name not in self._open:
            if name in self.arrays:
                raise ValueError(f"array {name!r} is already complete")
            self.arrays[name] = {"dtype": np.dtype(dtype or np.asarray(values).dtype).str, "length": 0}
            self._open[name] = open(self.folder / f"{name}.bin", "wb")
        a = np.ascontiguousarray(values, dtype=self.arrays[name]["dtype"])
        if a.ndim != 1:
            raise ValueError(f"append to {name!r}: 1-D values only, got shape {a.shape}")
        self._open[name].write(a.tobytes())
        self.arrays[name]["length"] += a.size

    def put(self, name: str, values: Any) -> None:
        """Store a whole array (any shape)."""
        import numpy as np

        a = np.ascontiguousarray(values)
        self.append(name, a.reshape(-1))
        self.arrays[name]["shape"] = list(a.shape)

    def put_ragged(self, name: str, rows: Any, dtype: str, *, lengths: Any = None) -> None:
        """Store rows of varying length as array ``name`` (their values, one row after another, in ``dtype``,
        e.g. :func:`int_dtype` of the largest id) and ``name_offsets`` (int64: where each row starts, then the
        end); :meth:`Entry.ragged` reads them back. A value that ``dtype`` cannot hold is a ValueError.

        ``rows``: an iterable of rows (lists, arrays or 1-D tensors); or, with ``lengths``, a padded 2-D array or
        tensor whose row ``i`` holds ``lengths[i]`` values (what :func:`zoo.pad_rows` made), the padding dropped.
        """
        import numpy as np

        self.append(name, [], dtype)
        if lengths is not None:
            padded, n = np.asarray(rows), np.asarray(lengths, dtype=np.int64)
            if padded.ndim != 2 or len(n) != len(padded) or n.max(initial=0) > padded.shape[1]:
                raise ValueError(f"put_ragged {name!r}: give a padded (rows, width) array and one length per row "
                                 f"(at most the width), got shape {padded.shape} and {len(n)} lengths")
            self._append_checked(name, padded[np.arange(padded.shape[1])[None, :] < n[:, None]], dtype)
        else:
            counts, pending, size = [], [], 0
            for row in rows:
                values = np.asarray(row).reshape(-1)
                counts.append(values.size)
                if values.size:  # an empty list reads as float64: it would make the piece float
                    pending.append(values)
                    size += values.size
                if size >= _PIECE:  # written in pieces: rows of any number, memory of one piece
                    self._append_checked(name, np.concatenate(pending), dtype)
                    pending, size = [], 0
            if pending:
                self._append_checked(name, np.concatenate(pending), dtype)
            n = np.asarray(counts, dtype=np.int64)
        self.append(f"{name}_offsets", np.concatenate([[0], np.cumsum(n)]), "int64")

    def _append_checked(self, name: str, values: Any, dtype: str) -> None:
        import numpy as np

        if values.size and values.dtype.kind in "iub" and np.dtype(dtype).kind in "iu":
            lo, hi, info = int(values.min()), int(values.max()), np.iinfo(dtype)
            if lo < info.min or hi > info.max:
                raise ValueError(f"put_ragged {name!r}: values {lo} .. {hi} do not fit {dtype}; use "
                                 f"int_dtype({hi}{f', {lo}' if lo < 0 else ''}) = {int_dtype(hi, min(lo, 0))}")
        self.append(name, values, dtype)

    def put_json(self, name: str, value: Any) -> None:
        """Store ``value`` (JSON: lists, dicts, strings, numbers) as ``name.json``; :meth:`Entry.json` reads it.
        For per-example data (keys, texts); tuples read back as lists."""
        self._check_name(name)
        if name in self._json or name == Path(MANIFEST).stem:
            raise ValueError(f"document {name!r} is already written")
        with open(self.folder / f"{name}.json", "w", encoding="utf-8") as fh:
            json.dump(value, fh, ensure_ascii=True, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        self._json.add(name)

    def close(self) -> None:
        for fh in self._open.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self._open.clear()


@dataclass
class Entry:
    """A complete, verified cache entry."""

    key: str
    folder: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        return self.manifest.get("meta", {})

    def array(self, name: str) -> Any:
        """Array ``name``, memory-mapped read-only (nothing is read until it is indexed)."""
        import numpy as np

        spec = self.manifest["arrays"][name]
        shape = tuple(spec.get("shape", (spec["length"],)))
        if spec["length"] == 0:
            return np.zeros(shape, dtype=spec["dtype"])
        return np.memmap(self.folder / f"{name}.bin", dtype=spec["dtype"], mode="r", shape=shape)

    def arrays(self) -> dict[str, Any]:
        return {name: self.array(name) for name in self.manifest.get("arrays", {})}

    def ragged(self, name: str) -> Ragged:
        """The rows :meth:`ArrayWriter.put_ragged` stored as ``name``, memory-mapped."""
        return Ragged(self.array(name), self.array(f"{name}_offsets"))

    def json(self, name: str) -> Any:
        """The document :meth:`ArrayWriter.put_json` stored as ``name`` (its checksum was verified on opening)."""
        with open(self.folder / f"{name}.json", encoding="utf-8") as fh:
            return json.load(fh)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    @property
    def last_use(self) -> float:
        """When a run last read the entry (the manifest's mtime); 0 when it has no manifest."""
        try:
            return (self.folder / MANIFEST).stat().st_mtime
        except OSError:
            return 0.0


class PreparedCache:
    """The entries under ``root`` (default :func:`cache_root`)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_root()

    # -- reading ----------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The entry of ``key`` when it is complete and every file checks out; None otherwise."""
        folder = self.root / key
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        problem = self._problem(folder, manifest, key)
        if problem:
            log.warning("prepared data %s is damaged (%s); it is prepared again", folder, problem)
            return None
        with contextlib.suppress(OSError):  # last use, for zoo cache ls / prune; a read-only cache still works
            os.utime(folder / MANIFEST)
        return Entry(key, folder, manifest)

    @staticmethod
    def _problem(folder: Path, manifest: Any, key: str) -> str:
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("key") != key:
            return "its manifest is not one this zoo wrote for it"
        for name, spec in manifest.get("files", {}).items():
            path = folder / name
            try:
                size = path.stat().st_size
            except OSError:
                return f"{name} is missing"
            if size != spec["size"]:
                return f"{name} has {size} bytes, the manifest says {spec['size']}"
            if _crc(path) != spec["crc32"]:
                return f"{name} does not match its checksum"
        return ""

    # -- writing ----------------------------------------------------------------------------------
    def get_or_create(self, key: str, prepare: Callable[[ArrayWriter], None], label: dict[str, Any]) -> Entry:
        """The entry of ``key``; prepared by ``prepare`` (writing into an :class:`ArrayWriter`) when missing.

        ``label`` (JSON) says what the entry holds, for ``zoo cache ls``.
        """
        entry = self.get(key)
        if entry is not None:
            return entry
        with self.lock(key):
            entry = self.get(key)  # another process may have prepared it while this one waited
            if entry is not None:
                return entry
            return self._create(key, prepare, label)

    @contextlib.contextmanager
    def lock(self, key: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the key's lock (yields True), or with ``wait=False`` yield False when another process has it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / f"{key}.lock", "a+b")
        except OSError as exc:
            raise CacheError(f"{self.root}: cannot write the prepared-data cache there ({exc.strerror}); set "
                             "ZOO_CACHE_DIR to a writable folder, or train with --no-cache") from exc
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                log.info("waiting for another process preparing %s", self.root / key)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _create(self, key: str, prepare: Callable[[ArrayWriter], None], label: dict[str, Any]) -> Entry:
        """With the key's lock held: clear what a killed preparer left, prepare, publish."""
        for stale in self.root.glob(f"{_TMP}{key}-*"):  # only the lock holder writes these
            shutil.rmtree(stale, ignore_errors=True)
        final = self.root / key
        if final.exists():  # incomplete or damaged: get() did not take it
            shutil.rmtree(final)
        tmp = self.root / f"{_TMP}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            writer = ArrayWriter(tmp)
            start = time.time()
            try:
                prepare(writer)
            finally:
                writer.close()
            self._write_manifest(tmp, key, writer, label, time.time() - start)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry = self.get(key)
        if entry is None:
            raise CacheError(f"{final}: the entry just written does not verify; is the disk full or failing?")
        return entry

    @staticmethod
    def _write_manifest(tmp: Path, key: str, writer: ArrayWriter, label: dict[str, Any], seconds: float) -> None:
        files = {p.name: {"size": p.stat().st_size, "crc32": _crc(p)} for p in sorted(tmp.iterdir())}
        manifest = {"format": FORMAT, "key": key, "label": label, "created": time.time(),
                    "prepare_seconds": round(seconds, 3), "arrays": writer.arrays, "meta": writer.meta,
                    "files": files}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())

    # -- listing and removing ---------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every entry with a readable manifest (not verified: listing reads no arrays), newest use first."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = {}
            found.append(Entry(folder.name, folder, manifest if isinstance(manifest, dict) else {}))
        return sorted(found, key=lambda e: e.last_use, reverse=True)

    def remove(self, entry: Entry) -> bool:
        """Remove ``entry`` unless a process is preparing it right now; whether it was removed."""
        with self.lock(entry.key, wait=False) as held:
            if not held:
                return False
            shutil.rmtree(entry.folder, ignore_errors=True)  # the empty lock file stays: a waiter may hold it open
            return True

    def stale_temporaries(self) -> list[Path]:
        """Folders that killed preparations left (their key's lock is free, or their process is gone)."""
        out = [p for p in self.root.glob(f"{SCRATCH}*") if not _alive(p.name[len(SCRATCH):].split("-")[0])]
        for tmp in self.root.glob(f"{_TMP}*") if self.root.is_dir() else ():
            key = tmp.name[len(_TMP):].rsplit("-", 2)[0]
            with self.lock(key, wait=False) as held:
                if held:
                    out.append(tmp)
        return out


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True
