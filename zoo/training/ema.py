"""An exponential moving average of a model's weights (``train.ema``).

After every optimizer step the average moves towards the live weights:
``avg <- d * avg + (1 - d) * live`` with ``d = min(ema, (1 + step) / (10 + step))``, so the
first steps, whose weights are far from the end, fade quickly. Validation reads the
average, and the best checkpoint and the saved model are the average; the optimizer keeps
stepping the live weights. Only floating-point tensors are averaged (integer buffers stay
the model's own).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch

log = logging.getLogger(__name__)


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        live = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
        self.shadow = {k: v.detach().clone() for k, v in live.items()}
        # the optimizer and load_state_dict change weights in place: these views stay the live weights,
        # so the step loop needs no state_dict() of its own
        self._pairs = ([self.shadow[k] for k in live], [v.detach() for v in live.values()])

    def rate(self, step: int) -> float:
        """The decay applied after optimizer step ``step`` (1-based)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(*self._pairs, 1.0 - self.rate(step))

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """``model`` holds the average inside the block and its live weights again after it."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(live, strict=False)

    def resumed(self, model: torch.nn.Module, saved: dict[str, torch.Tensor] | None) -> WeightAverage:
        """This average continued from a checkpoint's; from ``model``'s resumed weights when it holds none
        (a run started without train.ema)."""
        if not saved:
            log.info("train.ema: the checkpoint holds no weight average; it starts from the resumed weights")
            return WeightAverage(model, self.decay)
        self.load_state_dict(saved)
        return self

    def state_dict(self) -> dict[str, Any]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"the checkpoint's weight average lacks {sorted(missing)[0]}")
        for k, v in self.shadow.items():
            v.copy_(state[k])


def averaged(average: WeightAverage | None, model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """``model`` holds ``average`` inside the block; without an average, nothing changes."""
    return average.applied(model) if average is not None else contextlib.nullcontext()
