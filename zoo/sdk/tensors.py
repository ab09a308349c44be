"""Tensor helpers that tasks and models share: batch orders for examples of varying length, padding
rows of ids into one tensor (from lists, or from the flat rows of the prepared-data cache), mixed-precision
helpers (attention, float32 logits), moving a batch to a device."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence


def length_batches(lengths: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int, bucket: bool = True,
                   pool_batches: int = 50, shuffle_inside: bool = False) -> list[torch.Tensor]:
    """Example indices, batch by batch, for examples of the given ``lengths`` (N,).

    Training (``shuffle``): a seeded random order; with ``bucket``, pools of
    ``pool_batches`` batches are sorted by length and cut into batches (little padding),
    the batches are shuffled, and the short last batch of each pool goes last.
    ``shuffle_inside`` also shuffles the rows of every batch (no length order inside).
    Evaluation: sorted by length, since sums do not depend on the order.
    """
    if not shuffle:
        return list(torch.argsort(lengths, stable=True).split(batch_size))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g)
    if not bucket:
        return list(order.split(batch_size))
    pool = pool_batches * batch_size
    parts = [chunk[torch.argsort(lengths[chunk], stable=True)] for chunk in order.split(pool)]
    groups = [b for part in parts for b in part.split(batch_size)]
    groups = [groups[i] for i in torch.randperm(len(groups), generator=g)]
    if shuffle_inside:
        groups = [b[torch.randperm(len(b), generator=g)] for b in groups]
    groups.sort(key=lambda b: len(b) < batch_size)  # stable: the short batches go last, in shuffled order
    return groups


# --- padding rows of ids --------------------------------------------------------------------------
# Padding rows of ids into one tensor, with torch: no Python loop over the rows' items.

def pad_rows(rows: Sequence[Sequence[int] | torch.Tensor], value: int, *, width: int | None = None,
             dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``rows`` (lists of ids, or 1-d tensors) right-padded with ``value`` into one (B, T) tensor.

    ``T`` is the longest row, at least 1 (so a batch of empty rows still has a column),
    or ``width`` when given (a row longer than ``width`` is a ValueError). Tensors go
    through :func:`torch.nn.utils.rnn.pad_sequence`; lists are laid out in one step
    (one flat tensor placed under a length mask: 6x faster than a tensor per row).
    """
    lengths = [len(r) for r in rows]
    longest = max(lengths, default=0)
    if width is not None and longest > width:
        raise ValueError(f"pad_rows: a row has {longest} items, more than width={width}")
    target = width if width is not None else max(1, longest)
    if rows and all(isinstance(r, torch.Tensor) for r in rows):
        out = pad_sequence([r.to(dtype) for r in rows], batch_first=True, padding_value=value)  # (B, longest)
        return torch.nn.functional.pad(out, (0, target - out.size(1)), value=value) if out.size(1) < target else out
    flat = torch.tensor(list(chain.from_iterable(r.tolist() if isinstance(r, torch.Tensor) else r for r in rows)),
                        dtype=dtype)
    out = torch.full((len(rows), target), value, dtype=dtype)
    out[torch.arange(target)[None, :] < torch.tensor(lengths, dtype=torch.long)[:, None]] = flat  # row by row
    return out


def pad_ragged(ragged: Any, value: int, *, width: int | None = None, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """The rows of ``ragged`` (values and offsets, e.g. :meth:`zoo.sdk.prepared.Entry.ragged`) right-padded
    with ``value`` into one (B, T) tensor: the tensor :func:`pad_rows` makes of the same rows, bit for bit."""
    import numpy as np

    lengths = torch.from_numpy(np.diff(np.asarray(ragged.offsets, dtype=np.int64)))  # (B,)
    longest = int(lengths.max()) if len(lengths) else 0
    if width is not None and longest > width:
        raise ValueError(f"pad_ragged: a row has {longest} items, more than width={width}")
    target = width if width is not None else max(1, longest)
    out = torch.full((len(lengths), target), value, dtype=dtype)
    out[torch.arange(target)[None, :] < lengths[:, None]] = _flat(ragged.values, dtype)  # row by row
    return out


def ragged_rows(ragged: Any, dtype: torch.dtype = torch.long) -> list[torch.Tensor]:
    """The rows of ``ragged`` as one 1-D tensor each (views of one flat tensor in ``dtype``)."""
    import numpy as np

    lengths = np.diff(np.asarray(ragged.offsets, dtype=np.int64)).tolist()
    return list(_flat(ragged.values, dtype).split(lengths)) if lengths else []


def _flat(values: Any, dtype: torch.dtype) -> torch.Tensor:
    """A (memory-mapped) numpy array as a tensor of ``dtype``, read once."""
    import numpy as np

    return torch.from_numpy(np.array(values, dtype=torch.empty(0, dtype=dtype).numpy().dtype))


# --- mixed-precision helpers models share ---------------------------------------------------------
# Mixed-precision helpers that models share.
#
# Under bf16 autocast two things are better kept in float32:
#
# - attention while training on a CPU: torch's CPU flash-attention backward is several
#   times slower in bf16 than in float32 (torch 2.13: 5.2 ms against 0.8 ms per call for
#   (12, 4, 64, 32) blocks), while the matrix products around it gain about 3x from bf16
#   on a CPU with AMX;
# - output logits: bf16 keeps about 3 significant digits, which cost ``shakespeare-char-gpt``
#   ~0.014 nats of validation loss; in float32 the loss matches a float32 run.

def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, in float32 when training with bf16 inputs on a CPU."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu" and torch.is_grad_enabled():
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kwargs)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


def float32_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in float32, under autocast too (for logits)."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), layer.weight.float(), None if layer.bias is None else layer.bias.float())
    return layer(x).float()  # a no-op for a float32 model


def to_device(batch: dict[str, Any], device: torch.device, pin: bool = True) -> dict[str, Any]:
    """The batch's tensors on ``device``; to a GPU through pinned memory, without waiting for the copy."""
    if device.type != "cuda":
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def move(v: torch.Tensor) -> torch.Tensor:
        if pin and v.device.type == "cpu":
            v = v.pin_memory()
        return v.to(device, non_blocking=True)

    return {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
