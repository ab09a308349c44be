"""The ``zoo`` group: the core commands (one module each beside this one), the commands plugins add, ``main``."""

from __future__ import annotations

import logging
import os
import sys

import click

from zoo import api
from zoo._version import __version__
from zoo.cli.common import ZooGroup
from zoo.errors import ZooError


@click.command("zoo")
@click.version_option(__version__, prog_name="zoo")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def _root(verbose: int) -> None:
    """A plugin-based model zoo for PyTorch sequence models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def commands() -> list[click.Command]:
    """The core commands, one module each, imported when the CLI is built (never by ``import zoo.cli``)."""
    from zoo.cli.cache import cache_cmd, prepare_cmd
    from zoo.cli.evaluate import eval_cmd
    from zoo.cli.export import export
    from zoo.cli.generate import generate
    from zoo.cli.hub import HUB_COMMANDS, with_index
    from zoo.cli.info import info
    from zoo.cli.listing import list_cmd
    from zoo.cli.new_plugin import new_plugin_cmd
    from zoo.cli.plugins import plugins_cmd
    from zoo.cli.predict import predict_cmd
    from zoo.cli.train import train
    from zoo.interop.commands import import_cmd
    from zoo.serve.cli import serve_cmd

    return [with_index(list_cmd), info, train, eval_cmd, export, import_cmd, generate, predict_cmd, serve_cmd,
            plugins_cmd, new_plugin_cmd, *HUB_COMMANDS, cache_cmd, prepare_cmd]


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
