"""The ``[train]`` and ``[optim]`` sections of a run config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from zoo.config import SEED, Range


@dataclass
class TrainConfig:
    epochs: Annotated[int, Range(1)] = 10  # passes over the train split (or steps_per_epoch chunks of steps)
    # optimizer steps per epoch; none: one pass over the train split
    steps_per_epoch: Annotated[int, Range(1, 10**12, note="none: one pass over the train split")] | None = None
    max_steps: Annotated[int, Range(1, 10**12)] | None = None  # stop after this many optimizer steps in all
    # stop after this many seconds of training (evaluation not counted: see max_eval_time)
    max_time: Annotated[float, Range(gt=0, le=10**9)] | None = None
    # end each evaluation after this many seconds (the batch under way finishes); later evaluations then stop after
    # as many batches, so epochs compare; the epoch record's eval_examples says how many examples it took
    max_eval_time: Annotated[float, Range(gt=0, le=10**9)] | None = None
    # the global batch: under DDP each of N processes takes about batch_size / N rows
    batch_size: Annotated[int, Range(1, 2**24)] = 64
    # the batch at evaluation and in zoo eval (no gradients: it can be larger); none: same as batch_size
    eval_batch_size: Annotated[int, Range(1, 2**24, note="none: same as batch_size")] | None = None
    grad_accum: Annotated[int, Range(1, 65536)] = 1  # micro-batches per optimizer step
    # max global gradient norm; none: no clipping (a negative norm would flip every gradient, 0 would zero them)
    clip_norm: Annotated[float, Range(gt=0, note="none: no clipping")] | None = 1.0
    seed: Annotated[int, SEED] = 0  # seeds every random choice of the run: initial weights, batch order, dropout
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
    # CPU threads torch uses (torch.set_num_threads); none: torch's default
    threads: Annotated[int, Range(1, 1024, note="none: torch's default")] | None = None
    progress: bool = True  # progress bar on a terminal
    pin_memory: bool = True  # CUDA: copy batches through page-locked memory, without waiting for the copy
    # DDP: seconds a rank waits in a collective for a hung peer before it gives up (at most a week)
    dist_timeout: Annotated[float, Range(gt=0, le=604_800)] = 300.0
    find_unused: bool = False  # DDP: allow parameters that a forward pass leaves unused (slower: it searches the graph)
    # reuse what the task prepared of each split in an earlier run with the same data and settings (the
    # prepared-data cache under $ZOO_CACHE_DIR/prepared); false: prepare afresh and keep nothing (--no-cache)
    cache: bool = True
    # decay of an exponential moving average of the weights (e.g. 0.999), kept after every optimizer step;
    # validation, the best checkpoint and the saved model use the average; none: no average
    ema: Annotated[float, Range(gt=0, lt=1, note="none: no average")] | None = None
    # experiment trackers the run reports to on rank 0 ('zoo list --kind logger'), e.g. ["tensorboard", "mlflow"]
    loggers: list[str] = field(default_factory=list)
    log_artifact: bool = False  # with train.loggers: also hand model.safetensors to the trackers that keep files

    @property
    def eval_batch(self) -> int:
        """The batch size of evaluation: ``eval_batch_size``, else ``batch_size``."""
        return self.eval_batch_size or self.batch_size


@dataclass
class OptimConfig:
    name: Literal["sgd", "adagrad", "rmsprop", "adam", "adamw"] = "adam"  # the torch.optim optimizer
    lr: Annotated[float, Range(gt=0)] = 1e-3  # learning rate (the peak, with warmup_steps and a schedule)
    weight_decay: Annotated[float, Range(0, 100)] = 0.0  # L2 penalty; decoupled (AdamW-style) for adamw
    momentum: Annotated[float, Range(0, lt=1)] = 0.0  # sgd and rmsprop
    betas: Annotated[tuple[float, float], Range(0, lt=1)] = (0.9, 0.999)  # adam and adamw, each in [0, 1)
    eps: Annotated[float, Range(gt=0, le=1)] = 1e-8  # added to the denominator of adam, adamw, rmsprop, adagrad
    schedule: Literal["constant", "cosine", "linear"] = "constant"  # after warm-up
    warmup_steps: Annotated[int, Range(0, 10**12)] = 0  # linear warm-up from 0 to lr
    min_lr: Annotated[float, Range(0)] = 0.0  # where cosine and linear decay end; at most lr
    fused: bool | None = None  # fused adam/adamw kernels; none: where this torch has them for the device
    decay_1d: bool = False  # apply weight_decay to biases and norm weights too (GPT practice: no)

    def validate(self) -> None:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
