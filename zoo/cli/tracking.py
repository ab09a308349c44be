"""``--logger NAME`` (repeatable) on ``zoo train``: the experiment trackers the run reports to."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

LOGGER_HELP = ("Report the run to this experiment tracker (repeatable; sets train.loggers): tensorboard, mlflow, "
               "or one a plugin adds ('zoo list --kind logger').")


def logger_sets(loggers: tuple[str, ...]) -> tuple[str, ...]:
    """``--logger`` names as the ``--set`` item they stand for (none when no name was given)."""
    return (f"train.loggers={json.dumps(list(dict.fromkeys(loggers)))}",) if loggers else ()


def logger_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--logger`` to a command that takes ``--set`` (``sets``): the names become ``--set train.loggers=[...]``,
    after the command's own ``--set`` items, so a relaunched command (``--nproc``) passes them on as they are."""

    @functools.wraps(command)
    def wrapped(*args: Any, loggers: tuple[str, ...] = (), sets: tuple[str, ...] = (), **kwargs: Any) -> Any:
        return command(*args, sets=tuple(sets) + logger_sets(loggers), **kwargs)

    return click.option("--logger", "loggers", multiple=True, metavar="NAME", help=LOGGER_HELP)(wrapped)
