"""Where dataset files come from: the data dir (``ZOO_DATA_DIR`` / ``--data-dir``),
a download cache, and the official URL, always checked by sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import DataError
from .files import cache_dir, data_dir, download, sha256_file, verify  # noqa: F401 - here since before zoo.files


@dataclass(frozen=True)
class Source:
    """Where a dataset file officially comes from."""

    filename: str  # path relative to the dataset's folder under the data dir
    url: str  # official download URL (of the file, or of the archive holding it)
    sha256: str  # of the file as stored under the data dir
    size: int | None = None  # bytes, when known
    decompress: Literal["gzip"] | None = None  # "gzip": the URL serves the file gzip'd; it is stored unzipped


def read_text(path: str | Path, encoding: str = "utf-8", *, allow_empty: bool = True) -> str:
    """The exact text of a user's or a dataset's file (bytes decoded whole, line endings kept).

    A file named ``*.gz`` is decompressed first. Every failure is a :class:`DataError`
    naming the file, and for undecodable bytes the byte offset and line, with what to do.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataError(f"{path}: no such file{where}") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not a file; name the files in it (globs work where a "
                        "dataset says so, e.g. 'dir/*.txt')") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from exc
    after = ""
    if path.suffix == ".gz":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read it as gzip ({exc}); the file is damaged or not gzip'd") from exc
        after = " after decompression"
    if not data and not allow_empty:
        raise DataError(f"{path}: the file is empty; remove it from the list or give it some text")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: not valid {encoding}: byte {data[exc.start]:#04x} at byte offset {exc.start} (line {line})"
            f"{after} "
            f"({exc.reason}); convert the file to {encoding} (e.g. 'iconv -f latin1 -t {encoding}'), "
            "or set dataset.encoding to the encoding it is written in"
        ) from exc


def locate(folder: str, source: Source, override: str | Path | None = None) -> Path:
    """A verified local copy of ``source``: from the data dir, else the cache, else downloaded."""
    root = data_dir(override)
    if root is not None:
        path = root / folder / source.filename
        if not path.is_file():
            raise DataError(
                f"{path}: missing; the data dir (ZOO_DATA_DIR or --data-dir) must hold "
                f"{folder}/{source.filename} (official source: {source.url})"
            )
        verify(path, source.sha256)
        return path
    path = cache_dir() / folder / source.filename
    if not path.is_file():
        download(source.url, path, source.sha256, decompress=source.decompress)
    verify(path, source.sha256)
    return path
