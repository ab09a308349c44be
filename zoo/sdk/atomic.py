"""Atomic file writes: a temporary file in the same folder, then ``os.replace``; only regular files are replaced."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import TargetError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Only a regular file is ever replaced: a symlink, FIFO, device or folder at ``path`` is refused
    (:class:`~zoo.errors.TargetError`) before and again just before the rename.
    """
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask(path.parent))  # mkstemp makes 0600; give the file the usual permissions
        check_replaceable(path)  # nothing else may have appeared there while the file was written
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` so that readers see the old file or the new one."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def umask(folder: Path) -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # no /proc (macOS, Windows): the kernel applies the umask to a new file's mode; look at one
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".umask.", suffix=".tmp")
    os.close(fd)
    try:
        os.unlink(probe)
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o777)
        os.close(fd)
        return 0o777 & ~os.stat(probe).st_mode
    finally:
        Path(probe).unlink(missing_ok=True)


def kind(path: Path) -> str:
    """What is at ``path`` itself (a link is not followed): none, file, link, folder, fifo, chardev or other."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "none"
    except OSError as exc:
        raise TargetError(f"{path}: cannot look at it ({exc.strerror or exc})") from None
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISLNK, "link"), (stat.S_ISDIR, "folder"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev")):
        if test(mode):
            return name
    return "other"


WHAT = {"link": "a symbolic link", "folder": "a folder", "fifo": "a FIFO (named pipe)",
        "chardev": "a character device", "other": "a device or socket"}


def check_replaceable(path: Path) -> None:
    """``path`` is missing or a regular file: what an atomic write (temporary file + rename) may replace."""
    found = kind(path)
    if found not in ("none", "file"):
        raise TargetError(f"{path} is {WHAT[found]}, not a regular file; zoo writes regular files only, "
                          "and never replaces anything else")
