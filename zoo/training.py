"""One training loop for every task.

The Trainer knows nothing of models' signatures: the Task turns batches into a
loss and into evaluation sums. It owns device placement, mixed precision,
gradient accumulation and clipping, the optimizer and its schedule, the freeze
schedule, early stopping, per-epoch metrics, the loss curve and atomic
checkpoints that ``zoo train --resume`` continues from.

Under torchrun (see :mod:`zoo.distributed`) the same loop runs in every process:
the model is wrapped in DistributedDataParallel, each rank trains on its rows of
every global batch, evaluation sums are added over ranks, and rank 0 alone
writes files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from . import distributed
from ._io import atomic_path, atomic_write
from .config import SEED, Range
from .distributed import World
from .errors import ConfigError, DeviceError, RunDirError
from .interfaces import Batch, Task

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"


@dataclass
class TrainConfig:
    epochs: Annotated[int, Range(1)] = 10
    # optimizer steps per epoch; none: one pass over the train split
    steps_per_epoch: Annotated[int, Range(1, 10**12, note="none: one pass over the train split")] | None = None
    max_steps: Annotated[int, Range(1, 10**12)] | None = None  # stop after this many optimizer steps in all
    # stop after this many seconds of training (evaluation not counted)
    max_time: Annotated[float, Range(gt=0, le=10**9)] | None = None
    # the global batch: under DDP each of N processes takes about batch_size / N rows
    batch_size: Annotated[int, Range(1, 2**24)] = 64
    eval_batch_size: Annotated[int, Range(1, 2**24, note="none: same as batch_size")] | None = None
    grad_accum: Annotated[int, Range(1, 65536)] = 1  # micro-batches per optimizer step
    # max global gradient norm; none: no clipping (a negative norm would flip every gradient, 0 would zero them)
    clip_norm: Annotated[float, Range(gt=0, note="none: no clipping")] | None = 1.0
    seed: Annotated[int, SEED] = 0
    device: str = "auto"  # auto: cuda when present, else cpu
    # auto: bf16 on CUDA when supported, off on CPU; bf16 on a CPU is fast only with AVX512-BF16 or AMX
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    early_stopping: str | None = None  # metric to select the best epoch by, e.g. "val_loss"; none: the task's first metric
    # stop after this many evaluations without improvement; none: never stop early
    patience: Annotated[int, Range(1, 1_000_000, note="none: never stop early")] | None = None
    min_delta: Annotated[float, Range(0)] = 0.0  # smallest change that counts as an improvement
    # parameter group -> epochs it stays frozen
    freeze: Annotated[dict[str, int], Range(0, 1_000_000)] = field(default_factory=dict)
    eval_every: Annotated[int, Range(1, 1_000_000)] = 1  # evaluate every N epochs (and after the last)
    threads: Annotated[int, Range(1, 1024, note="none: torch's default")] | None = None  # torch.set_num_threads
    progress: bool = True  # progress bar on a terminal
    pin_memory: bool = True  # CUDA: copy batches through page-locked memory, without waiting for the copy
    # DDP: seconds a rank waits in a collective for a hung peer before it gives up (at most a week)
    dist_timeout: Annotated[float, Range(gt=0, le=604_800)] = 300.0
    find_unused: bool = False  # DDP: allow parameters that a forward pass leaves unused (slower: it searches the graph)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"] = "adam"
    lr: Annotated[float, Range(gt=0)] = 1e-3
    weight_decay: Annotated[float, Range(0, 100)] = 0.0
    momentum: Annotated[float, Range(0, lt=1)] = 0.0  # sgd and rmsprop
    betas: Annotated[tuple[float, float], Range(0, lt=1)] = (0.9, 0.999)  # adam and adamw, each in [0, 1)
    eps: Annotated[float, Range(gt=0, le=1)] = 1e-8
    schedule: Literal["constant", "cosine", "linear"] = "constant"  # after warm-up
    warmup_steps: Annotated[int, Range(0, 10**12)] = 0  # linear warm-up from 0 to lr
    min_lr: Annotated[float, Range(0)] = 0.0  # where cosine and linear decay end; at most lr
    fused: bool | None = None  # fused adam/adamw kernels; none: where this torch has them for the device
    decay_1d: bool = False  # apply weight_decay to biases and norm weights too (GPT practice: no)

    def validate(self) -> None:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device '{name}' is not supported: use auto, cpu, cuda or cuda:N")
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``; none: full precision."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16  # the Trainer pairs it with a gradient scaler
    bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported(including_emulation=False)
    if amp == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.warning("train.amp=bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so bf16 "
                    "autocast emulates them and is usually slower than float32; --set train.amp=off avoids it")
    if amp == "bf16" and not bf16:
        raise DeviceError(f"train.amp=bf16: {torch.cuda.get_device_name(device)} has no bfloat16; "
                          "use train.amp=fp16 (with a gradient scaler) or auto")
    return torch.bfloat16 if bf16 else torch.float16  # auto on a GPU without bf16: fp16


def make_optimizer(cfg: OptimConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    common: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    groups: Any = params
    if cfg.weight_decay and not cfg.decay_1d:
        groups = [{"params": [p for p in params if p.ndim >= 2]},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, **common)
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(groups, eps=cfg.eps, **common)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, momentum=cfg.momentum, eps=cfg.eps, **common)
    cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    fused = cfg.fused
    if fused is None:  # fused kernels exist for CPU and CUDA floating-point parameters in torch >= 2.4
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    try:
        return cls(groups, betas=cfg.betas, eps=cfg.eps, fused=fused, **common)
    except (RuntimeError, TypeError):
        if cfg.fused:  # asked for explicitly: say it cannot be had
            raise ConfigError(f"optim.fused=true: this torch has no fused {cfg.name} for these parameters") from None
        return cls(groups, betas=cfg.betas, eps=cfg.eps, **common)


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` of ``total``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total <= cfg.warmup_steps:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    floor = cfg.min_lr / cfg.lr
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return floor + (1 - floor) * shape


def to_device(batch: dict[str, Any], device: torch.device, pin: bool = True) -> dict[str, Any]:
    """The batch's tensors on ``device``; to a GPU through pinned memory, without waiting for the copy."""
    if device.type != "cuda":
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def move(v: torch.Tensor) -> torch.Tensor:
        if pin and v.device.type == "cpu":
            v = v.pin_memory()
        return v.to(device, non_blocking=True)

    return {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _rows(task: Task, batch: Batch) -> int:
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


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


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
            if not _rows(task, batch):
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


# --- checkpoints: tensors in safetensors, structure in JSON; no pickle -------------------------

def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors of a nested state into ``tensors``; return a JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "s", tensors)
    # safetensors refuses tensors that share memory; checkpoints hold copies anyway
    tensors = {k: v.clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "zoo-checkpoint", "state": json.dumps(skeleton)})


