"""Where a run computes: the device, bfloat16 support, the autocast dtype of ``train.amp``, moving batches."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
import os

import torch

from zoo.errors import DeviceError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={name}: CUDA is not available on this machine; use device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device '{name}' is not supported: use auto, cpu, cuda or cuda:N")
    return device


def cpu_cores() -> int:
    """The CPU cores of this machine: what ``zoo train --nproc`` may start on the CPU. Like
    :func:`cpu_has_bf16`, a function of its own so that tests can play any machine."""
    return os.cpu_count() or 1


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
        # emulated bf16 is slower than float32 and no more accurate: a recipe written for bf16 still runs
        log.warning("train.amp=bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX); training in "
                    "float32 instead (--set train.amp=off says so and silences this)")
        return None
    if amp == "bf16" and not bf16:
        raise DeviceError(f"train.amp=bf16: {torch.cuda.get_device_name(device)} has no bfloat16; "
                          "use train.amp=fp16 (with a gradient scaler) or auto")
    return torch.bfloat16 if bf16 else torch.float16  # auto on a GPU without bf16: fp16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` (``train.threads``) inside the block and restored after it;
    none: unchanged. Training never leaves a process with another thread count than it found."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and torch.get_num_threads() != before:
            torch.set_num_threads(before)
