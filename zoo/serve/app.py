"""The Starlette app of ``zoo serve``: JSON endpoints, server-sent events and the try-it page.

Every refusal is JSON ``{"error": "..."}`` with a 4xx status (503 when the server is full);
predictions run in one thread per model (:class:`~zoo.serve.runner.BatchRunner`), generation
in Starlette's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from zoo._version import __version__
from zoo.errors import ZooError
from zoo.serve import Limits, openapi
from zoo.serve.models import ServedModel
from zoo.serve.requests import (
    RequestError,
    generate_request,
    predict_request,
    read_json,
)
from zoo.serve.runner import Admission, BatchRunner, Busy
from zoo.serve.budget import check_work
from zoo.serve.guard import Access, HostGuard, RequestGuard
from zoo.serve.metrics import CONTENT_TYPE, Metrics, Observe
from zoo.serve.runner import Abandoned

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


class _HeldStream(StreamingResponse):
    """A stream that gives its admission slot back however it ends (done, error, client gone)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _unknown_chars(served: ServedModel, text: str) -> list[str]:
    found: list[str] = []
    for tok in served.loaded.tokenizers.values():
        if hasattr(tok, "unknown_chars"):
            found += [c for c in tok.unknown_chars(text) if c not in found]
    return found


async def _client_gone(receive: Receive) -> None:
    """Returns once the client has disconnected (the body has been read: only a disconnect is left to come)."""
    while (await receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)


