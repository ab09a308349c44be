"""An evaluation bounded in time (``train.max_eval_time``) that counts the examples it took.

:class:`BoundedEval` stands in for the task in :func:`zoo.evaluation.evaluate`: it hands on
every call, and its :meth:`~BoundedEval.batches` stops once the evaluation has run for
``max_time`` seconds (the batch under way finishes; the first batch is always evaluated).
Once an evaluation has been cut after k batches, later ones stop after k batches at most,
so that the validation numbers of a run's epochs are measured on the same examples.
Under DDP the ranks agree on when to stop, as they do for ``train.max_time``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from . import distributed
from .distributed import World
from .parallel import batch_rows

log = logging.getLogger(__name__)


class BoundedEval:
    """``task`` as the evaluation loop sees it: batches until the time is up; ``examples`` counts them."""

    def __init__(self, task: Any, max_time: float | None, world: World, device: Any):
        self.task, self.max_time, self.world, self.device = task, max_time, world, device
        self.cap: int | None = None  # batches every later evaluation stops at, once one was cut
        self.examples = 0  # examples (LM: blocks) the last evaluation took, over all ranks

    def __getattr__(self, name: str) -> Any:  # everything but batches() is the task's own
        return getattr(self.task, name)

    def _time_up(self, start: float) -> bool:
        if self.max_time is None:
            return False
        return distributed.any_rank(time.perf_counter() - start >= self.max_time, self.world, self.device)

    def batches(self, encoded: Any, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Any]:
        self.examples, start = 0, time.perf_counter()
        for i, batch in enumerate(self.task.batches(encoded, batch_size, shuffle=shuffle, seed=seed)):
            if self.cap is not None and i >= self.cap:
                return
            if i and self._time_up(start):
                self.cap = i
                log.warning("evaluation stopped at train.max_eval_time=%ss after %d batches (%d examples); later "
                            "evaluations of this run stop there too", self.max_time, i, self.examples)
                return
            self.examples += batch_rows(self.task, batch)
            yield batch
