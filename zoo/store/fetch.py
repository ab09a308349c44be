"""Downloading a model by URL into the cache: resumed, verified, and never loaded before it is whole.

The cache (``$ZOO_CACHE_DIR/models``, by default ``~/.cache/zoo/models``) holds one folder per URL
(a hash of it) and in it one folder per expected sha256 (``unverified`` when none was given), so the
same URL pinned to two different files never mixes them. A download goes to ``NAME.part`` beside its
final place; only a complete file whose size (and sha256, when one is expected) checks out is renamed
into place. An interrupted download resumes from the ``.part`` file (an HTTP ``Range`` request, or a
seek for ``file://`` and ``s3://``); a truncated one is retried from where it stopped; a file whose
sha256 does not match is deleted and fetched again, up to ``ATTEMPTS`` times, then refused.

``ZOO_OFFLINE=1`` never touches the network: a cached file is used, anything else is a one-line error.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo.sdk.files import check_sha256, is_sha256, is_url  # noqa: F401 - fetch's callers name them here
from zoo.errors import ArtifactError, ZooUsageError, first_line
from zoo.sdk.files import cache_dir

log = logging.getLogger(__name__)

SCHEMES = ("https", "http", "file", "s3")
ATTEMPTS = 3  # downloads of one file before a corrupt or truncated result is refused
CHUNK = 1 << 16


class _Incomplete(Exception):
    """The transfer stopped early; the ``.part`` file keeps what arrived and the next attempt resumes."""


class _Corrupt(Exception):
    """The file arrived whole but is not the expected one; the next attempt starts over."""


def offline() -> bool:
    """``ZOO_OFFLINE`` is set to something true (1, true, yes, on)."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def split_url(url: str) -> tuple[str, str | None]:
    """``URL#sha256=HEX`` -> (URL, hex); a URL without a fragment -> (URL, None)."""
    base, _, fragment = url.partition("#")
    if not fragment:
        return base, None
    key, _, value = fragment.partition("=")
    value = value.strip().lower()
    if key != "sha256" or not is_sha256(value):
        raise ZooUsageError(f"{url}: the part after '#' must be sha256=<64 hex digits>, found '#{fragment}'")
    return base, value


def cache_path(url: str, sha256: str | None) -> Path:
    """Where the cache keeps the file of ``url`` (without fragment) expected to have ``sha256``."""
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "download"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "download"
    return cache_dir() / "models" / key / (sha256 or "unverified") / name


