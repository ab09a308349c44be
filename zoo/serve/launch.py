"""Starting ``zoo serve``: the plan of one server, run in this process or in several worker processes.

With ``workers > 1`` uvicorn binds the socket once and starts that many processes, each of which
builds its app from the plan (passed in the environment as JSON, since a worker is a fresh
interpreter) and loads the models itself; the kernel spreads connections over them. Each worker
gets ``cores // workers`` torch threads unless ``--threads`` says otherwise, so N workers do not
start N x cores threads between them.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

PLAN_ENV = "ZOO_SERVE_PLAN"


@dataclass
class Plan:
    """What every worker builds: the models (``[NAME=]PATH``), the device, the limits and the access rules."""

    models: list[str]
    device: str = "cpu"
    limits: dict[str, Any] = field(default_factory=dict)  # zoo.serve.Limits fields
    access: dict[str, Any] = field(default_factory=dict)  # zoo.serve.guard.Access fields
    threads: int | None = None  # torch threads of each worker (None: torch's choice)


def worker_threads(workers: int, threads: int | None) -> int | None:
    """``threads`` if given; else, with several workers, the usable cores shared out among them."""
    if threads or workers <= 1:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def build(plan: Plan) -> Any:
    """The app of ``plan``, its models loaded (in the calling process)."""
    from zoo import api
    from zoo.serve import Limits
    from zoo.serve.app import create_app
    from zoo.serve.guard import Access
    from zoo.serve.models import load_models

    if plan.threads:
        import torch

        torch.set_num_threads(plan.threads)
    served = load_models(plan.models, lambda path: api.load(path, device=plan.device))
    access = {**plan.access, "allow_hosts": tuple(plan.access.get("allow_hosts", ())),
              "cors_origins": tuple(plan.access.get("cors_origins", ()))}
    return create_app(served, Limits(**plan.limits), Access(**access))


def worker_app() -> Any:
    """uvicorn's app factory in a worker process: the plan from the environment."""
    return build(Plan(**json.loads(os.environ[PLAN_ENV])))


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config with zoo.serve's loggers (the request lines) beside its own."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["zoo.serve"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def run(plan: Plan, app: Any, *, workers: int, log_level: str, **server: Any) -> None:
    """Serve ``app`` (one worker) or ``plan`` in ``workers`` processes; ``server``: host, port, timeouts, caps."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from zoo.serve.protocol import ServeConfig

    common = {"log_level": log_level, "log_config": log_config(log_level), "access_log": False,
              "timeout_graceful_shutdown": 5, **server}
    if workers <= 1:
        server_ = uvicorn.Server(ServeConfig(app, **common))
        server_.run()
        if not server_.started:
            from zoo.errors import ZooError

            raise ZooError(f"zoo serve could not start on {server['host']}:{server['port']} (see the log above)")
        return
    os.environ[PLAN_ENV] = json.dumps(asdict(plan))  # this process only serves from here on: the workers read it
    config = ServeConfig("zoo.serve.launch:worker_app", factory=True, workers=workers, timeout_worker_healthcheck=60,
                         **common)
    sockets = [config.bind_socket()]
    import inspect

    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn takes the worker's entry point too
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=sockets).run()
    else:
        Multiprocess(config, sockets=sockets).run()
