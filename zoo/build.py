"""Building the pieces of a run from a resolved config: dataset, tokenizers, task, encoded splits, model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ZooError
from .resolve import Resolved


@dataclass
class Built:
    resolved: Resolved
    dataset: Any
    tokenizers: dict[str, Any]
    task: Any
    model: Any = None
    splits: dict[str, Any] = field(default_factory=dict)  # encoded splits


def make_task(resolved: Resolved, tokenizer_states: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """The task and its tokenizers (by role), the tokenizers restored from ``tokenizer_states`` when given."""
    task_cls = resolved.cls("task")
    toks = {}
    for role in task_cls.tokenizer_roles:
        key = f"tokenizer.{role}"
        toks[role] = resolved.cls(key)(resolved.configs[key])
        if tokenizer_states is not None:
            toks[role].set_state(tokenizer_states[role]["state"])
    return task_cls(resolved.configs["task"], toks), toks


def make_model(resolved: Resolved, sizes: dict[str, int]) -> Any:
    """The model the config names, built from its config section and the task's sizes."""
    return resolved.cls("model")(resolved.configs["model"], **sizes)


def build(resolved: Resolved, data_dir: str | Path | None, tokenizer_states: dict[str, Any] | None,
          splits: tuple[str, ...]) -> Built:
    """Dataset, tokenizers (fitted on the train split unless their states are given), task and encoded splits."""
    from .data import data_dir as _data_dir
    from .prepared import splits as prepared

    dataset = resolved.cls("dataset")(resolved.configs["dataset"], data_dir=_data_dir(data_dir))
    task, toks = make_task(resolved, tokenizer_states)
    task.data_dir = dataset.data_dir  # where init_model finds files named relative to the data dir
    built = Built(resolved, dataset, toks, task)
    if prepared.supports_cache(task, dataset):  # the task's prepared splits, fitted and encoded once per key
        tcfg = resolved.configs.get("train")
        built.splits = prepared.prepare_splits(resolved, dataset, task, tokenizer_states,
                                               [s for s in splits if s in dataset.splits],
                                               cache=getattr(tcfg, "cache", True), progress=_show_progress(tcfg))
        return built
    examples = {s: dataset.load(s) for s in splits if s in dataset.splits}
    if tokenizer_states is None:
        if "train" not in examples:
            raise ZooError(f"dataset {resolved.specs['dataset'].id} has no 'train' split to fit tokenizers on")
        task.fit_tokenizers(examples["train"])
    built.splits = {s: task.encode(ex) for s, ex in examples.items()}
    return built


def _show_progress(tcfg: Any) -> bool:
    from .progress import isatty

    return bool(getattr(tcfg, "progress", False)) and isatty()


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
