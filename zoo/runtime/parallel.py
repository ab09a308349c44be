"""The data-parallel pieces of the training loop: a global batch split over the ranks, the DDP wrapper,
and the end of a torchrun rank's process."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import torch

from zoo.runtime import distributed
from zoo.runtime.distributed import World
from zoo.sdk.task import Batch, Task


def batch_rows(task: Task, batch: Batch) -> int:
    """The number of examples in ``batch`` (0 for a rank's empty share)."""
    for k, v in batch.items():
        if getattr(v, "ndim", 0) >= 1 and k not in task.shared_keys:
            return len(v)
    return 0


def shard(task: Task, batch: Batch, world: World) -> tuple[Batch, float]:
    """This rank's rows of a global batch, and the factor its mean loss is multiplied by.

    DDP averages the ranks' gradients; with rank r's loss scaled by ``N * w_r / sum(w)``
    (``w`` from :meth:`Task.batch_weight`) that average is the gradient of the global
    batch's mean loss, however unevenly the rows or tokens fall.
    """
    parts = task.split_batch(batch, world.size)
    weights = [task.batch_weight(p) for p in parts]
    total = sum(weights)
    if total <= 0:  # nothing to weigh by: every rank takes the whole batch, which averages to the same
        return batch, 1.0
    if weights[world.rank] > 0:
        return parts[world.rank], world.size * weights[world.rank] / total
    # no rows of its own: DDP needs every rank's backward, so this one adds zero times another's rows
    return parts[max(range(len(parts)), key=weights.__getitem__)], 0.0


class ParallelModel:
    """What the training loss runs through: the model, wrapped in DDP when there are several ranks.

    DDP synchronises the parameters that required grad when it was built, so a freeze
    schedule that changes them gets a new wrapper (all ranks change at the same epoch).
    """

    def __init__(self, model: torch.nn.Module, world: World, device: torch.device, find_unused: bool):
        self.model, self.world, self.device, self.find_unused = model, world, device, find_unused
        self._ddp: torch.nn.Module | None = None
        self._key: tuple[bool, ...] = ()

    def current(self) -> torch.nn.Module:
        if self.world.size == 1:
            return self.model
        key = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or key != self._key:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=self.find_unused)
            self._key = key
        return self._ddp


def sync_grads(model: torch.nn.Module, world: World) -> None:
    """Average the gradients over ranks by hand (for a step that DDP's backward did not sync)."""
    for p in model.parameters():
        if p.grad is not None:
            distributed.all_sum_(p.grad, world).div_(world.size)


def run_rank(main: Callable[[], object]) -> NoReturn:
    """Run a torchrun rank's command, then end the process without the interpreter's teardown.

    By then every file is written and the process group is left; in teardown a gloo worker
    thread can abort the process ("terminate called without an active exception"), which would
    turn a finished run into a failed one.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
