"""The one evaluation loop: a task's sums over every batch of a split, then its summary."""

from __future__ import annotations

from typing import Any

import torch

from . import distributed
from .device import autocast, to_device
from .distributed import World
from .interfaces import Task
from .parallel import batch_rows


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, encoded: Any, batch_size: int, device: torch.device,
             amp_dtype: torch.dtype | None = None, world: World = World(), pin: bool = True,
             outputs: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Metrics of one split, any split: the task's sums over every batch, then its summary.

    With several ranks (every one of them must call this), each evaluates its rows of every
    batch and the sums are added over ranks: the same metrics as one process, in 1/N the time.
    With ``outputs`` (a list), the task's per-example records (:meth:`Task.eval_outputs`) are
    appended to it in batch order, or sorted by their ``index`` when every record has one;
    under DDP every rank receives all of them.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    per_batch: list[list[dict[str, Any]]] = []  # this rank's records, batch by batch
    for batch in task.batches(encoded, batch_size, shuffle=False, seed=0):
        if world.size > 1:
            batch = task.split_batch(batch, world.size)[world.rank]
            if not batch_rows(task, batch):
                per_batch.append([])
                continue
        with autocast(device, amp_dtype):
            if outputs is None:
                part = task.eval_batch(model, to_device(batch, device, pin))
            else:
                part, records = task.eval_outputs(model, to_device(batch, device, pin))
                per_batch.append(records)
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    model.train(was_training)
    if world.size > 1:
        sums = distributed.sum_dicts(sums, world)
    if outputs is not None:
        ranks = distributed.gather(per_batch, world) if world.size > 1 else [per_batch]
        collected = []
        for i in range(len(per_batch)):  # rank r holds rows after rank r-1's in every batch
            for rank_records in ranks:
                collected.extend(rank_records[i])
        if collected and all("index" in r for r in collected):  # batches in another order (e.g. by length)
            collected.sort(key=lambda r: r["index"])
        outputs.extend(collected)
    return task.summarize(sums)

