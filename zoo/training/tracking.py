"""Experiment tracking: the :class:`Tracker` that feeds a training run to the loggers named in
``train.loggers`` (each a :class:`zoo.sdk.logger.Logger` that a tracker plugin implements).

A run reports, on rank 0 only: the resolved config as parameters (``model.d_model`` ...), every
optimizer step's ``train/loss`` (rank 0's loss of that step) and ``train/lr``, every epoch's record
of ``metrics.jsonl`` under the same names (``train_loss``, ``val_loss`` ... at the epoch's last step),
the final ``test_*`` metrics, the model card and, with ``train.log_artifact``, ``model.safetensors``.

Each logger's :meth:`Logger.start` returns a small JSON state (its tracker run id) that is kept in
the run folder's ``trackers.json``; ``zoo train --resume`` hands it back, so the resumed run goes on
in the same tracker run. A logger that fails while the run trains is dropped with a warning: a
tracker going away never costs the training run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.sdk.atomic import atomic_write
from zoo.errors import ConfigError, UnknownNameError, ZooError, first_line
from zoo.sdk.logger import Logger, RunInfo
from zoo.store.rundir import ARTIFACT

log = logging.getLogger(__name__)

TRACKERS_FILE = "trackers.json"
CARD = "README.md"  # the model card in a run folder


@dataclass
class Tracking:
    """How a run meets its trackers beyond ``train.loggers``: what zoo tune passes for each trial."""

    group: str | None = None  # the experiment name; None: the entry's short name
    parent: dict[str, dict[str, Any]] = field(default_factory=dict)  # logger name -> the parent run's state
    tags: dict[str, str] = field(default_factory=dict)
    status_of: Callable[[BaseException], str | None] | None = None  # e.g. optuna.TrialPruned -> "pruned"


def _error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc, limit=400)}"


def known_loggers() -> list[str]:
    from zoo.registry.discovery import get_registry

    return sorted({s.name for s in get_registry().specs("logger")})


def logger_classes(names: Iterable[str], key: str = "train.loggers") -> dict[str, type[Logger]]:
    """The Logger class of each name (short name or full id); an unknown name or a missing extra is
    one ConfigError that lists the known loggers or says what to install."""
    from zoo.registry.discovery import get_registry

    out: dict[str, type[Logger]] = {}
    for name in names:
        try:
            spec = get_registry().get("logger", name)
        except UnknownNameError:
            raise ConfigError(f"{key}: unknown logger '{name}'; known loggers: "
                              f"{', '.join(known_loggers()) or '(none installed)'}") from None
        cls = spec.load()
        problem = cls.missing() if isinstance(cls, type) and issubclass(cls, Logger) else "is not a zoo.Logger"
        if problem:
            raise ConfigError(f"{key}: logger '{spec.name}' {problem}")
        out[spec.name] = cls
    return out


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.d_model": 64, ...}``; lists and None as their JSON text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, name + "."))
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return out


def numbers(record: Mapping[str, Any], prefix: str = "", skip: tuple[str, ...] = ("step",)) -> dict[str, float]:
    """The finite numbers of a record (an epoch of metrics.jsonl, the test metrics), keys prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in record.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def read_states(folder: Path) -> dict[str, dict[str, Any]]:
    """The logger states saved in ``folder/trackers.json`` (empty when there is none or it is unreadable)."""
    path = folder / TRACKERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read it (%s); the trackers start new runs", path, exc)
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


class Tracker:
    """The loggers of one run (none on ranks other than 0, or without ``train.loggers``): each call
    goes to every logger; one that raises is dropped with a warning."""

    def __init__(self, names: Iterable[str] = (), tracking: Tracking | None = None):
        self.classes = logger_classes(names) if names else {}
        self.tracking = tracking or Tracking()
        self.loggers: dict[str, Logger] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.last_step = 0

    def __bool__(self) -> bool:
        return bool(self.classes)

    def start(self, folder: Path, name: str, entry: str, config: Mapping[str, Any], resume: bool,
              step: int = 0) -> None:
        """Start (or, when ``resume``, reopen) every logger's run, the resolved ``config`` as its
        parameters; save their states in ``folder``. ``step``: the optimizer steps already taken."""
        saved = read_states(folder) if resume else {}
        params, self.last_step = flat_params(config), step
        group = self.tracking.group or entry.split(":", 1)[-1]
        for key, cls in self.classes.items():
            run = RunInfo(folder, name, group, entry, saved.get(key), self.tracking.parent.get(key),
                          dict(self.tracking.tags), step)
            logger = cls()
            try:  # a tracker that cannot start stops the run here, before it trains
                self.states[key] = logger.start(run, params)
            except ZooError:
                raise
            except Exception as exc:
                raise ZooError(f"logger {key}: cannot start its run ({_error_line(exc)})") from exc
            self.loggers[key] = logger
        if self.loggers:
            atomic_write(folder / TRACKERS_FILE, json.dumps(self.states, indent=1, sort_keys=True))

    def _each(self, what: str, *args: Any) -> None:
        for key, logger in list(self.loggers.items()):
            try:
                getattr(logger, what)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker's failure must not cost the run
                log.warning("logger %s failed in %s and is dropped for the rest of the run: %s", key, what, exc)
                del self.loggers[key]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.last_step = max(self.last_step, step)
        if metrics:
            self._each("log_metrics", step, metrics)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        """The trainer's per-step callback: ``train/loss`` and ``train/lr`` at optimizer step ``step``."""
        self.log(step, numbers({"train/loss": loss, "train/lr": lr}))

    def on_epoch(self, then: Callable[[dict[str, Any]], None] | None) -> Callable[[dict[str, Any]], None] | None:
        """An epoch callback that logs the epoch's record, then calls ``then`` (None without loggers or ``then``)."""
        if not self.classes:
            return then

        def epoch(record: dict[str, Any]) -> None:
            self.log(int(record.get("step", self.last_step)), numbers(record))
            if then is not None:
                then(record)
        return epoch

    def end(self, metrics: Mapping[str, Any], run_dir: Path, artifact: bool = False) -> None:
        """A finished run: its ``test_*`` metrics, its model card (and with ``artifact`` the model), completed."""
        self.log(self.last_step, numbers(metrics.get("test", {}), "test_"))
        for path in (run_dir / CARD, run_dir / ARTIFACT) if artifact else (run_dir / CARD,):
            self._each("log_artifact", path)
        self.close("completed")

    def close(self, status: str) -> None:
        self._each("finish", status)
        self.loggers.clear()

    def status_of(self, exc: BaseException) -> str:
        """What a run stopped by ``exc`` is called: pruned (zoo tune's say), interrupted, or failed."""
        custom = self.tracking.status_of(exc) if self.tracking.status_of is not None else None
        if custom:
            return custom
        return "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
