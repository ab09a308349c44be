"""``zoo serve``: imports neither Starlette nor torch until it runs, so ``zoo --help`` stays light."""

from __future__ import annotations

import importlib.util

import click

from zoo.errors import ZooError
from zoo.serve import Limits

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULTS = Limits()


def require_stack() -> None:
    """A one-line error when the optional ``serve`` extra is not installed."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(f"zoo serve needs {' and '.join(missing)}, which are not installed: "
                       "pip install 'zoo[serve]'")


def _limit(flag: str, minimum: int, text: str):  # noqa: ANN202 - a click decorator
    attr = flag.removeprefix("--").replace("-", "_")
    return click.option(flag, type=click.IntRange(min=minimum), default=getattr(DEFAULTS, attr),
                        show_default=True, help=text)


@click.command("serve")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes the models to the network (no auth).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@_limit("--max-body-bytes", 1, "Largest request body accepted (413 beyond).")
@_limit("--max-input-chars", 1, "Longest input (or prompt) accepted, in characters (422 beyond).")
@_limit("--max-inputs", 1, "Most inputs in one predict request (422 beyond).")
@_limit("--max-pending", 0, "Requests worked on or queued at once, over all models (503 beyond).")
@_limit("--max-batch", 1, "Inputs of queued requests merged into one forward pass.")
@_limit("--max-new-tokens", 1, "Most tokens one generate request may ask for.")
@click.option("--threads", type=click.IntRange(min=1), help="Torch CPU threads [default: torch's choice].")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True, help="uvicorn's log level (info logs each request).")
def serve_cmd(models: tuple[str, ...], host: str, port: int, device: str, max_body_bytes: int,
              max_input_chars: int, max_inputs: int, max_pending: int, max_batch: int, max_new_tokens: int,
              threads: int | None, log_level: str) -> None:
    """Serve MODELs (files or run folders; NAME=PATH names one) over HTTP, with a page to try them at /.

    JSON API: GET /api/models, POST /api/models/NAME/predict {"inputs": [...]},
    POST /api/models/NAME/generate (server-sent events, language models), GET /health;
    its OpenAPI schema is at /openapi.json.
    """
    require_stack()
    import uvicorn

    from zoo import api
    from zoo.runtime.device import resolve_device
    from zoo.serve.app import create_app
    from zoo.serve.models import load_models

    if threads:
        import torch

        torch.set_num_threads(threads)
    limits = Limits(max_body_bytes=max_body_bytes, max_input_chars=max_input_chars, max_inputs=max_inputs,
                    max_pending=max_pending, max_batch=max_batch, max_new_tokens=max_new_tokens)
    dev = str(resolve_device(device))
    served = load_models(models, lambda path: api.load(path, device=dev))
    app = create_app(served, limits)
    for m in served.values():
        click.echo(f"model {m.name}: {m.loaded.path} ({m.loaded.metadata.get('task', '?')})", err=True)
    if host not in LOOPBACK:
        click.echo(f"warning: listening on {host}: anyone who reaches it can use these models (no authentication)",
                   err=True)
    if port:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving on http://{shown}:{port}/ (API /api/models, schema /openapi.json); Ctrl+C stops",
                   err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
