"""The Logger interface: an experiment tracker a run reports to (TensorBoard, MLflow, one a plugin adds).

What a run reports and when is :mod:`zoo.training.tracking`'s business; a plugin implements
:class:`Logger` and registers it with ``zoo_register_loggers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("completed", "failed", "interrupted", "pruned")


@dataclass
class RunInfo:
    """What a logger is told about the run it starts (or continues)."""

    run_dir: Path  # the run folder (for zoo tune's parent run: the study's --out folder)
    name: str  # the run's name in the tracker: the run folder's name
    group: str  # the experiment: the entry's short name, or zoo tune's study name
    entry: str  # the entry's full id
    resume: dict[str, Any] | None = None  # what this logger's start() returned for this run before
    parent: dict[str, Any] | None = None  # the parent run's state (a zoo tune trial: the study's run)
    tags: dict[str, str] = field(default_factory=dict)
    step: int = 0  # optimizer steps already taken (a resumed run goes on from there)


class Logger:
    """A tracker that a run reports to; registered with ``zoo_register_loggers``.

    One object serves one run: ``start``, then any number of ``log_metrics`` and ``log_artifact``,
    then ``finish``. Set ``requires`` to the import name of the package it needs and ``install``
    to the command that installs it: naming the logger without it is a one-line error before the
    run starts.
    """

    requires: str = ""  # the module the logger imports (e.g. "mlflow"); checked before a run starts
    install: str = ""  # what to run when ``requires`` is missing, e.g. "pip install 'zoo[mlflow]'"

    @classmethod
    def missing(cls) -> str | None:
        """What to install before this logger can run, or None when it can."""
        import importlib.util

        if cls.requires and importlib.util.find_spec(cls.requires) is None:
            return f"needs the {cls.requires} package: {cls.install or 'pip install ' + cls.requires}"
        return None

    def start(self, run: RunInfo, params: dict[str, Any]) -> dict[str, Any]:
        """Open (or, with ``run.resume``, reopen) the tracker run and record ``params``; return the
        JSON-serialisable state that reopens it (its run id, where it lives)."""
        raise NotImplementedError

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` (name -> finite float) at optimizer step ``step``."""
        raise NotImplementedError

    def log_artifact(self, path: Path) -> None:
        """Keep the file ``path`` with the run (the model card, the artifact); a tracker that keeps
        no files may keep what it can of it, or nothing."""

    def finish(self, status: str) -> None:
        """Close the run; ``status`` is one of :data:`STATUSES`."""
