"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, DDP keeps them in step.

``torchrun --nproc-per-node N -m zoo train ENTRY`` (or ``zoo train --nproc N ENTRY``, which calls
torchrun's launcher: :mod:`zoo.cli.launch`) runs the same command in N processes. Each joins one process group (gloo on
the CPU, nccl on CUDA) and trains on its rows of every global batch (:meth:`zoo.Task.split_batch`);
``train.batch_size`` stays the global batch, so a run reaches the same weights whatever N is.
Rank 0 alone writes the run folder.

torch is imported only inside the functions: ``zoo --help`` stays light.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import (
    ConfigError,
    DeviceError,
    ZooError,
    ZooUsageError,
    first_line,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """Where this process stands in a data-parallel run; a lone process is rank 0 of 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank on this machine: the index of its GPU

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env(environ: dict[str, str] | None = None) -> World:
    """The world torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; one process when unset."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from None
    return World(rank, size, local)


def current() -> World:
    """The world of this process's initialised process group; one process when there is none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return World()
    rank = dist.get_rank()
    return World(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", str(rank))))


def device_for(name: str, world: World) -> torch.device:
    """The device of this rank: ``name`` resolved, and under DDP the GPU of its local rank."""
    import torch

    from zoo.runtime.device import resolve_device

    device = resolve_device(name)
    if world.size == 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"train.device={name}: with several processes each one takes the GPU of its local "
                          "rank; use device=cuda")
    n = torch.cuda.device_count()
    if world.local_rank >= n:
        raise DeviceError(f"local rank {world.local_rank} has no GPU of its own: this machine has {n}; "
                          f"start at most {n} processes on it")
    return torch.device("cuda", world.local_rank)


def start(device_name: str, timeout_s: float) -> bool:
    """Join the process group torchrun prepared for this process (gloo on the CPU, nccl on CUDA).

    Returns False, and does nothing, for a lone process or when the caller already
    initialised a group; True when the group is ours to destroy with :func:`stop`.
    """
    import datetime

    import torch
    import torch.distributed as dist

    world = from_env()
    if world.size == 1 or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise ZooError("this torch has no torch.distributed: train in a single process (without torchrun)")
    device = device_for(device_name, world)
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend, kwargs["device_id"] = "nccl", device
    else:
        backend = "gloo"
    try:  # the timeout bounds how long a rank waits in a collective for a hung peer
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise ZooError(f"rank {world.rank} of {world.size} cannot join the {backend} process group "
                       f"({first_line(exc)}); "
                       "start the processes with 'torchrun' or 'zoo train --nproc N'") from None
    log.info("rank %d of %d joined the %s process group on %s", world.rank, world.size, backend, device)
    return True


def stop(started: bool) -> None:
    """Leave the process group :func:`start` joined."""
    if started:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


def gather(obj: Any, world: World) -> list[Any]:
    """``obj`` of every rank, in rank order (picklable objects)."""
    if world.size == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world.size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_dicts(sums: dict[str, float], world: World) -> dict[str, float]:
    """Key-wise sums of every rank's ``sums``, added in rank order: the same floats on every rank."""
    total: dict[str, float] = {}
    for part in gather(sums, world):
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + v
    return total


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (decisions such as a time budget that ran out)."""
    if world.size == 1:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_sum_(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place."""
    if world.size > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "nccl", "gloo", "timed out",
         "timeout")


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says that another rank went away (a collective failed or timed out)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(s in text for s in _LOST)


# --- how many processes: zoo train --nproc N --------------------------------------------------------

def max_procs(device: torch.device) -> tuple[int, str]:
    """How many processes this machine can give one device each: GPUs on CUDA, cores on the CPU."""
    import torch

    from zoo.runtime.device import cpu_cores

    n, what = (torch.cuda.device_count(), "CUDA device") if device.type == "cuda" else (cpu_cores(), "CPU core")
    return n, f"{n} {what}{'s' if n != 1 else ''}"


def require_procs(nproc: int) -> None:
    """A run takes at least one process."""
    if nproc < 1:
        raise ZooUsageError(f"nproc={nproc}: give at least 1 process")


def check_nproc(nproc: int, device: torch.device) -> None:
    """``nproc`` processes fit this machine: one per GPU (CUDA) or CPU core."""
    require_procs(nproc)
    limit, what = max_procs(device)
    if nproc > limit:
        raise ZooUsageError(f"nproc={nproc}: this machine has {what} for {device.type} training; "
                            f"use nproc={limit} or fewer")
