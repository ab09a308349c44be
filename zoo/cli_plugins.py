"""``zoo plugins``, and the warnings about plugins that the other commands share."""

from __future__ import annotations

import click

from . import api


def warn_about_filter() -> None:
    """ZOO_PLUGINS naming plugins that do not exist is almost always a typo: say so."""
    loaded = api.plugin_state()
    unknown = loaded.unknown_in_filter()
    if unknown:
        installed = ", ".join(sorted(n for n in loaded.plugins if n != "zoo"))
        click.echo(f"warning: ZOO_PLUGINS names {', '.join(unknown)}, which no installed plugin is called "
                   f"(installed: {installed})", err=True)


@click.command("plugins")
def plugins_cmd() -> None:
    """Show every plugin: ok / failed / blocked, version, what it registered, the error."""
    loaded = api.plugin_state()
    for info in sorted(loaded.plugins.values(), key=lambda i: i.name):
        version = f" {info.version}" if info.version else ""
        click.echo(f"{info.name}{version}: {info.status}  ({info.module})")
        if info.error:
            click.echo(f"  error: {info.error}")
        if info.registered:
            click.echo(f"  registered: {', '.join(info.registered)}")
    for c in loaded.registry.collisions:
        click.echo(f"warning: {c}", err=True)
