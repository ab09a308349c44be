"""uvicorn's HTTP/1.1 (h11) protocol with the limits it lacks: read timeouts and a cap on connections.

uvicorn closes a connection left idle after a response (``timeout_keep_alive``), but once a byte
has arrived it waits for the rest of the request for ever, so a client that sends half a header
(slowloris), or announces a body and sends part of it, holds a socket and its buffers as long as
it likes. :class:`GuardedH11Protocol` gives every request a deadline:

- ``header_timeout``: from the connection (or the previous response) to the end of the request's
  head; past it the server answers 408 and closes;
- ``body_timeout``: from the end of the head to the end of the body; past it the connection is
  closed (the app then sees the client gone);
- ``max_connections``: a connection beyond this many open ones is answered 503 and closed at once.

The values come from :class:`ServeConfig`, a :class:`uvicorn.Config` that carries them to every
worker process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol



def _raw(status: bytes, error: str) -> bytes:
    """A whole JSON error response, written straight to the socket before it is closed."""
    body = b'{"error": "' + error.encode() + b'"}'
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


REFUSED = _raw(b"503 Service Unavailable", "too many connections are open (--max-connections)")
TOO_SLOW = _raw(b"408 Request Timeout", "the request head came too slowly (--header-timeout)")


class ServeConfig(uvicorn.Config):
    """uvicorn's config plus the read deadlines and the connection cap of :class:`GuardedH11Protocol`."""

    def __init__(self, app: Any, *, header_timeout: float = 10.0, body_timeout: float = 30.0,
                 max_connections: int = 1000, **kwargs: Any):
        super().__init__(app, http=GuardedH11Protocol, **kwargs)
        self.header_timeout, self.body_timeout, self.max_connections = header_timeout, body_timeout, max_connections


class GuardedH11Protocol(H11Protocol):
    """h11 with a deadline on each request's head and body, and a cap on open connections."""

    _deadline: asyncio.TimerHandle | None = None
    _phase = ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > getattr(self.config, "max_connections", 1000):
            transport.write(REFUSED)
            transport.close()
            return
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        their = self.conn.their_state
        if their is h11.SEND_BODY and self._phase == "head":
            self._arm("body")
        elif their is not h11.IDLE and their is not h11.SEND_BODY:
            self._disarm()  # the whole request is in (or the connection is done): the app's time now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # the next request gets its own deadline, after the keep-alive wait
            self._arm("head", extra=self.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, phase: str, extra: float = 0.0) -> None:
        self._disarm()
        seconds = getattr(self.config, "header_timeout" if phase == "head" else "body_timeout", 10.0) + extra
        self._phase, self._deadline = phase, self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, ""

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, ""
        if self.transport.is_closing():
            return
        between_requests = self.cycle is None or self.cycle.response_complete
        if phase == "head" and self.conn.their_state is h11.IDLE and between_requests:
            self.transport.write(TOO_SLOW)
        self.logger.info("closing a connection whose request %s came too slowly", phase)
        self.transport.close()
