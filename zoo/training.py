"""The training building blocks under their earlier home, ``zoo.training`` (kept for existing imports).

Each lives in a module of its own: :mod:`zoo.trainer` (the loop), :mod:`zoo.train_config`,
:mod:`zoo.optim`, :mod:`zoo.device`, :mod:`zoo.checkpoint`, :mod:`zoo.evaluation`,
:mod:`zoo.parallel` and :mod:`zoo.progress`.
"""

from __future__ import annotations

from .checkpoint import CHECKPOINT, METRICS, load_checkpoint, save_checkpoint
from .device import autocast, autocast_dtype, cpu_has_bf16, resolve_device, to_device
from .evaluation import evaluate
from .optim import lr_factor, make_optimizer
from .parallel import shard
from .progress import plot_losses
from .rng import rank_seed
from .train_config import OptimConfig, TrainConfig
from .trainer import Trainer, TrainerState

__all__ = [
    "CHECKPOINT", "METRICS", "load_checkpoint", "save_checkpoint",
    "autocast", "autocast_dtype", "cpu_has_bf16", "resolve_device", "to_device",
    "evaluate", "lr_factor", "make_optimizer", "shard", "plot_losses", "rank_seed",
    "OptimConfig", "TrainConfig", "Trainer", "TrainerState",
]
