"""Bounded work off the event loop.

:class:`Admission` counts the requests a server is working on (running or queued) and refuses
one more beyond its bound, so that a burst gets quick 503s instead of an ever longer queue.
:class:`BatchRunner` runs one model's predictions in a thread of its own; requests that queue up
while it is busy are merged into one call, up to ``max_batch`` inputs, when their options agree.
Neither imports Starlette or asyncio: futures are :class:`concurrent.futures.Future`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Predict = Callable[[list[Any], dict[str, Any]], list[dict[str, Any]]]


class Busy(Exception):
    """The server already holds as many requests as it admits."""


class Abandoned(Exception):
    """Every request of the running call has been abandoned by its client: the call stops."""


class Admission:
    """At most ``limit`` requests at once, over every model."""

    def __init__(self, limit: int):
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    def acquire(self) -> None:
        with self._lock:
            if self._held >= self.limit:
                raise Busy(f"the server is busy: {self._held} requests are pending (--max-pending {self.limit}); "
                           "retry shortly")
            self._held += 1

    def release(self) -> None:
        with self._lock:
            self._held -= 1

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class Ticket(Future):
    """The future of one request's records; ``abandoned`` once its client has left."""

    abandoned = False


@dataclass
class _Job:
    inputs: list[Any]
    options: dict[str, Any]
    future: Ticket = field(default_factory=Ticket)


class BatchRunner:
    """One model's predictions, one call at a time, in a daemon thread started on first use."""

    def __init__(self, predict: Predict, *, max_batch: int, merge: bool = True, name: str = "model"):
        self._predict = predict
        self.max_batch = max_batch
        # False for language models: they sample one prompt after another, so a merged call would only
        # hold the first request's answer back until its neighbours are done
        self.merge = merge
        self.name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._carry: _Job | None = None  # taken from the queue but not mergeable with the last group
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.calls = 0  # predict calls made (fewer than requests when requests were merged)
        self.on_batch: Callable[[int], None] = lambda size: None  # told the inputs of each call
        self._current: list[_Job] = []  # the jobs of the call running now
        self._ident: int | None = None  # the thread's id

    @staticmethod
    def abandon(future: Future) -> None:
        """The client of ``future`` left: its job is dropped if queued; a running call stops once all its are gone."""
        future.abandoned = True  # type: ignore[attr-defined]
        future.cancel()  # a queued job is then skipped when its turn comes

    def check(self) -> None:
        """Raise :class:`Abandoned` in this runner's thread when every job of its running call is abandoned.

        Called between decoding steps (a forward hook on the model), so a call stops at its next token.
        """
        current = self._current
        if current and threading.get_ident() == self._ident and all(j.future.abandoned for j in current):
            raise Abandoned(f"{self.name}: every client of this call left")

    def submit(self, inputs: list[Any], options: dict[str, Any]) -> Future:
        """A future of the records of ``inputs``, or of the exception predict raised for them."""
        job = _Job(list(inputs), dict(options))
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"zoo-serve-{self.name}", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Stop the thread once the jobs already queued are done."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        self._ident = threading.get_ident()
        while True:
            job = self._carry or self._queue.get()
            self._carry = None
            if job is None:
                return
            self._run(self._group(job))

    def _group(self, first: _Job) -> list[_Job]:
        """``first`` plus the jobs queued behind it with the same options, up to ``max_batch`` inputs."""
        group, size = [first], len(first.inputs)
        while self.merge and size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None or job.options != first.options or size + len(job.inputs) > self.max_batch:
                self._carry = job
                break
            group.append(job)
            size += len(job.inputs)
        return group

    def _run(self, group: list[_Job]) -> None:
        group = [j for j in group if j.future.set_running_or_notify_cancel()]  # drop abandoned requests
        if not group:
            return
        inputs = [x for j in group for x in j.inputs]
        self.calls += 1
        self.on_batch(len(inputs))
        self._current = group
        try:
            records = self._predict(inputs, group[0].options)
            if len(records) != len(inputs):
                raise RuntimeError(f"{self.name}: predict returned {len(records)} records for {len(inputs)} inputs")
        except BaseException as exc:  # noqa: BLE001 - handed to the request that caused it
            if len(group) == 1 or isinstance(exc, Abandoned):
                for job in group:
                    job.future.set_exception(exc)
                return
            for job in group:  # one bad input must fail only its own request: run them one by one
                self._current = [job]
                self._run_alone(job)
            return
        finally:
            self._current = []
        start = 0
        for job in group:
            job.future.set_result(records[start:start + len(job.inputs)])
            start += len(job.inputs)

    def _run_alone(self, job: _Job) -> None:
        self.calls += 1
        try:
            job.future.set_result(self._predict(job.inputs, job.options))
        except BaseException as exc:  # noqa: BLE001
            job.future.set_exception(exc)
