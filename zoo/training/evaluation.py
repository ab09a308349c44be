"""The one evaluation loop: a task's sums over every batch of a split, then its summary."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from zoo.runtime import distributed
from zoo.runtime.device import autocast
from zoo.runtime.distributed import World
from zoo.runtime.parallel import batch_rows
from zoo.sdk.task import Task
from zoo.sdk.tensors import to_device


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


def evaluate_artifact(path: str | Path, split: str | None = None, *, device: str = "auto",
                      data_dir: str | Path | None = None, batch_size: int | None = None,
                      outputs: list[dict[str, Any]] | None = None,
                      dataset: dict[str, Any] | None = None, task: dict[str, Any] | None = None) -> dict[str, float]:
    """Metrics of an artifact on one split of its dataset (default: test, or val when it has no test).

    With ``outputs`` (a list), the task's per-example records (e.g. generated code) are appended to it.
    ``dataset`` overrides the artifact's dataset config, e.g. ``{"test_file": "other.csv"}``: the same
    model on other files of the same kind. ``task`` overrides the task's config (see :func:`load`).
    """
    from zoo.build.pieces import final_split
    from zoo.build.prepare import encode_split
    from zoo.inference.load import dataset_of, load
    from zoo.runtime.device import autocast_dtype, resolve_device

    dev = resolve_device(device)
    lm = load(path, device=str(dev), task=task)
    source = dataset_of(lm.resolved, data_dir, dataset)
    split = split or final_split(source)
    source.check_split(split)
    encoded = encode_split(lm.resolved, source, lm.task, split)  # prepared once, reused (zoo.build.prepare)
    tcfg = lm.resolved.configs["train"]
    bs = batch_size or tcfg.eval_batch
    return evaluate(lm.model, lm.task, encoded, bs, dev, autocast_dtype(tcfg.amp, dev), outputs=outputs)


# --- an evaluation bounded in time (train.max_eval_time) ------------------------------------------
# An evaluation bounded in time (``train.max_eval_time``) that counts the examples it took.
#
# :class:`BoundedEval` stands in for the task in :func:`zoo.training.evaluation.evaluate`: it hands on
# every call, and its :meth:`~BoundedEval.batches` stops once the evaluation has run for
# ``max_time`` seconds (the batch under way finishes; the first batch is always evaluated).
# Once an evaluation has been cut after k batches, later ones stop after k batches at most,
# so that the validation numbers of a run's epochs are measured on the same examples.
# Under DDP the ranks agree on when to stop, as they do for ``train.max_time``.

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
