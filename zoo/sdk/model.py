"""The model interface: an ``nn.Module`` built from a config dataclass and the task's sizes."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from zoo.config import EmptyConfig


class Model(nn.Module):
    """Base class of every zoo model.

    ``Model(config, **sizes)``: ``config`` is an instance of ``Config``; ``sizes``
    come from the task (vocab sizes, number of classes, pad id). The device comes
    from the inputs. Bump ``arch_version`` whenever saved weights stop fitting.
    """

    Config: ClassVar[type] = EmptyConfig
    arch_version: ClassVar[int] = 1

    def __init__(self, config: Any = None, **sizes: int):
        super().__init__()
        self.config = config if config is not None else self.Config()
        self.sizes = dict(sizes)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups for the freeze schedule; default: one per top-level child."""
        return {name: list(child.parameters()) for name, child in self.named_children()}


def ensemble_size(model: Any) -> int:
    """How many members ``model`` fits on their own losses, seen through a DDP or ``torch.compile`` wrapper: its
    ``ensemble_size`` attribute, else ``config.members``; 1 for a model with neither.

    A task whose model may be an ensemble asks this in ``loss`` and, above 1, calls the model with
    ``each=True`` to get every member's output and averages the members' own losses.
    """
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    size = getattr(inner, "ensemble_size", None)
    if size is None:
        size = getattr(getattr(inner, "config", None), "members", 1)
    return int(size or 1)
