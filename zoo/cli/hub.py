"""``zoo publish``, ``zoo pull``, ``zoo package`` and ``zoo list --index``: sharing trained models.

The work is done in :mod:`zoo.hub`; these commands only parse and print.
"""

from __future__ import annotations

import click


@click.command("publish")
@click.argument("run", type=click.Path())
@click.argument("dest")
@click.option("--name", help="Name in the index [default: the run's entry, e.g. imdb-rnn].")
@click.option("--version", "version", help="Version to publish [default: the next integer].")
@click.option("--force", is_flag=True, help="Replace a version already published with other weights.")
def publish_cmd(run: str, dest: str, name: str | None, version: str | None, force: bool) -> None:
    """Publish the model of RUN (a run folder or model file) to DEST, a folder or an s3:// prefix.

    \b
    DEST gets NAME/VERSION/model.safetensors, its model card, and index.json (updated atomically).
    A folder can be served by any static web server: zoo pull NAME --index http://HOST/PATH
    """
    from zoo.hub.index import publish

    record = publish(run, dest, name=name, version=version, force=force)
    click.echo(f"published {record['file']} ({record['size']:,} bytes, sha256 {record['sha256'][:16]}...) "
               f"to {dest.rstrip('/')}/index.json")


@click.command("pull")
@click.argument("name")
@click.option("--index", "index", required=True, metavar="URL",
              help="The index: a URL (https://, http://, file://, s3://) or folder holding index.json.")
@click.option("--version", "version", help="Version to pull [default: the latest].")
def pull_cmd(name: str, index: str, version: str | None) -> None:
    """Download model NAME from an index into the cache (verified) and print its local path."""
    from zoo.hub.index import pull

    click.echo(str(pull(name, index, version)))


@click.command("package")
@click.argument("run", type=click.Path())
@click.option("--name", required=True, help="The package (and model) name: pip install NAME, zoo predict NAME.")
@click.option("--out", default="dist", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the wheel.")
@click.option("--version", "version", default="0.1.0", show_default=True, help="The package's version.")
@click.option("--force", is_flag=True, help="Overwrite a wheel of the same name and version in --out.")
def package_cmd(run: str, name: str, out: str, version: str, force: bool) -> None:
    """Build a wheel of the model of RUN that pins the plugin that built it.

    \b
    pip install dist/NAME-*.whl, then: zoo predict NAME "some input", or zoo.load("NAME") in Python.
    """
    from zoo.hub.package import package

    wheel = package(run, name, out, version=version, force=force)
    click.echo(f"wrote {wheel} ({wheel.stat().st_size:,} bytes)")


def list_index(index: str) -> None:
    """The models of a published index: name, latest version, entry, test (else val) metrics."""
    from zoo.hub.index import index_url, read_index

    models = read_index(index)["models"]
    if not models:
        click.echo(f"no models in {index_url(index)}")
        return
    width = max(len(n) for n in models)
    for name in sorted(models):
        latest = models[name].get("latest", "")
        record = models[name].get("versions", {}).get(latest, {})
        metrics = record.get("metrics", {})
        split = "test" if "test" in metrics else "val" if "val" in metrics else ""
        shown = "  ".join(f"{k}={v:.4g}" for k, v in (metrics.get(split) or {}).items() if isinstance(v, (int, float)))
        click.echo(f"  {name:<{width}}  v{latest:<4} {record.get('entry', '')}  {split + ': ' if shown else ''}"
                   f"{shown}".rstrip())


def with_index(list_cmd: click.Command) -> click.Command:
    """``zoo list`` with ``--index URL``: the models of a published index instead of the registry."""

    def run(index: str | None, **params: object) -> None:
        if index:
            list_index(index)
        else:
            list_cmd.callback(**params)

    option = click.Option(["--index"], metavar="URL", help="List the models of a published index instead "
                                                           "(a URL or folder holding index.json).")
    return click.Command(list_cmd.name, params=[*list_cmd.params, option], callback=run, help=list_cmd.help)


HUB_COMMANDS = (publish_cmd, pull_cmd, package_cmd)
