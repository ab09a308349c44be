"""What ``zoo serve`` reports about itself: Prometheus metrics at ``/metrics`` and one log line a request.

Every app has its own :class:`prometheus_client.CollectorRegistry` (never the process-wide one), so
two apps in one process, or a test's app, count apart. :class:`Observe` is the outermost ASGI
middleware: it times each request, labels it with its route template (not the raw path, so the
number of series stays bounded) and model, and logs ``method path status ms model inputs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("zoo.serve.access")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The counters, histograms and gauges of one app."""

    def __init__(self, pending: Callable[[], float]):
        self.registry = CollectorRegistry()
        reg = {"registry": self.registry}
        self.requests = Counter("zoo_serve_requests", "HTTP requests answered, by model, route and status",
                                ["model", "route", "status"], **reg)
        self.latency = Histogram("zoo_serve_request_seconds", "Time from request to the end of its response",
                                 ["model", "route"], buckets=LATENCY_BUCKETS, **reg)
        self.batch = Histogram("zoo_serve_batch_inputs", "Inputs in one forward call of a model (merged requests)",
                               ["model"], buckets=BATCH_BUCKETS, **reg)
        self.tokens = Counter("zoo_serve_tokens_generated", "Tokens streamed by /generate", ["model"], **reg)
        self.cancelled = Counter("zoo_serve_requests_abandoned", "Requests whose client left before the answer",
                                 ["model"], **reg)
        self.pending = Gauge("zoo_serve_pending_requests", "Requests running or queued (bounded by --max-pending)",
                             **reg)
        self.pending.set_function(pending)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Observe:
    """Times, counts and logs every HTTP request that passes through it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, models: set[str]):
        self.app, self.metrics, self.models = app, metrics, models

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), [500]
        scope.setdefault("state", {})

        async def remember(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            self._record(scope, status[0], time.perf_counter() - t0)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or ("/static" if scope["path"].startswith("/static/")
                                                               else "other")
        name = scope.get("path_params", {}).get("name", "")
        model = name if name in self.models else ""
        self.metrics.requests.labels(model, route, str(status)).inc()
        self.metrics.latency.labels(model, route).observe(seconds)
        inputs = scope["state"].get("zoo_inputs", "")
        path = repr(scope["path"])[1:-1]  # a %0a in a URL must not start a new log line
        log.info("method=%s path=%s status=%d ms=%.1f model=%s inputs=%s", scope["method"], path, status,
                 seconds * 1000, model or "-", inputs if inputs != "" else "-")
