"""Who may talk to ``zoo serve``, as two ASGI middlewares in front of the app.

- :class:`HostGuard` (outermost): answers only requests whose ``Host`` is a loopback name or one
  the server was told about (``--allow-host``), so a page on another site that rebinds its DNS name
  to 127.0.0.1 is refused; it adds the security headers to every response, refusals included.
- :class:`RequestGuard` (inside CORS, when ``--cors-origin`` names origins): a state-changing
  request from another origin is refused unless that origin was named; JSON endpoints take only
  ``Content-Type: application/json`` (a browser sends other types cross-site without asking);
  with an API key, everything but the page, its static files and the health probes needs
  ``Authorization: Bearer KEY`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# paths anyone who reaches the server may read, key or not (they hold no model output)
PUBLIC = ("/", "/health/live", "/health/ready", "/favicon.ico")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                                 b"frame-ancestors 'none'"),
]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Access:
    """Who the server answers: its names, the other origins it lets in, the key it asks for."""

    allow_hosts: tuple[str, ...] = ()  # Host names beyond loopback; "*" answers any Host (behind a proxy)
    cors_origins: tuple[str, ...] = ()  # origins (scheme://host[:port]) whose pages may call the API
    api_key: str | None = None  # a bearer token every non-public request must carry
    show_paths: bool = False  # /api/models shows local paths (artifact, dataset files)

    def host_allowed(self, host: str) -> bool:
        return "*" in self.allow_hosts or host in LOOPBACK_NAMES or host in {h.lower() for h in self.allow_hosts}


def host_name(value: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8000`` -> ``::1``, ``Example.COM.:80`` -> ``example.com``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def refuse(send: Send, status: int, message: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A JSON ``{"error": message}`` response with ``status``."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class HostGuard:
    """Refuses foreign ``Host`` headers (DNS rebinding) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        host = _header(scope, b"host")
        if host is None or not self.access.host_allowed(host_name(host)):
            shown = "no Host header" if host is None else f"Host {host_name(host)!r}"
            await refuse(send_with_headers, 400, f"{shown} is not served here: this server answers "
                         f"{', '.join((*LOOPBACK_NAMES, *self.access.allow_hosts))} (--allow-host adds a name)")
            return
        await self.app(scope, receive, send_with_headers)


class RequestGuard:
    """Cross-site requests, the JSON content type and the API key (see the module's docstring)."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (problem := self.problem(scope)):
            status, message, extra = problem
            await refuse(send, status, message, extra)
            return
        await self.app(scope, receive, send)

    def problem(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, headers) of the refusal of a request, or None to let it in."""
        method, path = scope["method"], scope["path"]
        origin = _header(scope, b"origin")
        if method not in SAFE_METHODS and origin is not None and not self._same_origin(origin, scope):
            if origin not in self.access.cors_origins:
                return 403, (f"a request from the page at {origin} is refused: this server takes requests from "
                             "its own page only (--cors-origin names other origins)"), []
        if self.access.api_key and not (path in PUBLIC or path.startswith("/static/")):
            if not self._key_matches(_header(scope, b"authorization")):
                return 401, ("this server needs an API key: send the header 'Authorization: Bearer KEY' "
                             "(the key given to zoo serve --api-key or ZOO_SERVE_API_KEY)"), \
                    [(b"www-authenticate", b'Bearer realm="zoo serve"')]
        if method == "POST" and path.startswith("/api/"):
            ctype = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                got = f"'{ctype}'" if ctype else "none"
                return 415, f"send the body as JSON with 'Content-Type: application/json' (got {got})", []
        return None

    def _key_matches(self, header: str | None) -> bool:
        scheme, _, token = (header or "").strip().partition(" ")
        expected = (self.access.api_key or "").encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    @staticmethod
    def _same_origin(origin: str, scope: Scope) -> bool:
        """The request comes from a page this server served (its Origin names the Host it was sent to)."""
        parts = urlsplit(origin)
        host = (_header(scope, b"host") or "").lower()
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host
