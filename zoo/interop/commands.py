"""The command-line side of :mod:`zoo.interop`, for :mod:`zoo.cli` to wire in.

- ``zoo import hf DIR --entry text-gpt --out RUN [--set KEY=VALUE ...] [--force]``: :data:`import_cmd`
  (a click group; ``COMMANDS`` in zoo.cli lists it).
- ``zoo export RUN --format hf|onnx --out PATH [--force]``: :func:`export_other`, called by
  ``zoo export`` for any format but safetensors.
- ``zoo info DIR|FILE.onnx``: :func:`zoo.interop.describe`, asked before the artifact / name lookup.

Errors are :class:`zoo.ZooError`; the zoo CLI group turns them into exit codes. Importing this
module imports click only.
"""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("safetensors", "hf", "onnx")  # zoo export --format


def export_other(src: str | Path, out: str | Path, fmt: str, *, force: bool = False,
                 quantize: str | None = None) -> Path:
    """``zoo export SRC --format hf|onnx --out OUT``: the written folder (hf) or .onnx file."""
    from zoo import api
    from zoo.errors import ZooUsageError
    from zoo.interop import export_hf, export_onnx

    if quantize and fmt != "onnx":
        raise ZooUsageError(f"--quantize applies to --format onnx only, not {fmt}"
                            + ("; a zoo artifact takes --dtype int8" if fmt == "safetensors" else ""))
    if fmt not in ("hf", "onnx"):
        raise ZooUsageError(f"--format {fmt}: interop exports hf or onnx")
    loaded = api.load(src)
    return export_hf(loaded, out, force=force) if fmt == "hf" else export_onnx(loaded, out, force=force,
                                                                                quantize=quantize)


@click.group("import")
def import_cmd() -> None:
    """Bring a model from another ecosystem into zoo (a local path; nothing is downloaded)."""


@import_cmd.command("hf")
@click.argument("src", type=click.Path(file_okay=False))
@click.option("--entry", default="text-gpt", show_default=True,
              help="The GPT entry whose training and optimizer settings the run gets (they matter only to "
                   "fine-tune it).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The zoo run folder to write.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. dataset.files=[\"corpus.txt\"] or task.block_size=256.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of overrides.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
def import_hf_cmd(src: str, entry: str, out: str, sets: tuple[str, ...], config_file: str | None,
                  force: bool) -> None:
    """Read a local GPT-2-layout folder SRC into a zoo run folder (generate, predict, serve, eval, train --resume).

    No dataset is needed to use the model; give one (--set dataset.files=[...]) here or on
    'zoo train --resume' to fine-tune it."""
    from zoo import config as _config
    from zoo.interop import import_hf

    run = import_hf(src, entry, out, overrides=_config.read_overrides(sets, config_file), force=force)
    click.echo(f"wrote {run}: try 'zoo generate {run} --prompt ...', 'zoo predict {run} TEXT', 'zoo serve {run}', "
               f"'zoo eval {run} --set dataset.files=[...]' or "
               f"'zoo train --resume {run} --set dataset.files=[...] --set train.epochs=N'")
