"""Where zoo may write: a destination checked before any work, so nothing of the user's is replaced.

zoo replaces only regular files, and a user's existing file only with ``force``. Everything else is
refused with one line naming the path: a folder, a symbolic link (replacing it would cut the link;
writing through it would write somewhere the user did not name), a block device or socket, and the
files of a run folder (its checkpoint, artifact, config...), which only ``zoo train`` writes. A
character device (``/dev/null``, a terminal) or a FIFO is a stream: :func:`check_output_file` says so,
and the caller writes through it instead of replacing it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zoo.sdk.atomic import WHAT, kind
from zoo.errors import TargetError

STREAM = "stream"  # a character device or FIFO, written through
FILE = "file"  # a regular file (or none yet), replaced atomically


def check_parent(path: Path) -> None:
    """The folder ``path`` goes into exists as a folder, or can be made (its nearest existing ancestor is one)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise TargetError(f"{path}: {parent} is not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TargetError(f"{path}: cannot write in {parent} (permission denied); choose another path")


def protected_run_file(path: Path) -> bool:
    """Whether ``path`` is one of the files of a run folder (which only ``zoo train`` writes)."""
    from zoo.store.rundir import is_run_file, status

    return is_run_file(path.name) and status(path.parent)[0] in ("run", "incomplete")


def check_output_file(path: str | Path, force: bool, label: str | None = None, *, streams: bool = False) -> str:
    """Check a file zoo is about to write, before any work: :data:`FILE` (replace it atomically) or, with
    ``streams``, :data:`STREAM` (a character device or FIFO: write through it). ``label`` names it in
    messages (default ``out=PATH``)."""
    path = Path(path)
    name = label or f"out={path}"
    found = kind(path)
    if found == "link":  # a link to a stream (/dev/stdout) is a stream; to anything else, refused
        try:
            target = os.stat(path).st_mode
        except OSError:
            target = 0
        if streams and (stat.S_ISCHR(target) or stat.S_ISFIFO(target)):
            return STREAM
        raise TargetError(f"{name} is a symbolic link; zoo does not replace links nor write through "
                          "them to a file: give the real path")
    if found in ("fifo", "chardev") and streams:
        return STREAM
    if found == "folder":
        raise TargetError(f"{name} is a folder; give the path of the file to write")
    if found not in ("none", "file"):
        raise TargetError(f"{name} is {WHAT[found]}, not a regular file; choose another path")
    if protected_run_file(path):
        raise TargetError(f"{name} is {path.name} of the run in {path.parent}, which only zoo train "
                          "writes; choose another path")
    if found == "file" and not force:
        raise TargetError(f"{name} already exists; choose another path, or force=True to replace it")
    check_parent(path)
    return FILE