def load_checkpoint(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    from .artifact import read_header

    _, meta = read_header(path)  # complete and well-formed, or a clear error
    if meta.get("format") != "zoo-checkpoint":
        raise RunDirError(f"{path}: not a zoo checkpoint")
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    return _unflatten(json.loads(meta["state"]), tensors)


# --- the loop -----------------------------------------------------------------------------------

@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    train_time: float = 0.0  # seconds spent training (evaluation excluded)
    best: float | None = None
    best_epoch: int = 0
    bad_evals: int = 0  # evaluations since the last improvement
    stopped: str = ""  # why training ended early


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The torch seed of one DDP rank: its own dropout stream, derived from the run's seed."""
    return seed + 1_000_003 * (rank + 1) + step


class Trainer:
    """Fits ``model`` on ``task`` with the encoded ``splits``; writes into ``run_dir`` when given.

    Inside an initialised process group it trains data-parallel: every rank builds its
    Trainer the same way and calls :meth:`fit`; ``on_epoch`` and file writes happen on rank 0.
    """

    def __init__(self, model: torch.nn.Module, task: Task, train_cfg: TrainConfig, optim_cfg: OptimConfig,
                 run_dir: Path | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None):
        self.cfg, self.optim_cfg, self.task, self.run_dir = train_cfg, optim_cfg, task, run_dir
        self.world = distributed.current()
        self.device = distributed.device_for(train_cfg.device, self.world)
        self.amp_dtype = autocast_dtype(train_cfg.amp, self.device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(optim_cfg, [p for p in model.parameters()])
        # fp16 needs its gradients scaled against underflow; bf16 has float32's range and needs none
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._ddp: torch.nn.Module | None = None
        self._ddp_key: tuple[bool, ...] = ()
        if self.world.size > 1:  # same initial weights everywhere (DDP checks), a dropout stream per rank
            torch.manual_seed(rank_seed(train_cfg.seed, self.world.rank))
        self.state = TrainerState()
        self.history: list[dict[str, Any]] = []
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.on_epoch = on_epoch
        groups = getattr(model, "param_groups", None)
        self.groups: dict[str, list[torch.nn.Parameter]] = groups() if callable(groups) else {}
        unknown = sorted(set(train_cfg.freeze) - set(self.groups))
        if unknown:
            raise ConfigError(f"unknown parameter group 'train.freeze.{unknown[0]}'; "
                              f"this model's groups: {', '.join(sorted(self.groups)) or '(none)'}")
        metric = train_cfg.early_stopping or f"val_{next(iter(task.metrics))}"
        base = metric.removeprefix("val_")
        if base not in task.metrics:
            valid = ", ".join(f"val_{m}" for m in task.metrics)
            raise ConfigError(f"train.early_stopping: unknown metric '{metric}'; this task reports {valid}")
        self.metric, self.mode = metric, task.metrics[base]

    # -- helpers
    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return to_device(batch, self.device, self.cfg.pin_memory)

    def _parallel(self) -> torch.nn.Module:
        """What the training loss runs through: the model, wrapped in DDP when there are several ranks.

        DDP synchronises the parameters that required grad when it was built, so a freeze
        schedule that changes them gets a new wrapper (all ranks change at the same epoch).
        """
        if self.world.size == 1:
            return self.model
        key = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or key != self._ddp_key:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=self.cfg.find_unused)
            self._ddp_key = key
        return self._ddp

    def _sync_grads(self) -> None:
        """Average the gradients over ranks by hand (for a step that DDP's backward did not sync)."""
        for p in self.model.parameters():
            if p.grad is not None:
                distributed.all_sum_(p.grad, self.world).div_(self.world.size)

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

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
        return evaluate(self.model, self.task, encoded, self.cfg.eval_batch_size or self.cfg.batch_size,
                        self.device, self.amp_dtype, self.world, self.cfg.pin_memory)

    # -- checkpoints
    def _rank_rng(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(self.device) if cuda else None}

    def checkpoint_state(self, rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything :meth:`restore` needs; ``rng_ranks``: every DDP rank's random state, in rank order."""
        return {
            "trainer": vars(self.state).copy(),
            "model": self.model.state_dict(),
            "best": self.best_weights or {},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                    "python_gauss": random.getstate()[2],
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "history": self.history,
            "rng_ranks": rng_ranks or [],
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.state = TrainerState(**ckpt["trainer"])
        self.model.load_state_dict(ckpt["model"])
        self.best_weights = dict(ckpt["best"]) or None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate((3, tuple(rng["python"]), rng["python_gauss"]))
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if self.world.size > 1:  # each rank continues its own dropout stream
            ranks = ckpt.get("rng_ranks") or []
            if len(ranks) == self.world.size:
                torch.set_rng_state(ranks[self.world.rank]["torch"])
                if ranks[self.world.rank].get("cuda") is not None and self.device.type == "cuda":
                    torch.cuda.set_rng_state(ranks[self.world.rank]["cuda"], self.device)
            else:  # another number of processes than the checkpoint's: fresh streams, still one per rank
                torch.manual_seed(rank_seed(self.cfg.seed, self.world.rank, self.state.step))
        self.history = list(ckpt.get("history", []))
        if self.state.stopped.startswith("max_"):  # a budget ran out: resuming may come with a larger one
            self.state.stopped = ""

    def _write_epoch(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        rng_ranks = distributed.gather(self._rank_rng(), self.world) if self.world.size > 1 else None
        if not self.world.main:
            return
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
        atomic_write(self.run_dir / METRICS, lines)
        save_checkpoint(self.run_dir / CHECKPOINT, self.checkpoint_state(rng_ranks))
        try:
            plot_losses(self.history, self.run_dir / "loss.png")
        except Exception as exc:  # a plot must never cost a run
            log.warning("could not draw loss.png: %s", exc)

    def _optimizer_step(self, total: int, synced: bool = True) -> None:
        if not synced and self.world.size > 1:
            self._sync_grads()
        for g in self.optimizer.param_groups:
            g["lr"] = self.optim_cfg.lr * lr_factor(self.optim_cfg, self.state.step, total)
        if self.cfg.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1

    # -- the loop
    def fit(self, train: Any, val: Any | None) -> dict[str, Any]:
        cfg, st, world = self.cfg, self.state, self.world
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        n_batches = self.task.num_batches(train, cfg.batch_size)
        total = self._total_steps(n_batches)
        show = cfg.progress and world.main and _isatty()
        if cfg.max_steps is not None and st.step >= cfg.max_steps:
            st.stopped = f"max_steps={cfg.max_steps} reached"
        while st.epoch < cfg.epochs and not st.stopped:
            epoch = st.epoch
            self._apply_freeze(epoch)
            model = self._parallel()
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=self.device)
            seen, micro, epoch_steps = 0, 0, 0
            bar = _progress(n_batches, f"epoch {epoch + 1}/{cfg.epochs}", show)
            for batch in self.task.batches(train, cfg.batch_size, shuffle=True, seed=cfg.seed * 100003 + epoch):
                weight = 1.0
                if world.size > 1:  # every rank draws the same global batch and keeps its rows
                    batch, weight = shard(self.task, batch, world)
                batch = self._to_device(batch)
                syncs = (micro + 1) % cfg.grad_accum == 0  # DDP all-reduces only on a group's last backward
                no_sync = getattr(model, "no_sync", None)
                with contextlib.nullcontext() if syncs or no_sync is None else no_sync():
                    with self._autocast():
                        loss = self.task.loss(model, batch)
                    self.scaler.scale((loss * weight if world.size > 1 else loss) / cfg.grad_accum).backward()
                loss_sum += loss.detach() * weight / world.size  # summed over ranks: the global batch's loss
                seen += 1
                micro += 1
                if bar is not None:
                    bar.update(1)
                if micro % cfg.grad_accum:
                    continue
                self._optimizer_step(total)
                epoch_steps += 1
                if cfg.max_steps is not None and st.step >= cfg.max_steps:
                    st.stopped = f"max_steps={cfg.max_steps} reached"
                    break
                if cfg.max_time is not None and distributed.any_rank(
                        st.train_time + time.perf_counter() - t0 >= cfg.max_time, world, self.device):
                    st.stopped = f"max_time={cfg.max_time}s reached"
                    break
                if cfg.steps_per_epoch is not None and epoch_steps >= cfg.steps_per_epoch:
                    break
            if micro % cfg.grad_accum:  # a last, partial group of micro-batches still makes a step
                self._optimizer_step(total, synced=False)
            if bar is not None:
                bar.close()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            st.train_time += time.perf_counter() - t0
            st.epoch += 1
            distributed.all_sum_(loss_sum, world)
            record: dict[str, Any] = {
                "epoch": st.epoch, "step": st.step,
                "train_loss": float(loss_sum) / max(1, seen),
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_time": round(st.train_time, 3),
            }
            last = st.epoch >= cfg.epochs or bool(st.stopped)
            if val is not None and (st.epoch % cfg.eval_every == 0 or last):
                t1 = time.perf_counter()
                record.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
                record["eval_time"] = round(time.perf_counter() - t1, 3)
                value = record[self.metric]
                if self._improved(value):
                    st.best, st.best_epoch, st.bad_evals = value, st.epoch, 0
                    self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                else:
                    st.bad_evals += 1
                    if cfg.patience is not None and st.bad_evals >= cfg.patience:
                        st.stopped = f"early stopping: {self.metric} did not improve for {cfg.patience} evaluations"
                if not math.isfinite(record["train_loss"]):
                    st.stopped = "training loss is not finite"
            if world.size > 1:  # the ranks decided from the same reduced numbers; rank 0's word is final
                st.stopped = distributed.broadcast(st.stopped, world)
            self.history.append(record)
            if world.main:
                log.info("epoch %d: %s", st.epoch, {k: v for k, v in record.items() if k != "epoch"})
            self._write_epoch(record)
            if self.on_epoch is not None and world.main:
                self.on_epoch(record)
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        return {"epochs": st.epoch, "steps": st.step, "train_time": st.train_time, "best_epoch": st.best_epoch,
                self.metric: st.best, "stopped": st.stopped or "completed"}


def _isatty() -> bool:
    import sys

    return sys.stderr.isatty()


def _progress(total: int | None, desc: str, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    val = [(r["epoch"], r["val_loss"]) for r in history if "val_loss" in r]
    if val:
        ax.plot(*zip(*val), marker="o", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if all(r["train_loss"] > 0 for r in history) else "linear")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
