"""A long stream of texts encoded by byte-level BPE on worker processes, one per core, the ids handed back in order.

Splitting text into words is Python work that holds the GIL, so threads would take turns; processes
do not. The first :data:`ALONE_CHARS` characters of a stream are encoded in this process (a small
corpus never starts a worker). Past them, one worker per core (at most 8) is started: a fresh interpreter
running this module (``python -m zoo_tokenizers.parallel``), so nothing of the caller's process is
inherited or run again, and a script without an ``if __name__ == "__main__"`` guard is safe. A worker
restores the tokenizer from its JSON state and keeps a word cache of its own; each text goes to it as
UTF-8 and comes back as uint32 ids, one text in flight per worker, the workers taken in turn, so the
ids come back in the stream's order. A worker runs the same :meth:`BPETokenizer.encode_batch` as this
process, so the ids are the same. Workers that cannot be started leave the stream to this process,
with a warning; a worker that dies mid-stream is an error.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import logging
import os
import struct
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from zoo import ZooError

log = logging.getLogger(__name__)

ALONE_CHARS = 1 << 25  # characters encoded in this process before any worker is started (32M, about 32 MB)
MAX_WORKERS = 8  # past this, this process (reading, cutting, writing the ids) is the bottleneck, and each adds memory
_SIZE = struct.Struct("<Q")  # every message: its length in bytes, then the bytes


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def encode_stream(tok: Any, texts: Iterable[str], batch: int, workers: int | None = None) -> Iterator[Sequence[int]]:
    """The ids of each of ``texts`` in order, as ``tok.encode_batch`` gives them (see the module's docstring):
    ``batch`` texts at a time in this process, then on ``workers`` processes (default: one per core, at most
    :data:`MAX_WORKERS`)."""
    it = iter(texts)
    alone, group = 0, []
    for text in it:
        group.append(text)
        alone += len(text)
        if len(group) == batch or alone >= ALONE_CHARS:
            yield from tok.encode_batch(group)
            group = []
        if alone >= ALONE_CHARS:
            break
    else:  # the whole stream was short
        if group:
            yield from tok.encode_batch(group)
        return
    first = next(it, None)
    if first is None:
        return
    it = itertools.chain([first], it)
    procs = _start(tok, min(cores(), MAX_WORKERS) if workers is None else workers)
    if not procs:
        for text in it:
            yield from tok.encode_batch([text])
        return
    try:
        free, busy = list(procs), collections.deque()  # workers without a text; with one, oldest first
        for text in it:
            if not free:  # the oldest text's ids come first, and free its worker
                free.append(busy[0])
                yield _receive(busy.popleft())
            proc = free.pop()
            _send(proc.stdin, text.encode("utf-8", "surrogatepass"), proc)
            busy.append(proc)
        while busy:
            yield _receive(busy.popleft())
    finally:
        _stop(procs)


def _start(tok: Any, n: int) -> list[subprocess.Popen]:
    """``n`` workers, each holding ``tok``'s state; none (with a warning) where they cannot be started."""
    if n < 2:
        return []
    state = json.dumps(tok.get_state()).encode("utf-8")
    cache = tok._word_encoder()  # handed on, so that the workers start with the words met so far
    words, lens, ids = cache.cached() if cache is not None else ([], [], np.zeros(0, np.uint32))
    warm = [json.dumps({"words": words, "lens": np.asarray(lens).tolist()}).encode("utf-8"), ids.astype("<u4").tobytes()]
    # the packages this process runs (zoo, this plugin), first on the workers' path: where this process found them
    zoo_dir = importlib.util.find_spec("zoo").submodule_search_locations[0]
    paths = [str(Path(zoo_dir).resolve().parent), str(Path(__file__).resolve().parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.setdefault("RAYON_NUM_THREADS", "1")  # the library's own threads: one core per worker
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):  # all start at once, then each is given the state
            procs.append(subprocess.Popen([sys.executable, "-m", "zoo_tokenizers.parallel"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env))
        for proc in procs:
            for message in (state, *warm):
                _send(proc.stdin, message, proc)
        for proc in procs:
            _read(proc.stdout, proc)  # ready: the tokenizer is restored and its cache warm
    except (OSError, ZooError) as exc:
        _stop(procs)
        log.warning("bpe: encoding in this process only: worker processes cannot be started (%s)", exc)
        return []
    log.info("bpe: encoding on %d worker processes", n)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()  # end of input: the worker returns
            except OSError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _send(out: IO[bytes], data: bytes, proc: subprocess.Popen | None = None) -> None:
    try:
        out.write(_SIZE.pack(len(data)))
        out.write(data)
        out.flush()
    except BrokenPipeError as exc:
        raise _ended(proc) from exc


def _ended(proc: subprocess.Popen | None) -> ZooError:
    who = f"bpe worker process {proc.pid}" if proc else "bpe worker"
    return ZooError(f"{who} ended early (exit status {proc.poll() if proc else None}); its error is printed above")


def _read(src: IO[bytes], proc: subprocess.Popen | None = None) -> bytes:
    head = src.read(_SIZE.size)
    if len(head) < _SIZE.size:
        raise _ended(proc)
    (size,) = _SIZE.unpack(head)
    return src.read(size)


def _receive(proc: subprocess.Popen) -> Any:
    return np.frombuffer(_read(proc.stdout, proc), np.uint32)


def _serve() -> None:
    """A worker: the tokenizer's JSON state, then texts, from stdin; each text's ids to stdout (see the module)."""
    src, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    from zoo_tokenizers.bpe import BPETokenizer

    tok = BPETokenizer()
    tok.set_state(json.loads(_read(src)))
    warm, ids = json.loads(_read(src)), np.frombuffer(_read(src), "<u4")
    cache = tok._word_encoder()
    if cache is not None:
        cache.warm(warm["words"], np.asarray(warm["lens"], np.int64), ids)
    _send(out, b"")
    while True:
        head = src.read(_SIZE.size)
        if len(head) < _SIZE.size:
            return
        (size,) = _SIZE.unpack(head)
        ids = tok.encode_batch([src.read(size).decode("utf-8", "surrogatepass")])[0]
        _send(out, ids.astype("<u4", copy=False).tobytes())


if __name__ == "__main__":
    _serve()
