"""Domain errors. Only :mod:`zoo.cli` turns them into exit codes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Something the user can fix; the message says what and how. CLI exit code 1."""

    exit_code = 1


class ZooUsageError(ZooError):
    """The command line itself is wrong (unknown name, bad ``--set``). CLI exit code 2."""

    exit_code = 2


class UnknownNameError(ZooUsageError):
    """A model, entry, tokenizer, dataset or task name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        if not close:  # also try short names against the part after the colon
            shorts = {k.split(":", 1)[-1]: k for k in known}
            close = [shorts[s] for s in difflib.get_close_matches(name, list(shorts), n=3, cutoff=0.5)]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f". Run 'zoo list' to see every {kind}" if not close else ""
        super().__init__(f"unknown {kind} '{name}'{hint}{listing}")


class AmbiguousNameError(ZooUsageError):
    """A short name registered by more than one plugin."""

    def __init__(self, kind: str, name: str, ids: Iterable[str]):
        ids = sorted(ids)
        super().__init__(
            f"{kind} name '{name}' is registered by several plugins ({', '.join(ids)}); "
            f"use the full id, e.g. '{ids[0]}'"
        )


class ConfigError(ZooUsageError):
    """A config key that does not exist or a value of the wrong type."""


class DataError(ZooError):
    """A data file that is missing, corrupt or malformed (the message names file and line)."""


class ArtifactError(ZooError):
    """A model file that cannot be read, or was written by an incompatible version."""


class RunDirError(ZooError):
    """An output folder that already holds a run, or a run folder that cannot be resumed."""


class TargetError(RunDirError):
    """A path zoo was asked to write that is not its to replace: a folder, a link, a device, a run's own file,
    or an existing file without ``force``."""


class TrainingError(ZooError):
    """Training cannot go on: e.g. the loss is no longer finite. The last good checkpoint is kept."""


class DeviceError(ZooError):
    """A device that is not available on this machine."""


class RankLostError(ZooError):
    """Another process of a data-parallel run went away; this one cannot go on alone. CLI exit code 3,
    which tells ``zoo train --nproc`` that this rank only followed another's failure."""

    exit_code = 3


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-blank line of ``exc``'s message (at most ``limit`` characters), or its type's name."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), type(exc).__name__)
    return line[:limit]
