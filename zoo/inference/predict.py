"""Inference on raw inputs: ``zoo.load(x).predict(inputs)``, ``zoo predict`` and ``zoo serve``.

The task of a loaded model turns raw inputs into records (:meth:`zoo.Task.predict`);
this module batches them, runs them in eval mode, without gradients and under the
run's autocast setting, and finds a trained model by entry name.

One input (a string, or a mapping such as ``{"src": ...}``) gives one record; a list or
tuple gives a list; any other iterable (a generator, an open text file) gives a lazy
iterator that reads ``batch_size`` inputs at a time, so memory stays bounded by the batch.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from zoo.errors import ConfigError, DataError, ZooError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
# batches read ahead and ordered by input length, so that each batch pads little (as evaluation's length
# buckets do); records still come back in input order, and memory stays bounded by the window
SORT_WINDOW = 32


# --- finding a trained model ------------------------------------------------------------------------

# --- predict --------------------------------------------------------------------------------------

def predict(loaded: Any, inputs: Any, *, batch_size: int = DEFAULT_BATCH_SIZE, device: Any = None,
            **options: Any) -> Any:
    """Records of a loaded model (:class:`zoo.api.LoadedModel`) for raw ``inputs``.

    ``inputs``: one input (a string, or a mapping) -> one record; a list or tuple -> a list of
    records; any other iterable -> an iterator of records, read and predicted ``batch_size`` at
    a time (an open text file gives its lines without their line ends). ``device`` moves the
    model (none: where it is). ``options`` are the task's (``Task.predict_options``).
    Errors name the input by its position: ``input 41: the text is empty``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    runner = Predictor(loaded, device, options)
    if _is_single(inputs):
        return runner.run([inputs], 0)[0]
    if isinstance(inputs, (list, tuple)):
        out: list[dict[str, Any]] = []
        window = batch_size * SORT_WINDOW
        for start in range(0, len(inputs), window):
            out.extend(runner.run_window(inputs[start : start + window], start, batch_size))
        return out
    if isinstance(inputs, io.TextIOBase):
        inputs = (line.rstrip("\r\n") for line in inputs)
    return _stream(runner, iter(inputs), batch_size)


def _is_single(inputs: Any) -> bool:
    return isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable)


def _stream(runner: Predictor, it: Iterator[Any], batch_size: int) -> Iterator[dict[str, Any]]:
    start = 0
    while window := list(itertools.islice(it, batch_size * SORT_WINDOW)):
        yield from runner.run_window(window, start, batch_size)
        start += len(window)


def input_length(value: Any) -> int:
    """A raw input's size, for ordering inputs by length (characters; words count with a separator)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(input_length(v) for v in value.values() if isinstance(v, (str, list, tuple)))
    if isinstance(value, (list, tuple)):
        return sum(len(str(w)) + 1 for w in value)
    return 0


def check_options(task: Any, options: Mapping[str, Any], name: str | None = None) -> None:
    """Refuse options the task's :meth:`predict` does not take, naming those it does."""
    unknown = sorted(set(options) - set(task.predict_options))
    if unknown:
        known = ", ".join(sorted(task.predict_options)) or "none"
        raise ConfigError(f"predict option '{unknown[0]}' does not apply to task {name or type(task).__name__} "
                          f"(its options: {known})")


class Predictor:
    """Runs batches of raw inputs through a loaded model: eval mode, no gradients, the run's autocast.

    Checks the options once; :meth:`run` then takes one batch at a time (``zoo predict`` and
    ``zoo serve`` keep one for a stream of batches).
    """

    def __init__(self, loaded: Any, device: Any = None, options: dict[str, Any] | None = None):
        import torch

        from zoo.runtime.device import autocast_dtype, resolve_device

        options = dict(options or {})
        task = loaded.task
        if not task.supports_predict:
            task.predict(loaded.model, [])  # raises the task's own "does not support predict"
        check_options(task, options, loaded.resolved.specs["task"].id)
        if device is not None:
            loaded.model.to(resolve_device(str(device)))
        param = next(iter(loaded.model.parameters()), None)
        self.device = param.device if param is not None else torch.device("cpu")
        amp = loaded.resolved.configs["train"].amp
        self.amp_dtype = autocast_dtype(amp, self.device)
        self.loaded, self.options = loaded, options

    def run_window(self, inputs: Sequence[Any], start: int, batch_size: int) -> list[dict[str, Any]]:
        """The records of ``inputs`` (input ``start`` of the stream first), in their order, predicted in
        batches of ``batch_size`` inputs of similar length."""
        order = sorted(range(len(inputs)), key=lambda i: input_length(inputs[i]))
        out: list[Any] = [None] * len(inputs)
        for k in range(0, len(order), batch_size):
            chosen = order[k : k + batch_size]
            records = self.run([inputs[i] for i in chosen], positions=[start + i for i in chosen])
            for i, record in zip(chosen, records):
                out[i] = record
        return out

    def run(self, batch: Sequence[Any], start: int = 0, positions: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The records of ``batch``, whose first input is input ``start`` of the whole stream (or whose
        inputs are at ``positions`` of it).

        A bad input raises :class:`DataError` naming it by its position in the stream, with that
        position and the problem alone as its ``index`` and ``problem`` attributes.
        """
        import torch

        from zoo.runtime.device import autocast

        if not batch:
            return []
        model, task = self.loaded.model, self.loaded.task
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), autocast(self.device, self.amp_dtype):
                records = task.predict(model, list(batch), **self.options)
        except DataError as exc:
            index = getattr(exc, "index", None)
            where = positions[index] if positions is not None and index is not None else start + (index or 0)
            if index is None or where == index:
                raise
            raise task.input_error(where, exc.problem) from None
        finally:
            model.train(was_training)
        if len(records) != len(batch):
            raise ZooError(f"task {type(task).__name__}.predict returned {len(records)} records for "
                           f"{len(batch)} inputs (a bug in its plugin)")
        return records
