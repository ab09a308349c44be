"""The pieces of a run and how each is made from a resolved config: the task with its tokenizers, the model,
the tokenizers' states; the split results are reported on; seeding. :mod:`zoo.build.prepare` puts them
together with the dataset and its encoded splits."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError, ZooError, first_line
from zoo.registry.resolve import Resolved


@dataclass
class Built:
    resolved: Resolved
    dataset: Any
    tokenizers: dict[str, Any]
    task: Any
    model: Any = None
    splits: dict[str, Any] = field(default_factory=dict)  # encoded splits
    states: dict[str, Any] | None = None  # the fitted tokenizers' states (zoo.build.prepare.build_training)


def make_task(resolved: Resolved, tokenizer_states: dict[str, Any] | None,
              data_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The task and its tokenizers (by role), the tokenizers restored from ``tokenizer_states`` when given;
    ``data_dir`` is the run's data dir, where the task's ``init_model`` finds files named relative to it."""
    task_cls = resolved.classes["task"]
    toks = {}
    for role in task_cls.tokenizer_roles:
        key = f"tokenizer.{role}"
        toks[role] = resolved.classes[key](resolved.configs[key])
        if tokenizer_states is not None:
            try:
                toks[role].set_state(tokenizer_states[role]["state"])
            except (ZooError, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
                raise ArtifactError(f"metadata 'tokenizers.{role}.state' is damaged: {first_line(exc)}") from exc
    if "data_dir" in inspect.signature(task_cls).parameters:
        return task_cls(resolved.configs["task"], toks, data_dir=data_dir), toks
    task = task_cls(resolved.configs["task"], toks)  # a plugin's __init__ of before data_dir was a parameter
    task.data_dir = data_dir
    return task, toks


def make_model(resolved: Resolved, sizes: dict[str, int]) -> Any:
    """The model the config names, built from its config section and the task's sizes."""
    return resolved.classes["model"](resolved.configs["model"], **sizes)


def final_split(dataset: Any) -> str:
    """The split results are reported on: test, or val for datasets without one (e.g. nanoGPT's)."""
    return "test" if "test" in dataset.splits else "val"


def tokenizer_states(built: Built) -> dict[str, Any]:
    return {role: {"name": built.resolved.specs[f"tokenizer.{role}"].id, "state": tok.get_state()}
            for role, tok in built.tokenizers.items()}


def seed(value: int) -> None:
    """Seed Python's and torch's generators: a run's tokenizers and initial weights start from here."""
    import random

    import torch

    random.seed(value)
    torch.manual_seed(value)
