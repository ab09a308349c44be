"""``zoo serve``: imports neither Starlette nor torch until it runs, so ``zoo --help`` stays light."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import click

from zoo.errors import ZooError
from zoo.serve import Limits
from zoo.errors import ZooUsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
DEFAULTS = Limits()


def require_stack() -> None:
    """A one-line error when the optional ``serve`` extra is not installed."""
    missing = [m for m in ("starlette", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(f"zoo serve needs {' and '.join(missing)}, which are not installed: "
                       "pip install 'zoo[serve]'")


def _limit(flag: str, minimum: int, text: str):  # noqa: ANN202 - a click decorator
    attr = flag.removeprefix("--").replace("-", "_")
    return click.option(flag, type=click.IntRange(min=minimum), default=getattr(DEFAULTS, attr),
                        show_default=True, help=text)


def check_exposure(host: str, api_key: str | None, insecure: bool) -> None:
    """Listening beyond loopback needs a key, or ``--insecure`` saying that none is wanted."""
    if host not in LOOPBACK and not api_key and not insecure:
        raise ZooUsageError(f"--host {host} exposes the models beyond this machine: give an API key (--api-key or "
                            "ZOO_SERVE_API_KEY) that clients send as 'Authorization: Bearer KEY', or --insecure "
                            "to serve without one")


def allowed_hosts(host: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    """The Host names answered beyond loopback: ``--allow-host`` and the address listened on, when it is one."""
    names = list(extra)
    if host not in LOOPBACK and host not in WILDCARD and host not in names:
        names.append(host)
    return tuple(names)


OPTIONS = [  # zoo serve's options, applied in this order (--help lists them so)
    click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on; beyond loopback it needs --api-key (or --insecure)."),
    click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--api-key", envvar="ZOO_SERVE_API_KEY", help="Require 'Authorization: Bearer KEY' on the API and "
                  "/metrics (the page and /health/live, /health/ready stay open) [env: ZOO_SERVE_API_KEY]."),
    click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without an API key."),
    click.option("--allow-host", multiple=True, metavar="NAME", help="Also answer requests whose Host header is NAME "
                  "(repeatable; '*' answers any, e.g. behind a proxy that checks it). Default: loopback names only."),
    click.option("--cors-origin", multiple=True, metavar="ORIGIN", help="Let pages from ORIGIN (scheme://host[:port]) "
                  "call the API (repeatable). Default: no CORS, only the server's own page."),
    click.option("--show-paths", is_flag=True, help="Show local paths (artifact, dataset files) in /api/models."),
    _limit("--max-body-bytes", 1, "Largest request body accepted (413 beyond)."),
    _limit("--max-input-chars", 1, "Longest input (or prompt) accepted, in characters (422 beyond)."),
    _limit("--max-total-chars", 1, "Characters of all the inputs of one request together (422 beyond)."),
    _limit("--max-inputs", 1, "Most inputs in one predict request (422 beyond)."),
    _limit("--max-work", 1, "Work one request may ask for: inputs x new tokens x beam (422 beyond)."),
    _limit("--max-pending", 0, "Requests worked on or queued at once, over all models (503 beyond)."),
    _limit("--max-batch", 1, "Inputs of queued requests merged into one forward pass."),
    _limit("--max-new-tokens", 1, "Most tokens one generate request may ask for."),
    click.option("--header-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                  help="Seconds a client has to send a request's headers (408 and closed beyond)."),
    click.option("--body-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                  help="Seconds a client has to send a request's body once its headers are in (closed beyond)."),
    click.option("--keep-alive-timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
                  help="Seconds an idle connection stays open after a response."),
    click.option("--max-connections", type=click.IntRange(min=1), default=1000, show_default=True,
                  help="Open connections per worker; one beyond is answered 503 and closed."),
    click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Worker processes, each loading the models; torch threads are split among them."),
    click.option("--threads", type=click.IntRange(min=1), help="Torch CPU threads per worker "
                  "[default: torch's choice; with --workers N, the cores / N]."),
    click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
                  show_default=True, help="info logs one line per request (method, path, status, ms, model, inputs)."),
]


def _options(func):  # noqa: ANN001, ANN202 - a click decorator
    for option in reversed(OPTIONS):
        func = option(func)
    return func


@click.command("serve")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@_options
def serve_cmd(models: tuple[str, ...], host: str, port: int, device: str, api_key: str | None, insecure: bool,
              allow_host: tuple[str, ...], cors_origin: tuple[str, ...], show_paths: bool, header_timeout: float,
              body_timeout: float, keep_alive_timeout: float, max_connections: int, workers: int,
              threads: int | None, log_level: str, **limits: Any) -> None:
    """Serve MODELs (files or run folders; NAME=PATH names one) over HTTP, with a page to try them at /.

    JSON API: GET /api/models, POST /api/models/NAME/predict {"inputs": [...]},
    POST /api/models/NAME/generate (server-sent events, language models), GET /health,
    /health/live, /health/ready, /metrics (Prometheus); its OpenAPI schema is at /openapi.json.
    """
    require_stack()
    check_exposure(host, api_key, insecure)
    Limits(**limits).validate()
    from zoo.runtime.device import resolve_device
    from zoo.serve.launch import Plan, build, run, worker_threads

    access = {"allow_hosts": allowed_hosts(host, allow_host), "cors_origins": cors_origin, "api_key": api_key or None,
              "show_paths": show_paths}
    plan = Plan(list(models), str(resolve_device(device)), limits, access, worker_threads(workers, threads))
    app = build(plan)  # with several workers, each loads the models again; this checks them first
    _announce(app, host, port, access, workers)
    if workers > 1:
        app.state.server.close()
        del app
    run(plan, None if workers > 1 else app, workers=workers, log_level=log_level, host=host, port=port,
        header_timeout=header_timeout, body_timeout=body_timeout, timeout_keep_alive=keep_alive_timeout,
        max_connections=max_connections)


def _announce(app: Any, host: str, port: int, access: dict[str, Any], workers: int) -> None:
    for m in app.state.server.models.values():
        click.echo(f"model {m.name}: {m.loaded.path} ({m.loaded.metadata.get('task', '?')})", err=True)
    if host not in LOOPBACK:
        auth = "an API key is required" if access["api_key"] else "NO authentication (--insecure)"
        click.echo(f"warning: listening on {host}: reachable from the network, {auth}", err=True)
        if host in WILDCARD and not access["allow_hosts"]:
            click.echo("note: only requests naming a loopback Host are answered; add --allow-host NAME for the "
                       "name clients use", err=True)
    if port:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving on http://{shown}:{port}/ with {workers} worker{'s' * (workers > 1)} "
                   f"(API /api/models, schema /openapi.json, metrics /metrics, pid {os.getpid()}); Ctrl+C stops",
                   err=True)
