"""Atomic file writes: a temporary file in the same folder, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask(path.parent))  # mkstemp makes 0600; give the file the usual permissions
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
