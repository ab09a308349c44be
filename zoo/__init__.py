"""zoo: a plugin-based model zoo for PyTorch sequence models.

``import zoo`` is light: torch and model code load only when a model is built,
trained or loaded (``zoo.Model`` and ``zoo.Trainer`` are imported on first
access).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .api import (  # noqa: E402
    evaluate,
    export,
    generate,
    get_model,
    get_registry,
    list_datasets,
    list_entries,
    list_models,
    list_tasks,
    list_tokenizers,
    load,
    plugin_state,
    resolve_entry,
    train,
)
from .config import EmptyConfig  # noqa: E402
from .data import read_text  # noqa: E402
from .errors import (  # noqa: E402
    AmbiguousNameError,
    ArtifactError,
    ConfigError,
    DataError,
    DeviceError,
    RunDirError,
    TrainingError,
    UnknownNameError,
    ZooError,
    ZooUsageError,
)
from .hookspecs import hookimpl  # noqa: E402
from .interfaces import Dataset, Source, Task, Tokenizer, VocabTokenizer  # noqa: E402

__all__ = [
    "__version__",
    # interfaces
    "Tokenizer", "VocabTokenizer", "Dataset", "Source", "Task", "Model", "EmptyConfig", "hookimpl", "read_text",
    # API
    "list_entries", "list_models", "list_tokenizers", "list_datasets", "list_tasks", "get_model",
    "resolve_entry", "train", "evaluate", "load", "export", "generate", "plugin_state", "get_registry",
    # training building blocks
    "Trainer", "TrainConfig", "OptimConfig",
    # word vectors (gensim-trained or read from GloVe / word2vec files)
    "Vectors", "train_vectors", "load_vectors", "save_vectors", "embedding_matrix",
    # batch orders for padded, varying-length examples
    "length_batches",
    # errors
    "ZooError", "ZooUsageError", "UnknownNameError", "AmbiguousNameError", "ConfigError", "DataError",
    "ArtifactError", "RunDirError", "DeviceError", "TrainingError",
]

_LAZY = {
    "Model": "zoo.model",
    "Trainer": "zoo.trainer",
    "TrainConfig": "zoo.train_config",
    "OptimConfig": "zoo.train_config",
    "Vectors": "zoo.embeddings",
    "train_vectors": "zoo.embeddings",
    "load_vectors": "zoo.embeddings",
    "save_vectors": "zoo.embeddings",
    "embedding_matrix": "zoo.embeddings",
    "length_batches": "zoo.batching",
}


def __getattr__(name: str) -> Any:  # PEP 562: keep torch out of `import zoo`
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