class Server:
    """One app's state: the models, a prediction thread each, the admission bound, the limits, the metrics."""

    def __init__(self, models: dict[str, ServedModel], limits: Limits, access: Access):
        limits.validate()
        self.models, self.limits, self.access = models, limits, access
        self.admission = Admission(limits.max_pending)
        self.metrics = Metrics(lambda: self.admission.held)
        self.runners = {name: BatchRunner(functools.partial(m.predict, batch_size=limits.max_batch),
                                          max_batch=limits.max_batch, merge=not m.generates, name=name)
                        for name, m in models.items()}
        self._hooks = []
        for name, runner in self.runners.items():
            runner.on_batch = self.metrics.batch.labels(name).observe
            # the model and its parts check, before each forward, whether the running call still has a client
            check = functools.partial(lambda runner, module, args: runner.check(), runner)
            model = models[name].loaded.model
            self._hooks += [m.register_forward_pre_hook(check) for m in (model, *model.children())]
        self.started = time.monotonic()
        self.closing = False

    def close(self) -> None:
        self.closing = True
        for runner in self.runners.values():
            runner.close()
        for hook in self._hooks:
            hook.remove()

    # -- endpoints ---------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": list(self.models), "pid": os.getpid(),
                             "pending": self.admission.held,
                             "max_pending": self.limits.max_pending,
                             "uptime_s": round(time.monotonic() - self.started, 3)})

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(self, request: Request) -> Response:
        """200 once the models are loaded (they are before the app exists) while there is room; else 503."""
        full = self.admission.held >= self.limits.max_pending
        if self.closing or full:
            why = "shutting down" if self.closing else f"full: {self.admission.held} requests pending (--max-pending)"
            return JSONResponse({"status": "not ready", "why": why}, status_code=503)
        return JSONResponse({"status": "ready", "models": list(self.models)})

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.schema(list(self.models), self.limits, __version__))

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"models": [m.describe(self.access.show_paths) for m in self.models.values()]})

    async def one_model(self, request: Request) -> Response:
        return JSONResponse(self._model(request).describe(self.access.show_paths))

    async def predict(self, request: Request) -> Response:
        served = self._model(request)
        body = await self._body(request)
        inputs, options = predict_request(body, served.options, self.limits)
        request.state.zoo_inputs = len(inputs)
        check_work(served.loaded.task, len(inputs), options, self.limits.max_work)
        try:
            with self.admission.slot():
                records = await self._answer(request, self.runners[served.name], inputs, options)
        except Abandoned:
            self.metrics.cancelled.labels(served.name).inc()
            return JSONResponse({"error": "the client left before the answer"}, status_code=499)
        except Busy as exc:
            raise RequestError(503, str(exc)) from None
        except ZooError as exc:  # the model refused an input (empty, unreadable) or an option's value
            problem = getattr(exc, "problem", None)
            index = getattr(exc, "index", None)
            message = f"inputs[{index}]: {problem}" if problem and isinstance(index, int) else str(exc)
            raise RequestError(422, message) from None
        return JSONResponse({"model": served.name, "records": records})

    async def generate(self, request: Request) -> Response:
        served = self._model(request)
        if not served.generates:
            raise RequestError(422, f"model '{served.name}' ({served.loaded.metadata.get('task', 'its task')}) "
                                    f"does not generate text; POST /api/models/{served.name}/predict instead")
        prompt, options = generate_request(await self._body(request), self.limits)
        request.state.zoo_inputs = 1
        check_work(served.loaded.task, 1, {"max_new_tokens": options["max_new_tokens"]}, self.limits.max_work)
        try:
            self.admission.acquire()
        except Busy as exc:
            raise RequestError(503, str(exc)) from None
        try:
            pieces = served.loaded.task.generate(served.loaded.model, prompt, use_cache=True, **options)
            return _HeldStream(self._events(served, prompt, pieces), self.admission.release)
        except BaseException:
            self.admission.release()
            raise

    # -- helpers -------------------------------------------------------------------------------------
    def _model(self, request: Request) -> ServedModel:
        name = request.path_params["name"]
        if name not in self.models:
            raise RequestError(404, f"no model named '{name}'; this server has: {', '.join(self.models)}")
        return self.models[name]

    async def _body(self, request: Request) -> Any:
        try:
            return await read_json(request.stream(), request.headers.get("content-length"),
                                   self.limits.max_body_bytes)
        except ClientDisconnect:  # the client left, or the server closed a body that came too slowly
            raise RequestError(499, "the client left before its body was read") from None

    async def _answer(self, request: Request, runner: BatchRunner, inputs: list[Any],
                      options: dict[str, Any]) -> list[dict[str, Any]]:
        """The runner's records for ``inputs``; if the client leaves first, its job is abandoned (Abandoned)."""
        ticket = runner.submit(inputs, options)
        answer = asyncio.wrap_future(ticket)
        gone = asyncio.ensure_future(_client_gone(request.receive))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not answer.done():
            runner.abandon(ticket)
            answer.cancel()
            raise Abandoned(f"{runner.name}: the client left")
        return answer.result()

    async def _events(self, served: ServedModel, prompt: str, pieces: Iterator[str]) -> AsyncIterator[str]:
        yield sse("start", {"model": served.name, "prompt": prompt, "warnings": [
            f"characters the tokenizer never saw, read as <unk>: {''.join(chars)!r}"
            for chars in [_unknown_chars(served, prompt)] if chars]})
        text: list[str] = []
        t0 = time.perf_counter()
        try:
            tokens = self.metrics.tokens.labels(served.name)
            async for piece in iterate_in_threadpool(pieces):
                tokens.inc()
                text.append(piece)
                yield sse("token", {"text": piece})
        except ZooError as exc:
            yield sse("error", {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the stream has begun: report it in the stream
            log.exception("generation with %s failed", served.name)
            yield sse("error", {"error": f"internal error: {type(exc).__name__}: {exc}"})
            return
        yield sse("done", {"text": "".join(text), "pieces": len(text),
                           "seconds": round(time.perf_counter() - t0, 4)})


async def _request_error(request: Request, exc: RequestError) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    says = {404: f"no such endpoint: {request.url.path} (see /openapi.json)",
            405: f"{request.method} is not allowed on {request.url.path} (see /openapi.json)"}
    return JSONResponse({"error": says.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code,
                        headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def create_app(models: dict[str, ServedModel], limits: Limits | None = None, access: Access | None = None) -> Starlette:
    """The ASGI app serving ``models`` (from :func:`zoo.serve.models.load_models`), with ``access``'s protections."""
    access = access or Access()
    server = Server(models, limits or Limits(), access)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(server.close)

    routes = [
        Route("/", server.page),
        Route("/health", server.health),
        Route("/health/live", server.live),
        Route("/health/ready", server.ready),
        Route("/metrics", server.metrics_text),
        Route("/openapi.json", server.openapi),
        Route("/api/models", server.list_models),
        Route("/api/models/{name}", server.one_model),
        Route("/api/models/{name}/predict", server.predict, methods=["POST"]),
        Route("/api/models/{name}/generate", server.generate, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {RequestError: _request_error, HTTPException: _http_error, Exception: _internal_error}
    cors = [Middleware(CORSMiddleware, allow_origins=list(access.cors_origins), allow_methods=["GET", "POST"],
                       allow_headers=["Content-Type", "Authorization"], max_age=600)] if access.cors_origins else []
    middleware = [Middleware(Observe, metrics=server.metrics, models=set(models)),
                  Middleware(HostGuard, access=access), *cors, Middleware(RequestGuard, access=access)]
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan, middleware=middleware)
    app.state.server = server
    return app
