"""zoo: a plugin-based model zoo for PyTorch sequence models.

``import zoo`` is light: torch and model code load only when a model is built,
trained or loaded (``zoo.Model`` and ``zoo.Trainer`` are imported on first
access).
"""

from __future__ import annotations

from typing import Any

from zoo._version import __version__
from zoo.api import (
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
from zoo.config import (
    SEED,
    EmptyConfig,
    Range,
    dumps_toml,
    load_toml,
    parse_sets,
    read_overrides,
)
from zoo.config import build as build_config
from zoo.config import merge as merge_config
from zoo.errors import (
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
from zoo.hookspecs import hookimpl
from zoo.sdk.atomic import atomic_path, atomic_write
from zoo.sdk.dataset import Dataset
from zoo.sdk.files import (
    Source,
    data_dir,
    download,
    local_path,
    read_text,
    sha256_file,
    verify,
)
from zoo.sdk.metrics import (
    class_counts,
    class_scores,
    confusion_matrix,
    macro_f1,
    precision_recall_f1,
)
from zoo.sdk.task import ModelContract, Task
from zoo.sdk.tokenizer import Tokenizer, VocabTokenizer
from zoo.sdk.vocab import LabelTokenizer, by_frequency
from zoo.sdk.stream import TextStream, read_chunks, split_text, whitespace_cuts

__all__ = [
    "__version__",
    # interfaces
    "Tokenizer", "VocabTokenizer", "LabelTokenizer", "Dataset", "Source", "Task", "ModelContract", "Model",
    "EmptyConfig", "hookimpl", "ensemble_size",
    # configs: ranges, merging, --set parsing, TOML
    "Range", "SEED", "build_config", "merge_config", "parse_sets", "read_overrides", "load_toml",
    "dumps_toml",
    # files: reading, a user's own files, official files downloaded and verified, atomic writes
    "read_text", "data_dir", "local_path", "download", "verify", "sha256_file", "atomic_write", "atomic_path",
    # text in chunks, for preparing large corpora (zoo.sdk.prepared, zoo.build.prepare)
    "TextStream", "read_chunks", "whitespace_cuts", "split_text",
    # the prepared-data cache's layout helpers: dtypes, rows of varying length stored flat
    "int_dtype", "Ragged", "pad_ragged", "ragged_rows",
    # vocabularies, padding, metrics, mixed-precision helpers for models
    "by_frequency", "pad_rows", "precision_recall_f1", "confusion_matrix", "class_counts", "class_scores",
    "macro_f1", "attention", "float32_linear",
    # API
    "list_entries", "list_models", "list_tokenizers", "list_datasets", "list_tasks", "get_model",
    "resolve_entry", "train", "evaluate", "load", "export", "generate", "plugin_state", "get_registry",
    # training building blocks
    "Trainer", "TrainConfig", "OptimConfig",
    # experiment trackers (zoo_register_loggers)
    "Logger", "RunInfo", "Tracking", "Tracker",
    # word vectors (gensim-trained or read from GloVe / word2vec files)
    "Vectors", "train_vectors", "load_vectors", "save_vectors", "embedding_matrix",
    # batch orders for padded, varying-length examples
    "length_batches",
    # errors
    "ZooError", "ZooUsageError", "UnknownNameError", "AmbiguousNameError", "ConfigError", "DataError",
    "ArtifactError", "RunDirError", "DeviceError", "TrainingError", "first_line",
]

_LAZY = {
    "Model": "zoo.sdk.model",
    "ensemble_size": "zoo.sdk.model",
    "Trainer": "zoo.training.trainer",
    "TrainConfig": "zoo.config.train",
    "OptimConfig": "zoo.config.train",
    "Logger": "zoo.sdk.logger",
    "RunInfo": "zoo.sdk.logger",
    "Tracking": "zoo.training.tracking",
    "Tracker": "zoo.training.tracking",
    "Vectors": "zoo.sdk.embeddings",
    "train_vectors": "zoo.sdk.embeddings",
    "load_vectors": "zoo.sdk.embeddings",
    "save_vectors": "zoo.sdk.embeddings",
    "embedding_matrix": "zoo.sdk.embeddings",
    "length_batches": "zoo.sdk.tensors",
    "pad_ragged": "zoo.sdk.tensors",
    "ragged_rows": "zoo.sdk.tensors",
    "int_dtype": "zoo.sdk.prepared",
    "Ragged": "zoo.sdk.prepared",
    "pad_rows": "zoo.sdk.tensors",
    "attention": "zoo.sdk.tensors",
    "float32_linear": "zoo.sdk.tensors",
}


def __getattr__(name: str) -> Any:  # PEP 562: keep torch out of `import zoo`
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
