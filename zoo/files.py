"""Finding data files: the data dir, a user's own files and folders, and official files downloaded and verified.

Nothing here imports torch; :mod:`zoo.data` builds dataset sources (:class:`zoo.Source`) on it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from .errors import DataError

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
    from ._io import check_replaceable

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
