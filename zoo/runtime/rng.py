"""The random streams of a run: the seeds derived from the run's seed, and their state in checkpoints."""

from __future__ import annotations

import random
from typing import Any

import torch

from zoo.runtime.distributed import World

EPOCH_SEED_STRIDE = 100003  # a prime: the shuffle seeds of (seed, epoch) pairs do not collide below 100003 epochs
RANK_SEED_STRIDE = 1_000_003  # a prime: the ranks' dropout streams stay apart from each other and from seed + step
PY_RNG_VERSION = 3  # the version field of random.getstate() (Mersenne Twister), which setstate wants back


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: every epoch its own order, the same on every rank."""
    return seed * EPOCH_SEED_STRIDE + epoch


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The torch seed of one DDP rank: its own dropout stream, derived from the run's seed."""
    return seed + RANK_SEED_STRIDE * (rank + 1) + step


def process_rng() -> dict[str, Any]:
    """This process's random state (torch, Python, every CUDA device), for a checkpoint."""
    state = random.getstate()
    return {"torch": torch.get_rng_state(), "python": list(state[1]), "python_gauss": state[2],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def rank_rng(device: torch.device) -> dict[str, Any]:
    """One DDP rank's own dropout stream: its torch state and its GPU's."""
    cuda = device.type == "cuda"
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}


def restore_rng(rng: dict[str, Any], ranks: list[dict[str, Any]], world: World, device: torch.device,
                fresh_seed: int) -> None:
    """Continue the streams :func:`process_rng` and :func:`rank_rng` saved.

    Under DDP each rank continues its own stream; with another number of processes than
    the checkpoint's, each rank starts a fresh one from ``fresh_seed``.
    """
    torch.set_rng_state(rng["torch"])
    random.setstate((PY_RNG_VERSION, tuple(rng["python"]), rng["python_gauss"]))
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if world.size == 1:
        return
    if len(ranks) == world.size:
        torch.set_rng_state(ranks[world.rank]["torch"])
        if ranks[world.rank].get("cuda") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(ranks[world.rank]["cuda"], device)
    else:
        torch.manual_seed(fresh_seed)
