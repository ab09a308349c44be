"""``zoo serve``: trained models behind an HTTP API, with a page to try them.

The package is light to import: Starlette and uvicorn (``pip install 'zoo[serve]'``)
load only in :mod:`zoo.serve.app`, which ``zoo serve`` imports when it runs.

- :mod:`zoo.serve.models`: the served models (name, metadata, model card).
- :mod:`zoo.serve.runner`: the bound on pending requests and the per-model prediction thread.
- :mod:`zoo.serve.requests`: request bodies checked into inputs and options (4xx errors).
- :mod:`zoo.serve.budget`: the work a request asks for (inputs x tokens x beam), refused over ``--max-work``.
- :mod:`zoo.serve.guard`: Host allowlist, same-origin and JSON-only requests, the API key, security headers.
- :mod:`zoo.serve.metrics`: Prometheus metrics and the log line of each request.
- :mod:`zoo.serve.protocol`: uvicorn's HTTP/1.1 protocol with read timeouts and a connection cap.
- :mod:`zoo.serve.app`: the Starlette app; :mod:`zoo.serve.openapi` its schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooUsageError


@dataclass(frozen=True)
class Limits:
    """What the server admits; every request beyond a limit gets a 4xx (or 503) JSON error."""

    max_body_bytes: int = 1_000_000  # a request body larger than this is refused (413)
    max_input_chars: int = 10_000  # characters of one input (a text, or a list of words joined by spaces)
    max_inputs: int = 256  # inputs in one predict request
    max_pending: int = 64  # requests admitted at once (running or queued), over every model; beyond: 503
    max_batch: int = 64  # inputs that queued requests to one model are merged into, per forward pass
    max_new_tokens: int = 1000  # tokens one generate request may ask for
    # inputs x new tokens x beam of one request (budget.py counts it): 20 prompts of 1,000 tokens, 100 of 200
    max_work: int = 20_000
    max_total_chars: int = 100_000  # characters of all the inputs of one request together

    def validate(self) -> None:
        for name in ("max_body_bytes", "max_input_chars", "max_inputs", "max_batch", "max_new_tokens", "max_work",
                     "max_total_chars"):
            if getattr(self, name) < 1:
                raise ZooUsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_pending < 0:
            raise ZooUsageError(f"--max-pending must be >= 0, got {self.max_pending}")
