"""The ``zoo`` command line: the group, and the one place that turns ZooErrors into exit codes.

Each core command lives in a module of its own beside this one (``zoo.cli.train`` for ``zoo train``,
...); ``zoo serve`` and ``zoo import`` come from :mod:`zoo.serve` and :mod:`zoo.interop`. What the
commands share lives here: error translation, parameter types, the overrides of ``--config`` and ``--set``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from zoo import api
from zoo._version import __version__
from zoo.errors import ZooError, ZooUsageError


# parameter types the commands share
class FiniteFloat(click.FloatRange):
    """A float within a range that is also finite (click lets nan and inf through a FloatRange)."""

    name = "finite float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_NONNEGATIVE = FiniteFloat(min=0.0)


# library errors name the parameters of zoo.train / zoo.export ...; on the command line they are flags
_PARAM_FLAGS = re.compile(r"(?<![\w.])(resume|nproc|out|dtype|device)=(?=\S)")
_PARAM_FLAG_BARE = re.compile(r"(?<![\w.])(out)=(?!\S)")


def as_flags(message: str) -> str:
    """A library message in flags: ``resume=RUN`` -> ``--resume RUN``, ``force=True`` -> ``--force``."""
    message = message.replace("force=True", "--force")
    message = _PARAM_FLAGS.sub(lambda m: f"--{m.group(1)} ", message)
    return _PARAM_FLAG_BARE.sub(lambda m: f"--{m.group(1)}", message)


class ZooGroup(click.Group):
    """Turns :class:`ZooError` into one-line errors: exit 2 for usage, 1 otherwise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooUsageError as exc:  # a bad value, not a misuse of the command: no usage banner
            err = click.ClickException(as_flags(_with_filter_note(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except ZooError as exc:
            err = click.ClickException(as_flags(str(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except KeyboardInterrupt:
            click.echo("interrupted; files already written are intact (resume with 'zoo train --resume RUN')",
                       err=True)
            ctx.exit(130)


def _with_filter_note(exc: ZooUsageError) -> str:
    """An unknown name while ZOO_PLUGINS hides plugins: the filter is the likely cause, so name it."""
    from zoo.errors import UnknownNameError

    note = api.plugin_state().filter_note if isinstance(exc, UnknownNameError) else ""
    return f"{exc} ({note})" if note else str(exc)


def fmt_value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@click.command("zoo")
@click.version_option(__version__, prog_name="zoo")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def _root(verbose: int) -> None:
    """A plugin-based model zoo for PyTorch sequence models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def overrides_from(sets: tuple[str, ...], config_file: str | None) -> dict[str, Any]:
    from zoo import config as _config

    base: dict[str, Any] = {}
    if config_file:
        base = _config.load_toml(Path(config_file))
    return _config.merge(base, _config.parse_sets(sets))


def commands() -> list[click.Command]:
    """The core commands, one module each, imported when the CLI is built (never by ``import zoo.cli``)."""
    from zoo.cli.evaluate import eval_cmd
    from zoo.cli.export import export
    from zoo.cli.generate import generate
    from zoo.cli.info import info
    from zoo.cli.listing import list_cmd
    from zoo.cli.new_plugin import new_plugin_cmd
    from zoo.cli.plugins import plugins_cmd
    from zoo.cli.predict import predict_cmd
    from zoo.cli.train import train
    from zoo.interop.commands import import_cmd
    from zoo.serve.cli import serve_cmd

    return [list_cmd, info, train, eval_cmd, export, import_cmd, generate, predict_cmd, serve_cmd, plugins_cmd,
            new_plugin_cmd]


def build_cli() -> click.Group:
    """A fresh CLI group: the core commands, and those that plugins add through ``zoo_register_commands``."""
    group = ZooGroup(name="zoo", callback=_root.callback, params=list(_root.params), help=_root.help,
                     context_settings={"help_option_names": ["-h", "--help"]})
    for command in commands():
        group.add_command(command)
    loaded = api.plugin_state()
    for impl in loaded.pm.hook.zoo_register_commands.get_hookimpls():
        info = loaded.plugins.get(impl.plugin_name)
        if info is None or info.status != "ok":
            continue
        try:
            impl.function(cli=group)
        except Exception as exc:  # a plugin's bug must not take the CLI down
            info.status, info.error = "failed", f"zoo_register_commands raised {type(exc).__name__}: {exc}"
    return group


def main(argv: list[str] | None = None) -> None:
    try:
        group = build_cli()
    except ZooError as exc:  # e.g. an unreadable ZOO_REGISTRY
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a rank started by torchrun: see parallel.run_rank
        from zoo.runtime.parallel import run_rank

        run_rank(lambda: group.main(args=argv, prog_name="zoo"))
    group.main(args=argv, prog_name="zoo")
