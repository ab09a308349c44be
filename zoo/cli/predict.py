"""``zoo predict MODEL [INPUT...]``: a trained model on your own inputs, from the shell.

Inputs come from the command line, or from ``--input FILE`` (``-``: stdin), read line by
line and predicted ``--batch-size`` at a time, so a file of any size streams through in
bounded memory. A file is plain text (one input a line; blank lines are skipped) or JSONL
(one object a line with an ``input`` field; its other fields are copied into the output
record). Output is readable text by default, JSONL with ``--json`` or ``--output``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from zoo.cli.common import FINITE_NONNEGATIVE, overrides_from
from zoo.errors import DataError, ZooUsageError
from zoo.inference.predict import SORT_WINDOW
from zoo.runtime.untrusted import loads, printable

JSONL_SUFFIXES = (".jsonl", ".ndjson")
MAX_LINE_BYTES = 16 * 2**20  # one input line at most (--max-line-bytes): a long document fits, /dev/zero does not


@dataclass
class Item:
    """One input and where it came from."""

    where: str  # "FILE:LINE", or "input N" for an argument
    value: Any
    extra: dict[str, Any] = field(default_factory=dict)  # the other fields of a JSONL line


# --- reading ----------------------------------------------------------------------------------------

def _lines(fh: IO[bytes], name: str, progress: Any, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of a binary stream, decoded as UTF-8; a line is read
    in one bounded call, so a file without line ends (/dev/zero) costs ``max_bytes``, not all memory."""
    for n, raw in enumerate(iter(lambda: fh.readline(max_bytes + 1), b""), start=1):
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            raise DataError(f"{name}:{n}: the line is longer than {max_bytes} bytes; split the input, "
                            "or raise --max-line-bytes")
        if progress is not None:
            progress.update(len(raw))
        try:
            yield n, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}:{n}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                            "save the file as UTF-8") from None


def _is_jsonl(name: str, first: str | None, fmt: str) -> bool:
    if fmt != "auto":
        return fmt == "jsonl"
    if name.lower().endswith(JSONL_SUFFIXES):
        return True
    if first is None or not first.lstrip().startswith("{"):
        return False
    try:
        return isinstance(loads(first), dict)
    except ValueError:
        return False


def read_items(fh: IO[bytes], name: str, fmt: str, progress: Any = None,
               max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    """The inputs of a file, lazily: plain text (a line each) or JSONL (an ``input`` field each)."""
    lines = _lines(fh, name, progress, max_line_bytes)
    first = next(((n, text) for n, text in lines if text.strip()), None)
    if first is None:
        return
    jsonl = _is_jsonl(name, first[1], fmt)
    for n, text in _chain(first, lines):
        if not text.strip():
            continue
        if not jsonl:
            yield Item(f"{name}:{n}", text)
            continue
        try:
            obj = loads(text)
        except ValueError as exc:
            raise DataError(f"{name}:{n}: not valid JSON ({exc}); a JSONL input holds one object a line, "
                            'e.g. {"input": "..."}') from None
        if not isinstance(obj, dict) or "input" not in obj:
            found = f"keys {sorted(obj)}" if isinstance(obj, dict) else type(obj).__name__
            raise DataError(f"{name}:{n}: expected an object with an 'input' field, found {found}")
        value = obj.pop("input")
        yield Item(f"{name}:{n}", value, obj)


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- writing ----------------------------------------------------------------------------------------

def output_record(item: Item, record: dict[str, Any]) -> dict[str, Any]:
    """The JSONL record of one input: its passed-through fields, the input, then the prediction.

    A passed-through field named like a field of the prediction is kept as ``input_NAME``.
    """
    out = {(f"input_{k}" if k in record or k == "input" else k): v for k, v in item.extra.items()}
    out["input"] = item.value
    out.update(record)
    return out


class Readable:
    """Records as a person reads them: a table for classes, word/TAG, the code, the text."""

    def __init__(self, loaded: Any):
        labels = getattr(loaded.task, "labels", None) or []
        self.width = max([len("label"), *(len(printable(lab)) for lab in labels)])
        self.started = False

    def line(self, item: Item, record: dict[str, Any]) -> str:
        """The readable text of one record; control characters from the model's file or the input escaped."""
        return printable(self._line(item, record), keep="\n\t")

    def _line(self, item: Item, record: dict[str, Any]) -> str:
        first, self.started = not self.started, True
        if "probabilities" in record and "label" in record:
            text = item.value if isinstance(item.value, str) else json.dumps(item.value, ensure_ascii=False)
            row = f"{printable(record['label']):<{self.width}}  {record.get('probability', 0.0):.4f}  {text}"
            return (f"{'label':<{self.width}}  {'prob':<6}  input\n" if first else "") + row
        if "tags" in record and "words" in record:
            return " ".join(f"{printable(w)}/{printable(t)}" for w, t in zip(record["words"], record["tags"]))
        if "candidates" in record:
            return "\n".join(f"{c['score']:9.4f}  {c['code']}" for c in record["candidates"])
        if "code" in record:
            return str(record["code"])
        if "text" in record:
            return (item.value if isinstance(item.value, str) else "") + str(record["text"])
        if "output" in record:
            return str(record["output"])
        return json.dumps(record, ensure_ascii=False)


def _writer(stack: ExitStack, loaded: Any, output: str | None, as_json: bool, stream: bool = False) -> Any:
    """A function writing one (item, record): JSONL to --output (atomically; through it for a ``stream``, a
    FIFO or character device), JSON lines or readable text."""
    if output and output != "-":
        from zoo.sdk.atomic import atomic_path

        tmp = output if stream else stack.enter_context(atomic_path(Path(output)))
        fh = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        return lambda item, record: fh.write(json.dumps(output_record(item, record), ensure_ascii=False) + "\n")
    if output == "-" or as_json:
        return lambda item, record: click.echo(json.dumps(output_record(item, record), ensure_ascii=False))
    view = Readable(loaded)
    return lambda item, record: click.echo(view.line(item, record))


# --- the command ------------------------------------------------------------------------------------

def _items(stack: ExitStack, inputs: tuple[str, ...], input_file: str | None, fmt: str,
           max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    if not input_file:
        return iter([Item(f"input {i}", value) for i, value in enumerate(inputs)])
    if input_file == "-":
        fh, name, size = sys.stdin.buffer, "<stdin>", None
    else:
        path = Path(input_file)
        try:
            fh = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise DataError(f"--input {path}: cannot read it ({exc.strerror})") from None
        name, size = str(path), path.stat().st_size
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = stack.enter_context(tqdm(total=size, unit="B", unit_scale=True, desc="predict", leave=False,
                                            dynamic_ncols=True))
    return read_items(fh, name, fmt, progress, max_line_bytes)


def _run(predictor: Any, batch: list[Item], batch_size: int) -> list[dict[str, Any]]:
    try:  # a window of several batches, predicted in batches of similar length, records in input order
        return predictor.run_window([item.value for item in batch], 0, batch_size)
    except DataError as exc:
        index = getattr(exc, "index", None)
        if index is None:
            raise
        raise DataError(f"{batch[index].where}: {exc.problem}") from None


def _check_args(inputs: tuple[str, ...], input_file: str | None, sets: tuple[str, ...]) -> dict[str, Any] | None:
    """The inputs come one way; the task settings of ``--set`` (the only section it may name)."""
    overrides = overrides_from(sets, None)
    if set(overrides) - {"task"}:
        raise ZooUsageError("zoo predict --set takes task.KEY=VALUE only (the weights and the data are fixed)")
    if inputs and input_file:
        raise ZooUsageError("give INPUT arguments or --input FILE, not both")
    if not inputs and not input_file:
        raise ZooUsageError("nothing to predict: give INPUT arguments or --input FILE (- for stdin)")
    return overrides.get("task")


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1)
@click.option("--input", "input_file", metavar="FILE|-",
              help="Read inputs from FILE (- for stdin): plain text, one input a line, or JSONL objects with an "
                   "'input' field (other fields are copied into the output).")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "jsonl"]), default="auto", show_default=True,
              help="Format of --input; auto: JSONL for .jsonl files and for lines that are JSON objects.")
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=MAX_LINE_BYTES, show_default=True,
              help="Refuse an --input line longer than this, naming it (a file without line ends stops here).")
