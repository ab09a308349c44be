"""Mixed-precision helpers that models share.

Under bf16 autocast two things are better kept in float32:

- attention while training on a CPU: torch's CPU flash-attention backward is several
  times slower in bf16 than in float32 (torch 2.13: 5.2 ms against 0.8 ms per call for
  (12, 4, 64, 32) blocks), while the matrix products around it gain about 3x from bf16
  on a CPU with AMX;
- output logits: bf16 keeps about 3 significant digits, which cost ``shakespeare-char-gpt``
  ~0.014 nats of validation loss; in float32 the loss matches a float32 run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
