"""A run's splits through the prepared-data cache: tokenizers fitted once, each split encoded once.

Two kinds of entry serve a run. The *tokenizer* entry holds the fitted tokenizers' states;
its key covers the input files, the dataset config, the task's preparation settings, the
tokenizers' names and configs and the versions. Each *split* entry holds what the task made
of one split (e.g. a memory-mapped token stream); its key is the same plus the split and the
tokenizers' states. A resume, ``zoo eval`` and ``zoo tune`` trials, which restore tokenizer
states, find the split entries that the first run wrote.

With ``train.cache=false`` (``--no-cache``) the same preparation runs into a temporary folder
that is removed as soon as its arrays are mapped: the numbers are the same, nothing is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.sdk.fingerprint import file_hashes, fingerprint
from zoo.sdk.prepared import ArrayWriter, Entry, PreparedCache
from zoo.sdk.stream import TextStream, byte_progress

if TYPE_CHECKING:  # pragma: no cover
    from zoo.build.pieces import Built
    from zoo.registry.resolve import Resolved

log = logging.getLogger(__name__)


class SplitSource:
    """One split of a dataset, as a task's preparation reads it: examples, or documents streamed in chunks."""

    def __init__(self, dataset: Any, split: str, *, progress: bool = False):
        self.dataset, self.split, self.show_progress = dataset, split, progress
        self._examples: Sequence[Any] | None = None

    def examples(self) -> Sequence[Any]:
        """The split's examples, loaded whole (once)."""
        if self._examples is None:
            self._examples = self.dataset.load(self.split)
        return self._examples

    def documents(self, field: str = "text") -> Iterator[Iterator[str]]:
        """The split's documents, each as chunks of text: streamed from the files where the dataset can
        (``Dataset.stream``), else the ``field`` of each example; a progress bar in bytes on the way."""
        stream = self.dataset.stream(self.split) if hasattr(self.dataset, "stream") else None
        if stream is None:
            stream = TextStream(([ex[field]] for ex in self.examples()), None)
        with byte_progress(stream.total_bytes, f"preparing {self.split}", self.show_progress) as advance:
            for doc in stream.documents:
                yield _counted(doc, advance) if self.show_progress else iter(doc)


def _counted(chunks: Any, advance: Any) -> Iterator[str]:
    for chunk in chunks:
        advance(len(chunk.encode("utf-8", "surrogatepass")))
        yield chunk


def supports_cache(task: Any, dataset: Any) -> bool:
    """Whether the task opts in and the dataset can say which files it reads, every one of them there.

    A file that is missing (e.g. the training file of a run that ``zoo eval`` reads the test file of)
    leaves the cache out: the split is read directly, and a split that needs the file says so itself.
    """
    from zoo.errors import DataError, first_line
    from zoo.sdk.task import Task

    if type(task).prepare_split is Task.prepare_split:
        return False
    try:
        return dataset.input_files() is not None
    except (DataError, OSError) as exc:
        log.info("prepared-data cache not used (%s); the data is read directly", first_line(exc))
        return False


def _versions(resolved: Any) -> dict[str, str]:
    from zoo._version import __version__
    from zoo.registry.discovery import default

    plugins = default.loaded.plugins
    out = {"zoo": __version__}
    for key, spec in resolved.specs.items():
        if key != "model":
            info = plugins.get(spec.plugin)
            out[spec.plugin] = info.version if info else ""
    return out


def _base_key(resolved: Any, dataset: Any, task: Any, cache: PreparedCache) -> dict[str, Any]:
    files = [Path(p) for p in dataset.input_files()]
    toks = {k: {"name": s.id, "config": resolved.configs[k]} for k, s in resolved.specs.items()
            if k.startswith("tokenizer.")}
    return {"files": file_hashes(files, cache.root), "dataset": [resolved.specs["dataset"].id, dataset.config],
            "task": [resolved.specs["task"].id, task.prepare_key(), str(task.prepared_version)],
            "tokenizers": toks, "versions": _versions(resolved)}


def prepare_splits(resolved: Any, dataset: Any, task: Any, tokenizer_states: dict[str, Any] | None,
                   splits: Sequence[str], *, cache: bool = True, progress: bool = False) -> dict[str, Any]:
    """The task's prepared splits (and its tokenizers fitted or restored), through the cache when ``cache``.

    ``tokenizer_states`` None: the tokenizers are fitted (or restored from the cache); otherwise they already
    hold the states given. Without ``cache`` everything is prepared in a temporary folder, removed at once.
    """
    store = PreparedCache() if cache else PreparedCache(_scratch())
    try:
        entries = _entries(store, resolved, dataset, task, tokenizer_states is None, splits, progress)
        return {split: task.load_prepared(entry) for split, entry in entries.items()}
    finally:
        if not cache:  # mapped arrays stay readable after their files are unlinked
            shutil.rmtree(store.root, ignore_errors=True)


def _scratch() -> str:
    """A folder for a preparation kept nowhere (``train.cache=false``): beside the cache (on disk, where large
    data is expected; ``/tmp`` is often memory), else the system's temporary folder."""
    from zoo.sdk.prepared import SCRATCH, cache_root

    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-", dir=cache_root())
    except OSError:
        return tempfile.mkdtemp(prefix="zoo-prepare-")