@click.option("--output", metavar="FILE|-", help="Write JSONL records to FILE (atomically) or - (stdout).")
@click.option("--force", is_flag=True, help="Replace an existing --output file (never a run's own files).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records (one a line) instead of readable text.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--max-new-tokens", type=click.IntRange(min=0), help="lm: tokens to generate [default: 200].")
@click.option("--temperature", type=FINITE_NONNEGATIVE, help="lm: 0 is greedy [default: 0.8].")
@click.option("--top-k", type=click.IntRange(min=1), help="lm: sample among the K likeliest tokens.")
@click.option("--seed", type=int, help="lm: seed of the sampler [default: 0, the same text every time].")
@click.option("--stop-at-eos", is_flag=True, help="lm: end at the first <eos> (models trained with task.boundaries).")
@click.option("--n-best", type=click.IntRange(min=1), help="code generation: candidates per input, with scores.")
@click.option("--beam", type=click.IntRange(min=1), help="code generation: beam width [default: the model's].")
@click.option("--max-len", type=click.IntRange(min=1), help="seq2seq, code generation: tokens to generate at most.")
@click.option("--set", "sets", multiple=True, metavar="task.KEY=VALUE",
              help="Read the weights another way, as zoo eval does (task.decode=bio, task.reranker=RUN).")
def predict_cmd(model: str, inputs: tuple[str, ...], input_file: str | None, fmt: str, output: str | None,
                force: bool, as_json: bool, batch_size: int, device: str, max_line_bytes: int,
                sets: tuple[str, ...], **sampling: Any) -> None:
    """Run MODEL (a model file, run folder, trained entry name, URL or packaged model) on INPUT texts or an
    --input file.

    \b
    zoo predict runs/imdb-rnn "I loved every minute of it" "Dull."
    zoo predict pos-transformer-char --input sentences.txt --output tags.jsonl
    """
    from zoo import api
    from zoo.inference.predict import Predictor
    from zoo.runtime.device import resolve_device

    task_settings = _check_args(inputs, input_file, sets)
    stream = False
    if output and output != "-":  # before any work: a folder, a link or a run's file is refused now
        from zoo.store.targets import STREAM, check_output_file

        stream = check_output_file(output, force, f"--output {output}", streams=True) == STREAM
    options = {k: v for k, v in sampling.items() if v is not None and v is not False}  # unset: the task's default
    loaded = api.load(model, device=str(resolve_device(device)), task=task_settings)
    predictor = Predictor(loaded, None, options)
    count = 0
    with ExitStack() as stack:
        write = _writer(stack, loaded, output, as_json, stream)
        for batch in _batches(_items(stack, inputs, input_file, fmt, max_line_bytes), batch_size * SORT_WINDOW):
            for item, record in zip(batch, _run(predictor, batch, batch_size)):
                write(item, record)
                count += 1
    if output and output != "-":
        click.echo(f"wrote {count} records to {output}", err=True)
