"""``zoo plugins`` (and ``--check``), and the warnings about plugins that the other commands share."""

from __future__ import annotations

import click

from zoo import api
from zoo.runtime.untrusted import printable


def _echo(text: str, **kw: object) -> None:
    """click.echo with control characters escaped: names, versions and errors come from installed packages' files."""
    click.echo(printable(text, keep="\n"), **kw)  # type: ignore[arg-type]


def warn_about_filter() -> None:
    """ZOO_PLUGINS naming plugins that do not exist is almost always a typo: say so."""
    loaded = api.plugin_state()
    unknown = loaded.unknown_in_filter()
    if unknown:
        installed = ", ".join(sorted(n for n in loaded.plugins if n != "zoo"))
        _echo(f"warning: ZOO_PLUGINS names {', '.join(unknown)}, which no installed plugin is called "
                   f"(installed: {installed})", err=True)


@click.command("plugins")
@click.option("--check", is_flag=True,
              help="Also import every registered factory; exit 1 naming each one that does not import.")
@click.pass_context
def plugins_cmd(ctx: click.Context, check: bool) -> None:
    """Show every plugin: ok / failed / blocked, version, what it registered, the error and where it happened.

    Exits 1 when a plugin failed (or, with --check, a factory does not import); 'zoo -v plugins' adds the
    tracebacks."""
    from zoo.registry.checks import check_factories, diagnose

    loaded = api.plugin_state()
    verbose = (ctx.find_root().params.get("verbose") or 0) > 0
    problems = []
    for info in sorted(loaded.plugins.values(), key=lambda i: i.name):
        version = f" {info.version}" if info.version else ""
        _echo(f"{info.name}{version}: {info.status}  ({info.module})")
        if info.error:
            _echo(f"  error: {info.error}")
        if info.status == "failed":
            problem = diagnose(loaded, info)
            problems.append(problem)
            _echo(f"  failed in: {problem.hook}" + (f" at {problem.where}" if problem.where else ""))
            _traceback(problem, verbose)
        if info.registered:
            _echo(f"  registered: {', '.join(info.registered)}")
        if info.entry_keys:
            _echo(f"  entry keys: {', '.join(info.entry_keys)}")
        if info.depends:
            _echo(f"  depends on: {', '.join(info.depends)}")
        if info.note:
            _echo(f"  note: {info.note}")
        for warning in info.warnings:  # name clashes (shown on both plugins), missing dependencies
            _echo(f"  warning: {warning}")
    for c in loaded.registry.collisions:
        _echo(f"warning: {c}", err=True)
    if check:
        checked, bad = check_factories(loaded)
        for problem in bad:
            _echo(f"error: {problem.line()}")
            _traceback(problem, verbose)
        _echo(f"check: {checked - len(bad)} of {checked} factories import")
        problems += bad
    if problems:
        failed = sorted({p.plugin for p in problems})
        hint = "" if verbose else "; 'zoo -v plugins' shows the tracebacks"
        _echo(f"error: {len(problems)} problem(s) in plugin(s) {', '.join(failed)}{hint}", err=True)
        ctx.exit(1)


def _traceback(problem: object, verbose: bool) -> None:
    text = getattr(problem, "traceback", "")
    if verbose and text:
        _echo("    " + text.rstrip().replace("\n", "\n    "))
