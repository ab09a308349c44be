"""Run folders that nothing can corrupt: one writer at a time, a replaced run kept
whole until its successor is complete, and no debris left by a killed process.

- **One writer.** :class:`RunLock` holds an OS-level lock (``flock``) on a file beside
  the run folder, ``.NAME.lock``. The kernel drops it when its process ends, kill -9
  included, so a crash never leaves a folder stuck; a second writer is refused at once
  with the process id of the holder.
- **Replacing a run.** :class:`Staging` builds the new run in a hidden sibling folder
  (``.NAME.new-PID``) and swaps it in only when it is complete; until then the earlier
  run is untouched, and a failed or killed replacement leaves it as it was.
- **Debris.** :func:`clean_stale`, called by whoever takes the lock, removes temporary
  files of interrupted atomic writes, staging folders of dead replacements, and puts a
  run back in place if a process died between the two renames of a swap.
- **Its files.** :func:`write_run_start` writes what a run knows before its first epoch (the marker,
  ``config.toml``, ``tokenizers.json``, the task's own files), :func:`write_run_end` what it knows at
  the end (the artifact, ``metrics.json``, the model card ``README.md``), each file atomically.
- **Whose folder.** A run folder zoo creates holds a marker, ``.zoo-run`` (:func:`write_marker`).
  Without it, files named like a run's (``README.md``, ``config.toml``...) are the user's: a folder
  holding them is replaced only with ``force``, and a replacement keeps every entry that is not a
  run file, dotfiles (``.git``, ``.env``) included.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import RunDirError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
STAGING_TAG = ".new-"  # .NAME.new-PID: a replacement being built
OLD_TAG = ".old-"  # .NAME.old-PID: the replaced run, during the swap only
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
ARTIFACT = "model.safetensors"
MARKER = ".zoo-run"  # written first into every run folder zoo creates: the proof that zoo wrote it
MARKER_FORMAT = "zoo-run"


def lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}{LOCK_SUFFIX}"


def _holder(path: Path) -> str:
    """Who holds the lock, from what it wrote into the lock file (it writes just after locking, so
    a moment's wait covers a holder that has the lock but has not written yet)."""
    text = ""
    for _ in range(50):
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            break
        if text:
            break
        time.sleep(0.01)
    pid, _, command = text.partition("\n")
    return f"process {pid} ({command})" if pid and command else f"process {pid}" if pid else "another process"


class RunLock:
    """An exclusive lock on one run folder for the life of this object (or ``with`` block)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = lock_path(self.run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unlocked rather than not at all
            log.warning("no file locking on this platform: %s is not protected from a second writer", self.run_dir)
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirError(f"{self.run_dir}: cannot create a run folder there ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(f"{self.run_dir} is in use by {_holder(self.path)}; wait for it to finish, "
                              "or stop it, then try again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _command() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
        return " ".join(Path(words[0]).name if i == 0 else w for i, w in enumerate(words))[:200]
    except (OSError, IndexError):
        return "zoo"


def _siblings(run_dir: Path, tag: str) -> list[Path]:
    prefix = f".{run_dir.name}{tag}"
    if not run_dir.parent.is_dir():
        return []
    return sorted(p for p in run_dir.parent.iterdir() if p.name.startswith(prefix) and p.is_dir())


def clean_stale(run_dir: Path) -> list[Path]:
    """Remove what interrupted writers left for ``run_dir``; the caller holds its lock.

    Returns the paths removed (or restored), for the log.
    """
    touched: list[Path] = []
    for old in _siblings(run_dir, OLD_TAG):  # killed between the two renames of a swap
        if not run_dir.exists():
            old.rename(run_dir)
            log.warning("restored %s from an interrupted replacement", run_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)
        touched.append(old)
    for staging in _siblings(run_dir, STAGING_TAG):  # a replacement that never completed
        _rescue_other_files(staging, run_dir)
        shutil.rmtree(staging, ignore_errors=True)
        touched.append(staging)
    if run_dir.is_dir():
        for tmp in run_dir.iterdir():  # atomic writes of run files cut short (see zoo.sdk.atomic.atomic_path)
            if _is_debris(tmp.name) and tmp.is_file():
                tmp.unlink(missing_ok=True)
                touched.append(tmp)
    if touched:
        log.info("cleaned up after an interrupted run of %s: %s", run_dir, ", ".join(p.name for p in touched))
    return touched


RUN_FILES = ("config.toml", "tokenizers.json", METRICS, CHECKPOINT, "loss.png", ARTIFACT, "README.md",
             "metrics.json", "vectors.txt")
RUN_PATTERNS = ("outputs.*.jsonl", "metrics.*.json")  # written by evaluation beside the artifact


def is_run_file(name: str) -> bool:
    return name in RUN_FILES or any(fnmatch.fnmatch(name, p) for p in RUN_PATTERNS)


def _is_debris(name: str) -> bool:
    """A temporary file of an interrupted atomic write of a run file (``.NAME.XXXXXXXX.tmp``)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    target = name[1:-len(".tmp")].rsplit(".", 1)[0]
    return is_run_file(target) or target == MARKER


def users_entries(run_dir: Path) -> list[Path]:
    """Everything in ``run_dir`` that zoo did not write: not a run file, its marker or debris; dotfiles too."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir()
                  if not is_run_file(p.name) and p.name != MARKER and not _is_debris(p.name))


def write_marker(run_dir: Path) -> None:
    """Mark ``run_dir`` as a folder zoo wrote (the first file of every run)."""
    from zoo._version import __version__
    from zoo.sdk.atomic import atomic_write

    atomic_write(run_dir / MARKER, json.dumps({"format": MARKER_FORMAT, "zoo_version": __version__}) + "\n")


def has_marker(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / MARKER).read_text(encoding="utf-8")).get("format") == MARKER_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _rescue_other_files(staging: Path, run_dir: Path) -> None:
    """Move entries that are not run files (the user's, carried over by a swap) back to ``run_dir``."""
    for item in users_entries(staging):
        if not (run_dir / item.name).exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            item.rename(run_dir / item.name)


def status(run_dir: Path) -> tuple[str, list[str]]:
    """What ``run_dir`` holds: ``(state, other_files)``.

    ``state`` is ``"none"`` (missing, or no run file in it), ``"run"`` (a checkpoint or an
    artifact: something to resume or to keep), ``"incomplete"`` (zoo's marker and run files,
    but the run died before its first checkpoint) or ``"foreign"`` (files named like a run's
    that nothing proves zoo wrote). ``other_files`` are the names that are not run files.
    """
    if not run_dir.is_dir():
        return "none", []
    names = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    other = [n for n in names if not is_run_file(n)]
    if (run_dir / CHECKPOINT).is_file() or (run_dir / ARTIFACT).is_file():
        return "run", other
    if len(other) == len(names):
        return "none", other
    return ("incomplete" if has_marker(run_dir) else "foreign"), other


def check_replacing(run_dir: Path, state: str, force: bool) -> None:
    """A folder in ``state`` may be replaced by a new run: zoo's own, or ``force``; never the current folder."""
    if state == "foreign" and not force:
        found = ", ".join(n for n in sorted(p.name for p in run_dir.iterdir()) if is_run_file(n))
        raise RunDirError(f"{run_dir} holds {found}, which zoo did not write (no {MARKER} marker): choose another "
                          "out=, or force=True to replace those files (everything else in it is kept)")
    if state != "none" and run_dir.is_symlink():  # a swap would replace the link, not the folder it names
        raise RunDirError(f"out={run_dir} is a symbolic link; give the folder it points to, {run_dir.resolve()}")
    if state != "none" and (run_dir.resolve() == Path.cwd().resolve() or run_dir.resolve() in Path.cwd().parents):
        raise RunDirError(f"out={run_dir} is the current folder (or holds it), which a new run cannot swap in "
                          f"for the old one; run from its parent folder with out={run_dir.resolve().name}")


class Staging:
    """Where a replacement of ``run_dir`` is built; :meth:`commit` swaps it in."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir.parent / f".{run_dir.name}{STAGING_TAG}{os.getpid()}"

    def create(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self.path

    def commit(self) -> None:
        """Put the finished replacement in place of the earlier run.

        Files of the user's in the run folder (anything not a run file) move into the new
        run first; then two renames swap the folders and the old run is deleted. A process
        killed at any point leaves what :func:`clean_stale` turns back into one whole run.
        """
        old = self.run_dir.parent / f".{self.run_dir.name}{OLD_TAG}{os.getpid()}"
        if self.run_dir.exists():
            for item in users_entries(self.run_dir):  # dotfiles (.git, .env) included
                item.rename(self.path / item.name)
            self.run_dir.rename(old)
        self.path.rename(self.run_dir)
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_run_start(run_dir: Path, config_text: str, states: dict[str, Any],
                    run_files: dict[str, Callable[[Path], None]]) -> None:
    """The files a run writes before its first epoch: the marker first (the proof that zoo wrote the folder),
    its config as TOML, its tokenizers' states, and the task's extra files (``run_files``: name -> writer)."""
    from zoo.sdk.atomic import atomic_write

    run_dir.mkdir(parents=True, exist_ok=True)
    write_marker(run_dir)
    atomic_write(run_dir / "config.toml", config_text)
    atomic_write(run_dir / "tokenizers.json", json.dumps(states, indent=1))
    for name, write in run_files.items():  # e.g. the word vectors the task trained for the embeddings
        write(run_dir / name)


def write_run_end(run_dir: Path, built: Any, metrics: dict[str, Any], config_text: str) -> Path:
    """The files of a finished run (a :class:`zoo.build.pieces.Built` with its trained model): the artifact,
    metrics.json and the model card, which shows ``config_text``, the text written to config.toml."""
    from zoo.sdk.atomic import atomic_write
    from zoo.store.artifact import artifact_metadata, save
    from zoo.store.card import model_card

    artifact = save(run_dir / ARTIFACT, built.model, artifact_metadata(built, metrics))
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    atomic_write(run_dir / "README.md", model_card(built.resolved, metrics, artifact, config_text))
    return artifact
