"""Will a model fit? Its size from the config alone, against the memory this machine has.

:func:`estimate_parameters` builds the model on torch's ``meta`` device, where
tensors have shapes but no storage, so even an absurd config costs neither
memory nor much time. :func:`check_fits` compares the float32 weights plus
their gradients and Adam's two moments (:data:`BYTES_PER_PARAMETER`, about 16
bytes a parameter) with the memory available, and refuses with a ConfigError
that gives the estimate. Activations are not counted, so the estimate is a lower
bound: a model refused here could never have trained on this machine.
:func:`check_model_fits` does both for a model class, its config and sizes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

log = logging.getLogger(__name__)

BYTES_PER_PARAMETER = 16  # float32 weight + gradient + Adam's exp_avg and exp_avg_sq, 4 bytes each
GIB = 2**30


def estimate_parameters(model_cls: Any, config: Any, sizes: dict[str, Any]) -> int | None:
    """Parameters of ``model_cls(config, **sizes)``, counted on the meta device (no memory is taken).

    None when the model cannot be built there (a constructor that reads real data, say):
    the real build will then say what is wrong, and no estimate is given.
    """
    import torch

    try:
        with torch.device("meta"):
            model = model_cls(config, **sizes)
    except Exception as exc:  # noqa: BLE001 - an estimate is optional; the real build reports real errors
        log.debug("no parameter estimate for %s: %s", getattr(model_cls, "__name__", model_cls), exc)
        return None
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def available_memory() -> int | None:
    """Bytes this process could still take: /proc/meminfo's MemAvailable, capped by a cgroup limit;
    elsewhere the free pages os.sysconf reports. None when the platform tells neither."""
    found = [m for m in (_meminfo_available(), _cgroup_available()) if m is not None]
    if found:
        return min(found)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def device_memory(device: Any) -> int | None:
    """Free bytes on ``device``: a CUDA device's free memory, else :func:`available_memory`."""
    if getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return available_memory()


def check_fits(n_params: int, *, what: str = "the model", available: int | None = None,
               where: str = "this machine") -> None:
    """Refuse ``n_params`` parameters whose weights and optimizer state exceed ``available`` bytes
    (default: :func:`available_memory`); no check when the memory is unknown."""
    available = available_memory() if available is None else available
    need = n_params * BYTES_PER_PARAMETER
    if available is None or need <= available:
        return
    raise ConfigError(
        f"{what} gives about {_count(n_params)} parameters, about {_size(need)} with gradients and "
        f"optimizer state; {where} has {_size(available)} available: choose smaller sizes")


def check_model_fits(model_cls: Any, config: Any, sizes: dict[str, Any], *, section: str = "model",
                     available: int | None = None, where: str = "this machine") -> int | None:
    """:func:`estimate_parameters` then :func:`check_fits`, naming the config's sizes; the estimate."""
    n_params = estimate_parameters(model_cls, config, sizes)
    if n_params is not None:
        check_fits(n_params, what=describe_sizes(config, section), available=available, where=where)
    return n_params


def describe_sizes(config: Any, section: str = "model") -> str:
    """``model.emb_dim=128, model.hidden=256, model.layers=3``: the integer fields of a config."""
    ints = [f"{section}.{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
            if isinstance(getattr(config, f.name), int) and not isinstance(getattr(config, f.name), bool)]
    return ", ".join(ints) or section


def _count(n: int) -> str:
    if n < 10**6:
        return f"{n:,}"
    return f"{n / 10**6:,.1f} million" if n < 10**9 else f"{n / 10**9:,.1f} billion"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / GIB:,.1f} GiB" if n_bytes >= GIB else f"{n_bytes / 2**20:,.0f} MiB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """What a cgroup (v2, else v1) memory limit leaves this container; None without a limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = Path(limit).read_text(encoding="ascii").strip()
            if cap == "max" or int(cap) >= 2**60:  # v1 writes "no limit" as a huge number
                return None
            return max(0, int(cap) - int(Path(usage).read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            continue
    return None