def fetch(url: str, sha256: str | None = None, *, check: Callable[[Path], None] | None = None,
          refresh: bool = False, progress: bool | None = None) -> Path:
    """The cached local copy of ``url`` (``URL#sha256=HEX`` pins its content), downloaded if needed.

    ``check(path)`` raises on a file that arrived whole but is unusable (e.g. not a safetensors file);
    such a file is fetched again, then refused. ``refresh`` downloads again even when cached (an index
    that changes), keeping the cached copy when offline. ``progress``: a byte progress bar on stderr
    (default: when stderr is a terminal).
    """
    base, pinned = split_url(url)
    if sha256 is not None and pinned is not None and sha256 != pinned:
        raise ZooUsageError(f"{url}: the sha256 in the URL differs from the expected {sha256}")
    expected = sha256 or pinned
    if urlsplit(base).scheme.lower() not in SCHEMES:
        raise ZooUsageError(f"{url}: unsupported URL; use https://, http://, file:// or s3://")
    dest = cache_path(base, expected)
    if dest.is_file() and (not refresh or offline()):
        return dest
    if offline() and not base.lower().startswith("file://"):
        raise ArtifactError(f"{base}: not in the model cache ({dest.parent.parent}) and ZOO_OFFLINE=1 forbids "
                            "downloading; unset ZOO_OFFLINE to fetch it once")
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    with _locked(dest):  # one process downloads a file at a time; the others then find it cached
        if dest.is_file() and not refresh:
            return dest
        if refresh:  # a file that changes (an index): never resume an older copy
            dest.with_name(dest.name + ".part").unlink(missing_ok=True)
        return _download(base, dest, expected, check, show)


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    import fcntl

    with open(dest.parent.parent / f".{dest.parent.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


def _download(url: str, dest: Path, sha256: str | None, check: Callable[[Path], None] | None, show: bool) -> Path:
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    problem, resumable = "", False
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _transfer(url, part, show)
            _verify(part, sha256, check)
        except _Incomplete as exc:
            problem, resumable = str(exc), True
            log.warning("%s: %s (attempt %d of %d); resuming", url, problem, attempt, ATTEMPTS)
            continue
        except _Corrupt as exc:
            problem, resumable = str(exc), False
            part.unlink(missing_ok=True)
            log.warning("%s: %s (attempt %d of %d); downloading again", url, problem, attempt, ATTEMPTS)
            continue
        os.replace(part, dest)  # whole and verified: only now does it enter the cache
        log.info("fetched %s -> %s", url, dest)
        return dest
    if not resumable and not any(dest.parent.iterdir()):
        dest.parent.rmdir()  # leave no empty folder for a file that never arrived
    kept = f"; the partial file {part} is kept and the next try resumes it" if resumable else ""
    raise ArtifactError(f"{url}: refused after {ATTEMPTS} attempts: {problem}; nothing was loaded{kept}")


def _verify(part: Path, sha256: str | None, check: Callable[[Path], None] | None) -> None:
    if sha256 is not None:
        from zoo.sdk.files import sha256_file

        actual = sha256_file(part)
        if actual != sha256:
            raise _Corrupt(f"sha256 {actual[:16]}... does not match the expected {sha256[:16]}...")
    if check is not None:
        try:
            check(part)
        except Exception as exc:  # noqa: BLE001 - any reason it is unusable makes it corrupt
            raise _Corrupt(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _transfer(url: str, part: Path, show: bool) -> None:
    """Append the rest of ``url`` to ``part``; :class:`_Incomplete` when it stops before the end."""
    if url.lower().startswith(("http://", "https://")):
        _http(url, part, show)
    else:
        _fsspec(url, part, show)


def _bar(total: int | None, initial: int, show: bool, url: str) -> Any:
    from tqdm import tqdm

    name = url.rstrip("/").rsplit("/", 1)[-1]
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=not show, leave=False, dynamic_ncols=True)


def _http(url: str, part: Path, show: bool) -> None:
    import urllib.error
    import urllib.request

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after what we have: the .part file is whole (or wrong)
            return
        if exc.code >= 500:  # the server's trouble, maybe passing: try again
            raise _Incomplete(f"the server answered {exc.code} {exc.reason}") from None
        raise ArtifactError(f"{url}: the server answered {exc.code} {exc.reason}; check the URL") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Incomplete(f"cannot connect ({getattr(exc, 'reason', exc)})") from None
    with resp:
        if have and resp.status != 206:  # the server ignored the Range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        _copy(resp, part, have, total, show, url)


def _copy(src: Any, part: Path, have: int, total: int | None, show: bool, url: str) -> None:
    with open(part, "ab" if have else "wb") as out, _bar(total, have, show, url) as bar:
        try:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        except (http.client.HTTPException, OSError) as exc:
            raise _Incomplete(f"the transfer broke off ({type(exc).__name__})") from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Incomplete(f"got {got:,} of {total:,} bytes")
    if total is not None and got > total:
        raise _Corrupt(f"got {got:,} bytes, {total:,} expected")


def _fsspec(url: str, part: Path, show: bool) -> None:
    fs, path = filesystem(url)
    have = part.stat().st_size if part.exists() else 0
    try:
        total = int(fs.size(path))
        if have > total:
            have = 0
        with fs.open(path, "rb") as src:
            src.seek(have)
            _copy(src, part, have, total, show, url)
    except FileNotFoundError:
        raise ArtifactError(f"{url}: no such file; check the URL") from None
    except PermissionError as exc:
        raise ArtifactError(f"{url}: access denied ({exc}); check your credentials") from None
    except Exception as exc:  # noqa: BLE001 - s3fs/botocore raise their own types for network trouble
        raise _Incomplete(f"cannot read it ({type(exc).__name__}: {first_line(exc)})") from None


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of a ``file://`` or ``s3://`` URL (s3 needs ``pip install 'zoo[s3]'``)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)  # the endpoint and keys as they are now
    except ImportError as exc:
        raise ArtifactError(f"{url}: reading s3:// URLs needs s3fs: pip install 'zoo[s3]' ({exc})") from None
    return fs, path
