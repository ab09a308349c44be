"""Padding rows of ids into one tensor, with torch's own :func:`torch.nn.utils.rnn.pad_sequence`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence


def pad_rows(rows: Sequence[Sequence[int] | torch.Tensor], value: int, *, width: int | None = None,
             dtype: torch.dtype = torch.long) -> torch.Tensor:
    """``rows`` (lists of ids or 1-d tensors) right-padded with ``value`` into one (B, T) tensor.

    ``T`` is the longest row, at least 1 (so a batch of empty rows still has a column),
    or ``width`` when given (a row longer than ``width`` is a ValueError).
    """
    tensors = [r.to(dtype) if isinstance(r, torch.Tensor) else torch.as_tensor(r, dtype=dtype) for r in rows]
    longest = max((len(t) for t in tensors), default=0)
    if width is not None and longest > width:
        raise ValueError(f"pad_rows: a row has {longest} items, more than width={width}")
    target = width if width is not None else max(1, longest)
    if not tensors:
        return torch.full((0, target), value, dtype=dtype)
    out: Any = pad_sequence(tensors, batch_first=True, padding_value=value)  # (B, longest)
    if out.size(1) < target:
        out = torch.nn.functional.pad(out, (0, target - out.size(1)), value=value)
    return out
