"""Finding data files: the data dir, a user's own files and folders, and official files downloaded and verified.

Nothing here imports torch; :mod:`zoo.sdk.files` builds dataset sources (:class:`zoo.Source`) on it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from zoo.errors import DataError, ZooUsageError

log = logging.getLogger(__name__)
_verified: dict[tuple[str, float, int], str] = {}  # (path, mtime, size) -> sha256, per process


def data_dir(override: str | Path | None = None) -> Path | None:
    """The data dir: ``override`` (``--data-dir``), else ``ZOO_DATA_DIR``, else None."""
    if override is not None:
        path, how = Path(override), "--data-dir"
    elif os.environ.get("ZOO_DATA_DIR"):
        path, how = Path(os.environ["ZOO_DATA_DIR"]), "ZOO_DATA_DIR"
    else:
        return None
    if not path.is_dir():
        raise DataError(
            f"{how}={path}: no such folder; point ZOO_DATA_DIR (or --data-dir) at the folder "
            "that holds the datasets, or unset it to download into the cache"
        )
    return path


def cache_dir() -> Path:
    """Where downloads go: ``ZOO_CACHE_DIR``, else ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_CACHE_DIR") or Path.home() / ".cache" / "zoo")


def local_path(name: str | Path, data_dir: str | Path | None = None, *, key: str = "",
               kind: Literal["file", "folder", "any"] = "any") -> Path:
    """A user's own file or folder, without a sha256 :class:`zoo.Source`.

    ``~`` is expanded; an absolute path is taken as it is. A relative one is looked up in the
    working directory first (and returned as given), then in the data dir: ``data_dir`` (a
    dataset's own ``self.data_dir``), else ``ZOO_DATA_DIR``. ``kind`` says what it must be;
    ``key`` (e.g. ``"dataset.folder"``) names the setting in the error, which lists where it looked.
    """
    path = Path(name).expanduser()
    places = [(path, path)] if path.is_absolute() else [(path, Path.cwd())]
    if not path.is_absolute():
        root = Path(data_dir) if data_dir is not None else _env_data_dir()
        places += [(root / path, root)] if root is not None else []
    for place, _ in places:
        if place.is_file() if kind == "file" else place.is_dir() if kind == "folder" else place.exists():
            return place
    what = {"any": "file or folder", "file": "file", "folder": "folder"}[kind]
    setting = f"{key}={name}" if key else str(name)
    looked = "" if path.is_absolute() else f" in {' or '.join(str(where) for _, where in places)}"
    raise DataError(f"{setting}: no such {what}{looked}; give an absolute path, or one relative to the working "
                    "directory or to the data dir (--data-dir, ZOO_DATA_DIR)")


_env_data_dir = data_dir  # local_path's parameter of the same name shadows the function


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), remembered per process while its size and mtime stay the same."""
    path = Path(path)
    st = path.stat()
    cache_key = (str(path.resolve()), st.st_mtime, st.st_size)
    if cache_key not in _verified:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _verified[cache_key] = h.hexdigest()
    return _verified[cache_key]


def verify(path: Path, sha256: str) -> None:
    """A :class:`DataError` unless the file's sha256 is ``sha256``."""
    actual = sha256_file(path)
    if actual != sha256:
        raise DataError(
            f"{path}: sha256 {actual[:16]}... does not match the expected {sha256[:16]}...; "
            "the file is corrupt or a different version: replace it with the official file"
        )


def download(url: str, dest: str | Path, sha256: str | None = None, *,
             decompress: Literal["gzip"] | None = None) -> Path:
    """Fetch ``url`` to ``dest`` through a temporary file beside it; ``dest`` appears only when complete.

    ``decompress="gzip"``: the URL serves the file gzip'd and ``dest`` gets it unzipped.
    ``sha256`` (of the file as written to ``dest``) is checked before ``dest`` appears.
    Failures are a :class:`DataError` that names the URL and says where to put a copy by hand.
    """
    import urllib.request  # only when something is downloaded: keeps `import zoo` light

    if decompress not in (None, "gzip"):
        raise ValueError(f"download: decompress must be None or 'gzip', got {decompress!r}")
    from zoo.sdk.atomic import check_replaceable

    dest = Path(dest)
    check_replaceable(dest)  # a link, FIFO or device there is never replaced
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    log.info("downloading %s -> %s", url, dest)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            _copy(resp, out, decompress)
        if sha256 is not None:
            verify(Path(tmp), sha256)
        os.replace(tmp, dest)
    except (OSError, EOFError) as exc:
        unzip = " and gunzip" if decompress else ""
        raise DataError(f"cannot download {url} ({exc}); download{unzip} it by hand to {dest} "
                        "or set ZOO_DATA_DIR to a folder holding a local copy") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _copy(src: Any, out: Any, decompress: str | None) -> None:
    if decompress == "gzip":
        import gzip

        with gzip.GzipFile(fileobj=src) as gz:
            shutil.copyfileobj(gz, out)
    else:
        shutil.copyfileobj(src, out)


# --- dataset sources: the official URL and sha256 of each file, found or downloaded ---------------
# Where dataset files come from: the data dir (``ZOO_DATA_DIR`` / ``--data-dir``),
# a download cache, and the official URL, always checked by sha256.

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


# --- URLs and checksums as a user writes them (zoo.store.fetch downloads; registry entries name weights)
_URL = re.compile(r"^(https?|file|s3)://", re.IGNORECASE)
_SHA = re.compile(r"^[0-9a-f]{64}$")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL zoo fetches (``https``, ``http``, ``file``, ``s3``)."""
    return bool(_URL.match(str(text)))


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 written as 64 lower-case hex digits."""
    return bool(_SHA.match(text))


def check_sha256(value: Any, where: str) -> str:
    """``value`` as a lower-case sha256, or a usage error naming ``where``."""
    text = str(value).strip().lower()
    if not _SHA.match(text):
        raise ZooUsageError(f"{where}: sha256 must be 64 hex digits, found {value!r}")
    return text
