"""``zoo list [PATTERN] [--kind KIND]``: entries, models, tokenizers, datasets and tasks, without importing torch."""

from __future__ import annotations

import click

from zoo import api
from zoo.cli.plugins import warn_about_filter
from zoo.registry.names import KINDS


@click.command("list")
@click.argument("pattern", default="*")
@click.option("--kind", type=click.Choice(("all", *KINDS)), default="all", show_default=True)
def list_cmd(pattern: str, kind: str) -> None:
    """List entries, models, tokenizers, datasets, tasks and loggers (fnmatch PATTERN)."""
    reg = api.get_registry()
    for k in KINDS if kind == "all" else (kind,):
        specs = reg.list(k, pattern)
        if not specs:
            continue
        click.echo(f"{k}s:" if k != "entry" else "entries:")
        width = max(len(s.id) for s in specs)
        for s in specs:
            click.echo(f"  {s.id:<{width}}  {s.summary}".rstrip())
    for c in reg.collisions:
        click.echo(f"warning: {c}; use the full id", err=True)
    failed = [i for i in api.plugin_state().plugins.values() if i.status == "failed"]
    if failed:
        click.echo(f"warning: {len(failed)} plugin(s) failed to load: {', '.join(i.name for i in failed)} "
                   "(see 'zoo plugins')", err=True)
    warn_about_filter()
