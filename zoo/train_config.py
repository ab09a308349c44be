"""The ``[train]`` and ``[optim]`` sections of a run config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TrainConfig:
    epochs: int = 10
    steps_per_epoch: int | None = None  # optimizer steps per epoch; none: one pass over the train split
    max_steps: int | None = None  # stop after this many optimizer steps in all
    max_time: float | None = None  # stop after this many seconds of training (evaluation not counted)
    batch_size: int = 64  # the global batch: under DDP each of N processes takes about batch_size / N rows
    eval_batch_size: int | None = None  # none: same as batch_size
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_norm: float | None = 1.0  # max global gradient norm; none: no clipping
    seed: int = 0
    device: str = "auto"  # auto: cuda when present, else cpu
    # auto: bf16 on CUDA when supported, off on CPU; bf16 on a CPU is fast only with AVX512-BF16 or AMX
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    early_stopping: str | None = None  # metric to select the best epoch by, e.g. "val_loss"; none: the task's first metric
    patience: int | None = None  # stop after this many evaluations without improvement; none: never stop early
    min_delta: float = 0.0  # smallest change that counts as an improvement
    freeze: dict[str, int] = field(default_factory=dict)  # parameter group -> epochs it stays frozen
    eval_every: int = 1  # evaluate every N epochs (and after the last)
    threads: int | None = None  # torch.set_num_threads; none: torch's default
    progress: bool = True  # progress bar on a terminal
    pin_memory: bool = True  # CUDA: copy batches through page-locked memory, without waiting for the copy
    dist_timeout: float = 300.0  # DDP: seconds a rank waits in a collective for a hung peer before it gives up
    find_unused: bool = False  # DDP: allow parameters that a forward pass leaves unused (slower: it searches the graph)

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dist_timeout <= 0:
            raise ValueError(f"dist_timeout must be > 0 seconds, got {self.dist_timeout}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or none, got {self.patience}")
        for group, epochs in self.freeze.items():
            if epochs < 0:
                raise ValueError(f"freeze.{group} must be >= 0 epochs, got {epochs}")


@dataclass
class OptimConfig:
    name: Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd and rmsprop
    betas: tuple[float, float] = (0.9, 0.999)  # adam and adamw
    eps: float = 1e-8
    schedule: Literal["constant", "cosine", "linear"] = "constant"  # after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr: float = 0.0  # where cosine and linear decay end
    fused: bool | None = None  # fused adam/adamw kernels; none: where this torch has them for the device
    decay_1d: bool = False  # apply weight_decay to biases and norm weights too (GPT practice: no)

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
