"""The optimizer a run config names, and its learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.config.train import OptimConfig
from zoo.errors import ConfigError


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
