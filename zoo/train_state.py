"""Where a run stands (:class:`TrainerState`, saved in every checkpoint) and the guard that
stops it at the first step whose loss is not finite (:class:`LossGuard`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import distributed
from .errors import TrainingError

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]  # an epoch's record (a line of metrics.jsonl)
StepCallback = Callable[[int, float, float], None]  # (optimizer step, this rank's loss of the step, learning rate)


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    train_time: float = 0.0  # seconds spent training (evaluation excluded)
    best: float | None = None
    best_epoch: int = 0
    bad_evals: int = 0  # evaluations since the last improvement
    stopped: str = ""  # why training ended early


class LossGuard:
    """Checks every micro-batch's loss; NaN or infinity on any rank stops the run with a
    :class:`TrainingError` before the optimizer applies it, so the last checkpoint stays good."""

    GROWTH = 1000.0  # a loss this many times the first one is worth a warning: the run is diverging

    def __init__(self) -> None:
        self.last: tuple[int, float] = (0, math.nan)  # (step, loss) of the last finite loss seen
        self.first: float | None = None
        self.warned = False
        self._step: tuple[int, float, int] = (-1, 0.0, 0)  # (steps taken before it, loss sum, micro-batches)

    def check(self, loss: Any, state: TrainerState, world: Any, device: Any) -> None:
        value = float(loss)
        if not distributed.any_rank(not math.isfinite(value), world, device):
            self.last = (state.step + 1, value * world.size)
            self._watch_growth(*self.last)
            at, total, n = self._step
            if at != state.step:  # the first micro-batch of a new step
                total, n = 0.0, 0
            self._step = (state.step, total + self.last[1], n + 1)
            return
        step, last = self.last
        before = f"the last finite loss was {last:.4g} at step {step}" if step > 0 else "no step had a finite loss"
        kept = f"epoch {state.epoch}'s checkpoint is kept" if state.epoch else "nothing was saved"
        raise TrainingError(f"training loss is not finite at step {state.step + 1} (epoch {state.epoch + 1}); "
                            f"{before}; {kept}. Lower the learning rate (optim.lr), or clip gradients "
                            "(train.clip_norm)")

    def step_loss(self) -> float:
        """This rank's mean loss over the micro-batches of the step just taken."""
        _, total, n = self._step
        return total / n if n else math.nan

    def _watch_growth(self, step: int, value: float) -> None:
        if self.first is None:
            self.first = value
        elif not self.warned and value > self.GROWTH * max(self.first, 1e-3):
            self.warned = True
            log.warning("training loss grew from %.4g to %.4g by step %d: the run is diverging; a lower "
                        "learning rate (optim.lr) or gradient clipping (train.clip_norm) usually helps",
                        self.first, value, step)
