"""The programmatic API behind ``import zoo`` and the CLI: a facade that hands each call on.

Names and plugins: :mod:`zoo.registry.discovery`; config resolution: :mod:`zoo.registry.resolve`; building a
run's pieces: :mod:`zoo.build.pieces`; training runs: :mod:`zoo.training.run`; artifacts: :mod:`zoo.inference.load`;
evaluating one: :mod:`zoo.training.evaluation`.
Light at import: torch and plugin code load only when a model is built, trained, evaluated or loaded.
"""

from __future__ import annotations

from typing import Any

from zoo import config as _config
from zoo.inference.load import (
    LoadedModel,
    artifact_path,
    default_split,
    export,
    generate,
    load,
    write_outputs,
)
from zoo.registry.discovery import Zoo, get_registry, plugin_state, reset
from zoo.registry.resolve import Resolved, resolve, resolve_entry
from zoo.training.run import RunResult, check_train, train

__all__ = [
    "Zoo", "plugin_state", "reset", "get_registry",
    "list_entries", "list_models", "list_tokenizers", "list_datasets", "list_tasks", "get_model",
    "Resolved", "resolve", "resolve_entry",
    "RunResult", "check_train", "train",
    "LoadedModel", "load", "evaluate", "generate", "export", "artifact_path", "default_split", "write_outputs",
]


def _ids(kind: str, pattern: str) -> list[str]:
    return [s.id for s in get_registry().list(kind, pattern)]


def list_entries(pattern: str = "*") -> list[str]:
    """Canonical ids of zoo entries matching the fnmatch ``pattern``."""
    return _ids("entry", pattern)


def list_models(pattern: str = "*") -> list[str]:
    """Canonical ids of model architectures matching ``pattern``, e.g. ``list_models("gru*")``."""
    return _ids("model", pattern)


def list_tokenizers(pattern: str = "*") -> list[str]:
    """Canonical ids of tokenizers matching the fnmatch ``pattern``."""
    return _ids("tokenizer", pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Canonical ids of datasets matching the fnmatch ``pattern``."""
    return _ids("dataset", pattern)


def list_tasks(pattern: str = "*") -> list[str]:
    """Canonical ids of tasks matching the fnmatch ``pattern``."""
    return _ids("task", pattern)


def get_model(name: str, *, config: dict[str, Any] | None = None, **sizes: int):
    """Build model ``name`` with ``config`` overrides and the task sizes (``vocab_size=...``)."""
    cls = get_registry().get("model", name).load()
    return cls(_config.build(cls.Config, config, "model"), **sizes)


def evaluate(path: Any, split: str | None = None, **kwargs: Any) -> dict[str, float]:
    """Metrics of an artifact on one split of its dataset: see :func:`zoo.training.evaluation.evaluate_artifact`
    (imported on call: the evaluation loop needs torch)."""
    from zoo.training.evaluation import evaluate_artifact

    return evaluate_artifact(path, split, **kwargs)
