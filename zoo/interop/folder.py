"""Files of a model folder from elsewhere (``zoo import hf``, ``zoo info``), read only from inside it.

An index may name ``../x`` or an absolute path, and any file may be a symbolic link; both
could make zoo read (and copy into a run) a file the folder's author chose anywhere on
this machine. :func:`inside` resolves a name and refuses what lands outside the folder.
One layout is let through on purpose: the Hugging Face hub cache, whose
``snapshots/REV/`` files are links into the same repository's ``blobs/``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from zoo.errors import ZooError
from zoo.runtime.untrusted import clip


def roots(src: Path) -> list[Path]:
    """Where the files of ``src`` may live: the folder, and its hub cache ``blobs/`` when it is a snapshot."""
    real = src.resolve()
    found = [real]
    if real.parent.name == "snapshots" and (real.parent.parent / "blobs").is_dir():
        found.append((real.parent.parent / "blobs").resolve())
    return found


def inside(src: Path, name: str, named_by: Path | None = None) -> Path:
    """``src / name``, refused (ZooError naming it) when the name or a link leads outside ``src``."""
    where = named_by or src / name
    if not isinstance(name, str) or not name or PurePosixPath(name).is_absolute() \
            or PureWindowsPath(name).is_absolute() or ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise ZooError(f"{where}: names {clip(repr(name), 300)}, outside {src}; a model folder's files must "
                       "be named relative to it, without '..'")
    path = src / name
    real = path.resolve()
    if not any(real == root or root in real.parents for root in roots(src)):
        raise ZooError(f"{path}: a link to {clip(real, 300)}, outside {src}; zoo reads only files inside the folder "
                       "(copy the file in instead of linking it)")
    return path
