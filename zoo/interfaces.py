"""The interfaces every plugin implements: Dataset and Task (Tokenizer in :mod:`zoo.tokenizer`).

This module does not import torch; :class:`zoo.Model` lives in ``zoo.model``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .config import EmptyConfig
from .data import Source, locate
from .errors import ZooError
from .tokenizer import Tokenizer, VocabTokenizer  # noqa: F401 - re-exported: the interfaces live here

if TYPE_CHECKING:  # pragma: no cover
    import torch

Example = Mapping[str, Any]
Batch = dict[str, Any]


class Dataset(ABC):
    """Named splits of examples (dicts). Reads files under the data dir, or makes them."""

    Config: ClassVar[type] = EmptyConfig
    folder: ClassVar[str] = ""  # sub-folder of the data dir holding this dataset's files
    sources: ClassVar[tuple[Source, ...]] = ()
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __init__(self, config: Any = None, data_dir: Path | None = None):
        self.config = config if config is not None else self.Config()
        self.data_dir = data_dir

    @abstractmethod
    def load(self, split: str) -> Sequence[Example]:
        """The examples of ``split``; raises :class:`zoo.DataError` naming file and line on bad input."""

    def file(self, filename: str) -> Path:
        """The local path of one of :attr:`sources`, checked against its sha256."""
        matches = [s for s in self.sources if s.filename == filename]
        if not matches:
            raise ZooError(f"{type(self).__name__} declares no source named '{filename}'")
        return locate(self.folder, matches[0], self.data_dir)

    def input_files(self) -> list[Path] | None:
        """Every file the dataset reads, for the key of the prepared-data cache (:mod:`zoo.prepared`);
        None: unknown, so nothing it gives is cached. Default: the files of :attr:`sources`."""
        return [self.file(s.filename) for s in self.sources] if self.sources else None

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ZooError(f"{type(self).__name__} has no split '{split}'; splits: {', '.join(self.splits)}")


@dataclass(frozen=True)
class ModelContract:
    """What a task needs of a model, as data (``zoo info TASK`` prints it; shapes: B batch, T length...)."""

    sizes: Mapping[str, str]  # the constructor's keyword sizes (what model_sizes() returns) -> what each is
    forward: str  # the call the task makes, with its inputs' shapes: "forward(ids (B, T), lengths (B,))"
    returns: str  # what forward returns, e.g. "logits (B, K), no softmax"
    methods: Mapping[str, str] = field(default_factory=dict)  # other methods the task calls -> what they do
    optional: Mapping[str, str] = field(default_factory=dict)  # methods used when a model has them -> when, what


class Task(ABC):
    """Turns examples into batches, defines the loss, the metrics and the decoding.

    The Trainer knows nothing of models' signatures: it hands batches (dicts of
    tensors) to :meth:`loss` and :meth:`eval_batch`.
    """

    Config: ClassVar[type] = EmptyConfig
    tokenizer_roles: ClassVar[tuple[str, ...]] = ("text",)
    # metric name -> "min" or "max"; the first is the default early-stopping metric
    metrics: ClassVar[dict[str, str]] = {"loss": "min"}
    # the contract as data, for ``zoo info TASK``: what a model must offer, the example fields read (name -> meaning)
    model_contract: ClassVar[ModelContract | None] = None
    example_fields: ClassVar[dict[str, str]] = {}
    data_dir: Path | None = None  # the data dir (--data-dir, ZOO_DATA_DIR) of a training run, for init_model

    def __init__(self, config: Any, tokenizers: Mapping[str, Tokenizer]):
        self.config = config if config is not None else self.Config()
        missing = [r for r in self.tokenizer_roles if r not in tokenizers]
        if missing:
            raise ZooError(f"{type(self).__name__} needs tokenizers for roles {missing}")
        self.tokenizers = dict(tokenizers)

    @abstractmethod
    def texts(self, role: str, examples: Sequence[Example]) -> Iterable[str]:
        """The texts the ``role`` tokenizer is fitted on."""

    def fit_tokenizers(self, train: Sequence[Example]) -> None:
        for role in self.tokenizer_roles:
            self.tokenizers[role].fit(self.texts(role, train))

    @abstractmethod
    def model_sizes(self) -> dict[str, int]:
        """The sizes the model is built with (vocab, classes, pad id)."""

    @abstractmethod
    def encode(self, examples: Sequence[Example]) -> Any:
        """Tokenize a split once; the result is handed to :meth:`batches`."""

    @abstractmethod
    def batches(self, encoded: Any, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        """Batches of tensors on the CPU; with ``shuffle``, the order depends on ``seed`` alone."""

    @abstractmethod
    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """Mean training loss of one batch (a scalar tensor)."""

    @abstractmethod
    def eval_batch(self, model: Any, batch: Batch) -> dict[str, float]:
        """Sums over one batch (e.g. ``loss_sum``, ``tokens``, ``correct``) for :meth:`summarize`."""

    @abstractmethod
    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Metrics of a split from the sums of all its batches."""

    # -- the prepared-data cache (zoo.prepared): a task that implements prepare_split and load_prepared has
    # each split prepared once per key, its tokenizers fitted once, and reuses them in later runs ----------
    prepared_version: ClassVar[str] = "1"  # change it whenever prepare_split writes something else

    def prepare_split(self, source: Any, out: Any) -> None:
        """Write what :meth:`encode` would make of ``source`` (a :class:`zoo.prepared.splits.SplitSource`)
        into ``out`` (a :class:`zoo.prepared.ArrayWriter`: arrays and JSON ``meta``)."""
        raise NotImplementedError

    def load_prepared(self, entry: Any) -> Any:
        """What :meth:`encode` returns, rebuilt from a :class:`zoo.prepared.Entry` (arrays memory-mapped)."""
        raise NotImplementedError

    def prepare_key(self) -> Any:
        """The settings :meth:`prepare_split` depends on (part of the cache key); default: the whole config."""
        return self.config

    def fit_tokenizers_from(self, source: Any) -> None:
        """Fit the tokenizers on the train split's ``source``; tasks that stream their text override it."""
        self.fit_tokenizers(source.examples())

    def num_batches(self, encoded: Any, batch_size: int) -> int | None:
        return None

    def eval_outputs(self, model: Any, batch: Batch) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """:meth:`eval_batch`'s sums plus one record per example (e.g. the generated text).

        ``zoo eval`` and ``zoo train`` write the records beside the metrics; tasks with
        nothing to show per example keep this default (no records). A record with an
        ``index`` (the example's position in the split) is written in that order.
        """
        return self.eval_batch(model, batch), []

    def init_model(self, model: Any, train: Any) -> dict[str, Callable[[Path], None]]:
        """Prepare a freshly built model before training (e.g. pretrained embeddings); not called on resume.

        ``train`` is the encoded train split (what :meth:`encode` returned). Returns files for
        the run folder: name -> a function writing that file at the path it is given. Called
        before the run folder is touched, so errors leave it intact.
        """
        return {}

    # -- data parallelism: each rank of a DDP run trains on its rows of every global batch -----------
    # batch entries every rank gets whole rather than cut by rows (e.g. a table that row entries index into)
    shared_keys: ClassVar[tuple[str, ...]] = ()

    def split_batch(self, batch: Batch, parts: int) -> list[Batch]:
        """Cut a batch into ``parts`` consecutive row ranges, one per data-parallel rank.

        Every tensor with a first dimension is cut along it, except :attr:`shared_keys` and
        non-tensors, which every part gets whole. The first parts get one row more when the
        rows do not divide evenly; a part may have no rows when there are fewer rows than parts.
        """
        cut = [k for k, v in batch.items() if getattr(v, "ndim", 0) >= 1 and k not in self.shared_keys]
        if not cut:
            raise ZooError(f"{type(self).__name__}: a batch has no tensor with rows to split across ranks")
        rows = len(batch[cut[0]])
        for k in cut:
            if len(batch[k]) != rows:
                raise ZooError(f"{type(self).__name__}: batch entry '{k}' has {len(batch[k])} rows, '{cut[0]}' "
                               f"has {rows}; list the entries that are not per-row in the task's shared_keys")
        out, lo = [], 0
        for i in range(parts):
            hi = lo + rows // parts + (1 if i < rows % parts else 0)
            out.append({k: v[lo:hi] if k in cut else v for k, v in batch.items()})
            lo = hi
        return out

    def batch_weight(self, batch: Batch) -> float:
        """What the mean in :meth:`loss` divides by for this batch: its rows by default.

        A task whose loss is a mean over tokens of varying count returns that count, so
        that the ranks' losses of one global batch combine into exactly its mean.
        """
        cut = [v for k, v in batch.items() if getattr(v, "ndim", 0) >= 1 and k not in self.shared_keys]
        return float(len(cut[0])) if cut else 1.0

    def generate(self, model: Any, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, use_cache: bool = True,
                 stop_at_eos: bool = False) -> Iterator[str]:
        """Yield generated text piece by piece (tasks that generate free text override this)."""
        raise ZooError(f"task {type(self).__name__} does not generate text; 'zoo generate' needs a language model")

    # -- inference on raw inputs: zoo.load(...).predict(...), zoo predict, zoo serve ------------------
    # Documentation as data (``zoo info TASK`` prints it): what one raw input is, what the record of
    # one input holds, and the options :meth:`predict` takes (name -> what it does).
    predict_input: ClassVar[str] = ""
    predict_record: ClassVar[str] = ""
    predict_options: ClassVar[dict[str, str]] = {}

    def predict(self, model: Any, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """One JSON-serialisable record per raw input of ``inputs`` (one batch), in their order.

        Deterministic: the same input gives the same record, whatever else is in the batch.
        :func:`zoo.inference.predict` calls it with the model in eval mode, under
        ``torch.no_grad()`` and the run's autocast, with ``options`` checked against
        :attr:`predict_options`. A bad input raises :meth:`input_error`, never anything else.
        """
        raise ZooError(f"task {type(self).__name__} does not support predict (inference on raw inputs); "
                       "its plugin would need to implement Task.predict")

    @property
    def supports_predict(self) -> bool:
        return type(self).predict is not Task.predict

    @staticmethod
    def input_error(index: int, problem: str) -> ZooError:
        """The :class:`DataError` for input ``index`` of a batch, e.g. ``input 3: the text is empty``.

        ``problem`` says what is wrong and what to do. The error keeps ``index`` and ``problem``
        as attributes, so that callers can name the input in their own terms (a file's line).
        """
        from .errors import DataError

        err = DataError(f"input {index}: {problem}")
        err.index, err.problem = index, problem  # type: ignore[attr-defined]
        return err

    @classmethod
    def text_input(cls, index: int, value: Any, *, what: str = "text", empty_ok: bool = False) -> str:
        """``value`` when it is a string (non-blank unless ``empty_ok``); otherwise :meth:`input_error`."""
        if not isinstance(value, str):
            raise cls.input_error(index, f"expected a {what} (a string), got {type(value).__name__}")
        if not empty_ok and not value.strip():
            raise cls.input_error(index, f"the {what} is empty; give some text")
        return value

    @staticmethod
    def on_device(model: Any, batch: Batch) -> Batch:
        """``batch`` with its tensors on the device of ``model``'s parameters."""
        from .device import to_device

        param = next(iter(model.parameters()), None)
        return batch if param is None else to_device(batch, param.device, pin=False)

