"""One training loop for every task.

The Trainer knows nothing of models' signatures: the Task turns batches into a loss and
into evaluation sums. It owns the loop: gradient accumulation and clipping, optimizer
steps, the freeze schedule, early stopping, per-epoch metrics and the checkpoints that
``resume=`` continues from. Under torchrun (:mod:`zoo.runtime.distributed`) every rank runs it on
its rows of each global batch (:mod:`zoo.runtime.parallel`), wrapped in DistributedDataParallel;
rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.config.train import OptimConfig, TrainConfig
from zoo.errors import ConfigError, TrainingError
from zoo.runtime import distributed
from zoo.runtime.device import autocast, autocast_dtype, torch_threads
from zoo.runtime.parallel import ParallelModel, shard, sync_grads
from zoo.runtime.rng import epoch_seed, process_rng, rank_rng, rank_seed, restore_rng
from zoo.sdk.atomic import atomic_write
from zoo.sdk.task import Batch, Task
from zoo.sdk.tensors import to_device
from zoo.store.checkpoint import CHECKPOINT, METRICS, save_checkpoint
from zoo.training.ema import WeightAverage, averaged
from zoo.training.evaluation import BoundedEval, evaluate
from zoo.training.optim import lr_factor, make_optimizer
from zoo.training.progress import isatty, plot_losses, progress_bar

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]  # an epoch's record (a line of metrics.jsonl)
StepCallback = Callable[[int, float, float], None]  # (optimizer step, this rank's loss of the step, learning rate)


def _param_groups(model: torch.nn.Module, freeze: dict[str, int]) -> dict[str, list[torch.nn.Parameter]]:
    groups = getattr(model, "param_groups", None)
    found: dict[str, list[torch.nn.Parameter]] = groups() if callable(groups) else {}
    unknown = sorted(set(freeze) - set(found))
    if unknown:
        raise ConfigError(f"unknown parameter group 'train.freeze.{unknown[0]}'; "
                          f"this model's groups: {', '.join(sorted(found)) or '(none)'}")
    return found


def _early_stopping_metric(task: Task, name: str | None) -> tuple[str, str]:
    metric = name or f"val_{next(iter(task.metrics))}"
    base = metric.removeprefix("val_")
    if base not in task.metrics:
        valid = ", ".join(f"val_{m}" for m in task.metrics)
        raise ConfigError(f"train.early_stopping: unknown metric '{metric}'; this task reports {valid}")
    return metric, task.metrics[base]


class Trainer:
    """Fits ``model`` on ``task`` with the encoded ``splits``; writes into ``run_dir`` when given.

    Inside an initialised process group it trains data-parallel: every rank builds its
    Trainer the same way and calls :meth:`fit`; ``on_epoch``, ``on_step`` and file writes happen on rank 0.
    """

    def __init__(self, model: torch.nn.Module, task: Task, train_cfg: TrainConfig, optim_cfg: OptimConfig,
                 run_dir: Path | None = None, on_epoch: EpochCallback | None = None,
                 on_step: StepCallback | None = None):
        self.cfg, self.optim_cfg, self.task, self.run_dir = train_cfg, optim_cfg, task, run_dir
        self.world = distributed.current()
        self.device = distributed.device_for(train_cfg.device, self.world)
        self.amp_dtype = autocast_dtype(train_cfg.amp, self.device)
        self.model = model.to(self.device)
        self.ema = WeightAverage(self.model, train_cfg.ema) if train_cfg.ema else None
        self.optimizer = make_optimizer(optim_cfg, [p for p in model.parameters()])
        # fp16 needs its gradients scaled against underflow; bf16 has float32's range and needs none
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._parallel = ParallelModel(self.model, self.world, self.device, train_cfg.find_unused)
        if self.world.size > 1:  # same initial weights everywhere (DDP checks), a dropout stream per rank
            torch.manual_seed(rank_seed(train_cfg.seed, self.world.rank))
        self.state = TrainerState()
        self.history: list[dict[str, Any]] = []
        self._guard = LossGuard()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.on_epoch, self.on_step = on_epoch, on_step
        self.groups = _param_groups(model, train_cfg.freeze)
        self.metric, self.mode = _early_stopping_metric(task, train_cfg.early_stopping)
        self._eval_task = BoundedEval(task, train_cfg.max_eval_time, self.world, self.device)

    # -- helpers
    def _apply_freeze(self, epoch: int) -> None:
        for group, epochs in self.cfg.freeze.items():
            frozen = epoch < epochs
            for p in self.groups[group]:
                p.requires_grad_(not frozen)

    def _total_steps(self, n_batches: int | None) -> int:
        if self.cfg.max_steps:
            return self.cfg.max_steps
        per_epoch = self.cfg.steps_per_epoch or math.ceil((n_batches or 1) / self.cfg.grad_accum)
        return per_epoch * self.cfg.epochs

    def _improved(self, value: float) -> bool:
        best = self.state.best
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value < best - self.cfg.min_delta if self.mode == "min" else value > best + self.cfg.min_delta

    def evaluate(self, encoded: Any) -> dict[str, float]:
        return evaluate(self.model, self._eval_task, encoded, self.cfg.eval_batch,
                        self.device, self.amp_dtype, self.world, self.cfg.pin_memory)

    # -- checkpoints
    def checkpoint_state(self, rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything :meth:`restore` needs; ``rng_ranks``: every DDP rank's random state, in rank order."""
        return {
            "trainer": vars(self.state).copy(),
            "model": self.model.state_dict(),
            "best": self.best_weights or {},
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": process_rng(),
            "history": self.history,
            "rng_ranks": rng_ranks or [],
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.state = TrainerState(**ckpt["trainer"])
        self.model.load_state_dict(ckpt["model"])
        self.best_weights = dict(ckpt["best"]) or None
        if self.ema is not None:
            self.ema = self.ema.resumed(self.model, ckpt.get("ema"))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"], ckpt.get("rng_ranks") or [], self.world, self.device,
                    rank_seed(self.cfg.seed, self.world.rank, self.state.step))
        self.history = list(ckpt.get("history", []))
        if self.state.stopped.startswith("max_"):  # a budget ran out: resuming may come with a larger one
            self.state.stopped = ""

    def _write_epoch(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        rng_ranks = distributed.gather(rank_rng(self.device), self.world) if self.world.size > 1 else None
        if not self.world.main:
            return
        # the checkpoint first: metrics.jsonl never lists an epoch that the checkpoint lacks
        save_checkpoint(self.run_dir / CHECKPOINT, self.checkpoint_state(rng_ranks))
        self.rewrite_metrics()
        try:
            plot_losses(self.history, self.run_dir / "loss.png")
        except Exception as exc:  # a plot must never cost a run
            log.warning("could not draw loss.png: %s", exc)

    def rewrite_metrics(self) -> None:
        """``metrics.jsonl`` from the history: one line per committed epoch, each once."""
        if self.run_dir is not None and self.world.main:
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
            atomic_write(self.run_dir / METRICS, lines)

    def _optimizer_step(self, total: int, synced: bool = True) -> None:
        if not synced and self.world.size > 1:
            sync_grads(self.model, self.world)
        for g in self.optimizer.param_groups:
            g["lr"] = self.optim_cfg.lr * lr_factor(self.optim_cfg, self.state.step, total)
        if self.cfg.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        if self.ema is not None:
            self.ema.update(self.state.step)
        if self.on_step is not None and self.world.main:  # rank 0's loss of the step: train/loss of the trackers
            self.on_step(self.state.step, self._guard.step_loss(), self.optimizer.param_groups[0]["lr"])

    # -- the loop
    def fit(self, train: Any, val: Any | None) -> dict[str, Any]:
        """Train epoch after epoch until ``train.epochs``, a budget or early stopping; keep the best weights."""
        cfg, st = self.cfg, self.state
        with torch_threads(cfg.threads):
            n_batches = self.task.num_batches(train, cfg.batch_size)
            total = self._total_steps(n_batches)
            self._check_step_budget()
            while st.epoch < cfg.epochs and not st.stopped:
                record = self._train_epoch(train, n_batches, total)
                last = st.epoch >= cfg.epochs or bool(st.stopped)
                if val is not None and (st.epoch % cfg.eval_every == 0 or last):
                    self._validate(val, record)
                self._end_epoch(record)
            return self._finish()

    def _check_step_budget(self) -> bool:
        """Mark the run stopped once ``train.max_steps`` optimizer steps are taken."""
        if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
            self.state.stopped = f"max_steps={self.cfg.max_steps} reached"
            return True
        return False

    def _train_epoch(self, train: Any, n_batches: int | None, total: int) -> dict[str, Any]:
        """One pass (or ``train.steps_per_epoch`` steps) over the train split; the epoch's record."""
        cfg, st, world = self.cfg, self.state, self.world
        self._apply_freeze(st.epoch)
        model = self._parallel.current()
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        seen, epoch_steps = 0, 0
        bar = progress_bar(n_batches, f"epoch {st.epoch + 1}/{cfg.epochs}", cfg.progress and world.main and isatty())
        for batch in self.task.batches(train, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, st.epoch)):
            share = self._backward(model, batch, seen)
            self._guard.check(share, st, world, self.device)
            loss_sum += share
            seen += 1
            bar.update(1)
            if seen % cfg.grad_accum:
                continue
            self._optimizer_step(total)
            epoch_steps += 1
            if self._stop_within_epoch(epoch_steps, t0):
                break
        if seen % cfg.grad_accum:  # a last, partial group of micro-batches still makes a step
            self._optimizer_step(total, synced=False)
        bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        st.train_time += time.perf_counter() - t0
        st.epoch += 1
        distributed.all_sum_(loss_sum, world)
        return {"epoch": st.epoch, "step": st.step, "train_loss": float(loss_sum) / max(1, seen),
                "lr": self.optimizer.param_groups[0]["lr"], "train_time": round(st.train_time, 3)}

    def _backward(self, model: torch.nn.Module, batch: Batch, micro: int) -> torch.Tensor:
        """Forward and backward of one micro-batch; its loss's share of the global batch's loss."""
        cfg, world = self.cfg, self.world
        weight = 1.0
        if world.size > 1:  # every rank draws the same global batch and keeps its rows
            batch, weight = shard(self.task, batch, world)
        batch = to_device(batch, self.device, self.cfg.pin_memory)
        syncs = (micro + 1) % cfg.grad_accum == 0  # DDP all-reduces only on a group's last backward
        no_sync = getattr(model, "no_sync", None)
        with contextlib.nullcontext() if syncs or no_sync is None else no_sync():
            with autocast(self.device, self.amp_dtype):
                loss = self.task.loss(model, batch)
            self.scaler.scale((loss * weight if world.size > 1 else loss) / cfg.grad_accum).backward()
        return loss.detach() * weight / world.size  # summed over ranks: the global batch's loss

    def _stop_within_epoch(self, epoch_steps: int, t0: float) -> bool:
        """Whether the epoch ends after this optimizer step (a step or time budget, or steps_per_epoch)."""
        cfg, st = self.cfg, self.state
        if self._check_step_budget():
            return True
        if cfg.max_time is not None and distributed.any_rank(
                st.train_time + time.perf_counter() - t0 >= cfg.max_time, self.world, self.device):
            st.stopped = f"max_time={cfg.max_time}s reached"
            return True
        return cfg.steps_per_epoch is not None and epoch_steps >= cfg.steps_per_epoch

    def _validate(self, val: Any, record: dict[str, Any]) -> None:
        """Add the val metrics to ``record``; keep the best weights; decide early stopping."""
        st, cfg = self.state, self.cfg
        t1 = time.perf_counter()
        with averaged(self.ema, self.model):
            record.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            record["eval_time"], record["eval_examples"] = round(time.perf_counter() - t1, 3), self._eval_task.examples
            if improved := self._improved(value := record[self.metric]):
                self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if improved:
            st.best, st.best_epoch, st.bad_evals = value, st.epoch, 0
        else:
            st.bad_evals += 1
            if cfg.patience is not None and st.bad_evals >= cfg.patience:
                st.stopped = f"early stopping: {self.metric} did not improve for {cfg.patience} evaluations"

    def _end_epoch(self, record: dict[str, Any]) -> None:
        """Agree on stopping, record the epoch, write metrics and checkpoint, tell the caller."""
        st, world = self.state, self.world
        if world.size > 1:  # the ranks decided from the same reduced numbers; rank 0's word is final
            st.stopped = distributed.broadcast(st.stopped, world)
        self.history.append(record)
        if world.main:
            log.info("epoch %d: %s", st.epoch, {k: v for k, v in record.items() if k != "epoch"})
        self._write_epoch(record)
        if self.on_epoch is not None and world.main:
            self.on_epoch(record)

    def _finish(self) -> dict[str, Any]:
        st = self.state
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        elif self.ema is not None:  # nothing was validated: the model is the average
            self.model.load_state_dict(self.ema.state_dict(), strict=False)
        return {"epochs": st.epoch, "steps": st.step, "train_time": st.train_time, "best_epoch": st.best_epoch,
                self.metric: st.best, "stopped": st.stopped or "completed"}


# --- where a run stands, and the non-finite-loss guard --------------------------------------------
# Where a run stands (:class:`TrainerState`, saved in every checkpoint) and the guard that
# stops it at the first step whose loss is not finite (:class:`LossGuard`).


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
