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
from ._io import atomic_path, atomic_write  # noqa: E402
from .config import SEED, EmptyConfig, Range, dumps_toml, load_toml, parse_sets  # noqa: E402
from .config import build as build_config  # noqa: E402
from .config import merge as merge_config  # noqa: E402
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
    first_line,
)
from .files import data_dir, download, local_path, sha256_file, verify  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .interfaces import Dataset, ModelContract, Source, Task, Tokenizer, VocabTokenizer  # noqa: E402
from .prepared.stream import TextStream, read_chunks, split_text, whitespace_cuts  # noqa: E402
from .metrics import class_counts, class_scores, confusion_matrix, macro_f1, precision_recall_f1  # noqa: E402
from .vocab import LabelTokenizer, by_frequency  # noqa: E402

__all__ = [
    "__version__",
    # interfaces
    "Tokenizer", "VocabTokenizer", "LabelTokenizer", "Dataset", "Source", "Task", "ModelContract", "Model",
    "EmptyConfig", "hookimpl",
    # configs: ranges, merging, --set parsing, TOML
    "Range", "SEED", "build_config", "merge_config", "parse_sets", "load_toml", "dumps_toml",
    # files: reading, a user's own files, official files downloaded and verified, atomic writes
    "read_text", "data_dir", "local_path", "download", "verify", "sha256_file", "atomic_write", "atomic_path",
    # text in chunks, for preparing large corpora (zoo.prepared)
    "TextStream", "read_chunks", "whitespace_cuts", "split_text",
    # vocabularies, padding, metrics, mixed-precision helpers for models
    "by_frequency", "pad_rows", "precision_recall_f1", "confusion_matrix", "class_counts", "class_scores",
    "macro_f1", "attention", "float32_linear",
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
    "ArtifactError", "RunDirError", "DeviceError", "TrainingError", "first_line",
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
    "pad_rows": "zoo.padding",
    "attention": "zoo.ops",
    "float32_linear": "zoo.ops",
}


def __getattr__(name: str) -> Any:  # PEP 562: keep torch out of `import zoo`
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
