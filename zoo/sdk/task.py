"""The Task interface, in parts a plugin author can read one at a time.

:class:`TaskCore` is what every task implements (seven methods: texts, sizes, encoding, batches, loss, sums,
metrics); :class:`DataParallel`, :class:`Generates`, :class:`Predicts` and :class:`Described` add what
DDP, ``zoo generate``, ``zoo predict`` / ``zoo serve`` and ``zoo info`` use, each with a default that works.
A plugin subclasses :class:`Task`, all of them together. This module does not import torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from zoo.config import EmptyConfig
from zoo.errors import ZooError
from zoo.sdk.tokenizer import Tokenizer

if TYPE_CHECKING:  # pragma: no cover
    import torch

Example = Mapping[str, Any]
Batch = dict[str, Any]


@dataclass(frozen=True)
class ModelContract:
    """What a task needs of a model, as data (``zoo info TASK`` prints it; shapes: B batch, T length...)."""

    sizes: Mapping[str, str]  # the constructor's keyword sizes (what model_sizes() returns) -> what each is
    forward: str  # the call the task makes, with its inputs' shapes: "forward(ids (B, T), lengths (B,))"
    returns: str  # what forward returns, e.g. "logits (B, K), no softmax"
    methods: Mapping[str, str] = field(default_factory=dict)  # other methods the task calls -> what they do
    optional: Mapping[str, str] = field(default_factory=dict)  # methods used when a model has them -> when, what


class TaskCore(ABC):
    """Turns examples into batches, defines the loss and the metrics: what every task implements.

    The Trainer knows nothing of models' signatures: it hands batches (dicts of
    tensors) to :meth:`loss` and :meth:`eval_batch`.
    """

    Config: ClassVar[type] = EmptyConfig
    tokenizer_roles: ClassVar[tuple[str, ...]] = ("text",)
    # metric name -> "min" or "max"; the first is the default early-stopping metric
    metrics: ClassVar[dict[str, str]] = {"loss": "min"}

    def __init__(self, config: Any, tokenizers: Mapping[str, Tokenizer], *, data_dir: Path | None = None):
        self.config = config if config is not None else self.Config()
        self.data_dir = data_dir  # the run's data dir (--data-dir, ZOO_DATA_DIR): init_model finds files there
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

    # -- the prepared-data cache (zoo.sdk.prepared, zoo.build.prepare): a task that implements prepare_split and load_prepared has
    # each split prepared once per key, its tokenizers fitted once, and reuses them in later runs ----------
    prepared_version: ClassVar[str] = "1"  # change it whenever prepare_split writes something else

    def prepare_split(self, source: Any, out: Any) -> None:
        """Write what :meth:`encode` would make of ``source`` (a :class:`zoo.build.prepare.SplitSource`)
        into ``out`` (a :class:`zoo.sdk.prepared.ArrayWriter`: arrays and JSON ``meta``)."""
        raise NotImplementedError

    def load_prepared(self, entry: Any) -> Any:
        """What :meth:`encode` returns, rebuilt from a :class:`zoo.sdk.prepared.Entry` (arrays memory-mapped)."""
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


class DataParallel:
    """How a batch is cut for the ranks of a DDP run (each trains on its rows of every global batch).

    The default cuts every tensor by rows; a task overrides it for batches with entries that are
    not per row (:attr:`shared_keys`) or losses that are means over tokens (:meth:`batch_weight`).
    """

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


class Generates:
    """Free text from a prompt (``zoo generate``, the LM task); other tasks keep the refusal."""

    def generate(self, model: Any, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, use_cache: bool = True,
                 stop_at_eos: bool = False) -> Iterator[str]:
        """Yield generated text piece by piece (tasks that generate free text override this)."""
        raise ZooError(f"task {type(self).__name__} does not generate text; 'zoo generate' needs a language model")


class Predicts:
    """Inference on raw inputs: ``zoo.load(...).predict(...)``, ``zoo predict``, ``zoo serve``.

    Documentation as data (``zoo info TASK`` prints it): what one raw input is, what the record of
    one input holds, and the options :meth:`predict` takes (name -> what it does).
    """

    # Documentation as data (``zoo info TASK`` prints it): what one raw input is, what the record of
    # one input holds, and the options :meth:`predict` takes (name -> what it does).
    predict_input: ClassVar[str] = ""
    predict_record: ClassVar[str] = ""
    predict_options: ClassVar[dict[str, str]] = {}

    def predict(self, model: Any, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        """One JSON-serialisable record per raw input of ``inputs`` (one batch), in their order.

        Deterministic: the same input gives the same record, whatever else is in the batch.
        :func:`zoo.inference.predict.predict` calls it with the model in eval mode, under
        ``torch.no_grad()`` and the run's autocast, with ``options`` checked against
        :attr:`predict_options`. A bad input raises :meth:`input_error`, never anything else.
        """
        raise ZooError(f"task {type(self).__name__} does not support predict (inference on raw inputs); "
                       "its plugin would need to implement Task.predict")

    @property
    def supports_predict(self) -> bool:
        return type(self).predict is not Predicts.predict

    @staticmethod
    def input_error(index: int, problem: str) -> ZooError:
        """The :class:`DataError` for input ``index`` of a batch, e.g. ``input 3: the text is empty``.

        ``problem`` says what is wrong and what to do. The error keeps ``index`` and ``problem``
        as attributes, so that callers can name the input in their own terms (a file's line).
        """
        from zoo.errors import DataError

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
        from zoo.sdk.tensors import to_device

        param = next(iter(model.parameters()), None)
        return batch if param is None else to_device(batch, param.device, pin=False)


class Described:
    """The task's contract as data, for ``zoo info TASK`` and the conformance kit."""

    # the contract as data, for ``zoo info TASK``: what a model must offer, the example fields read (name -> meaning)
    model_contract: ClassVar[ModelContract | None] = None
    example_fields: ClassVar[dict[str, str]] = {}


class Task(TaskCore, DataParallel, Generates, Predicts, Described):
    """The interface a plugin's task subclasses: :class:`TaskCore` plus every optional part, with defaults."""