def _entries(store: PreparedCache, resolved: Any, dataset: Any, task: Any, fit: bool, splits: Sequence[str],
             progress: bool) -> dict[str, Entry]:
    base = _base_key(resolved, dataset, task, store)
    label = {"entry": resolved.entry, "dataset": resolved.specs["dataset"].id, "task": resolved.specs["task"].id}
    if fit:
        _fit(store, base, label, dataset, task, progress)
    states = {role: tok.get_state() for role, tok in task.tokenizers.items()}
    out = {}
    for split in splits:
        source = SplitSource(dataset, split, progress=progress)
        out[split] = store.get_or_create(fingerprint({**base, "split": split, "states": states}),
                                         lambda w, s=source: task.prepare_split(s, w), {**label, "split": split})
    return out


def encode_split(resolved: Any, dataset: Any, task: Any, split: str) -> Any:
    """One split for a task whose tokenizers hold their states (``zoo eval``): through the cache when it can."""
    if not supports_cache(task, dataset):
        return task.encode(dataset.load(split))
    tcfg = resolved.configs.get("train")
    return prepare_splits(resolved, dataset, task, {}, [split], cache=getattr(tcfg, "cache", True))[split]


def prepare_entry(entry: str, overrides: dict[str, Any], data_dir: Any = None) -> dict[str, Entry]:
    """``zoo prepare``: fit ENTRY's tokenizers and prepare every split of its dataset into the cache."""
    from zoo.errors import ConfigError
    from zoo.build.pieces import make_task, seed
    from zoo.registry.resolve import resolve_entry
    from zoo.sdk.files import data_dir as _data_dir

    resolved = resolve_entry(entry, overrides)
    dataset = resolved.classes["dataset"](resolved.configs["dataset"], data_dir=_data_dir(data_dir))
    task, _ = make_task(resolved, None)
    dataset.input_files()  # a missing file is named here, not taken for a dataset without a cache
    if not supports_cache(task, dataset):
        raise ConfigError(f"{resolved.entry}: its task ({resolved.specs['task'].id}) or dataset "
                          f"({resolved.specs['dataset'].id}) does not use the prepared-data cache; there is "
                          "nothing to prepare ahead: 'zoo train' reads the data itself")
    seed(resolved.configs["train"].seed)  # as a run does before it fits tokenizers
    return _entries(PreparedCache(), resolved, dataset, task, True, list(dataset.splits), sys.stderr.isatty())


def _fit(store: PreparedCache, base: dict[str, Any], label: dict[str, Any], dataset: Any, task: Any,
         progress: bool) -> None:
    """Fit the task's tokenizers on the train split, or restore the states an earlier fit stored."""
    from zoo.errors import ZooError

    if "train" not in dataset.splits:
        raise ZooError(f"dataset {label['dataset']} has no 'train' split to fit tokenizers on")

    def fit(writer: ArrayWriter) -> None:
        task.fit_tokenizers_from(SplitSource(dataset, "train", progress=progress))
        writer.meta["states"] = {role: tok.get_state() for role, tok in task.tokenizers.items()}

    entry: Entry = store.get_or_create(fingerprint({**base, "split": "tokenizers"}), fit,
                                       {**label, "split": "tokenizers"})
    for role, state in entry.meta["states"].items():
        task.tokenizers[role].set_state(state)


def build(resolved: Resolved, data_dir: str | Path | None, tokenizer_states: dict[str, Any] | None,
          splits: tuple[str, ...]) -> Built:
    """Dataset, tokenizers (fitted on the train split unless their states are given), task and encoded splits."""
    from zoo.errors import ZooError
    from zoo.build.pieces import Built, make_task
    from zoo.sdk.files import data_dir as _data_dir

    dataset = resolved.classes["dataset"](resolved.configs["dataset"], data_dir=_data_dir(data_dir))
    task, toks = make_task(resolved, tokenizer_states, dataset.data_dir)
    built = Built(resolved, dataset, toks, task)
    if supports_cache(task, dataset):  # the task's prepared splits, fitted and encoded once per key
        tcfg = resolved.configs.get("train")
        built.splits = prepare_splits(resolved, dataset, task, tokenizer_states,
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
    return bool(getattr(tcfg, "progress", False)) and sys.stderr.isatty()


def build_training(resolved: Resolved, data_dir: str | Path | None, tokenizer_states: dict[str, Any] | None,
                   splits: tuple[str, ...] = ("train", "val", "test")) -> Built:
    """What a training run starts from: :func:`build`'s pieces, then the model the task's sizes call for
    (refused first when it would not fit this machine), and the fitted tokenizers' states that the run
    writes to tokenizers.json and the artifact. Python's and torch's generators are seeded with
    ``train.seed`` before the tokenizers are fitted and again before the model's weights are drawn."""
    from zoo.build.pieces import make_model, seed
    from zoo.build.pieces import tokenizer_states as states_of
    from zoo.runtime.memory import check_model_fits

    seed(resolved.configs["train"].seed)
    built = build(resolved, data_dir, tokenizer_states, splits)
    seed(resolved.configs["train"].seed)
    sizes = built.task.model_sizes()
    check_model_fits(resolved.classes["model"], resolved.configs["model"], sizes)
    built.model = make_model(resolved, sizes)
    built.states = states_of(built)
    return built
