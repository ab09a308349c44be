"""``zoo export MODEL --out FILE``: a self-describing copy, in half precision, or for another ecosystem."""

from __future__ import annotations

import click

from zoo import api
from zoo.interop.commands import FORMATS, export_other


@click.command()
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(),
              help="The file (safetensors, onnx) or folder (hf) to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="safetensors", show_default=True,
              help="safetensors: a zoo artifact; hf: a Hugging Face GPT-2 folder (GPT models); onnx: an ONNX "
                   "graph with its tokenizer and labels beside it (classifiers, taggers, seq2seq encoders).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating weights.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists (never a run's own files).")
def export(src: str, out: str, fmt: str, dtype: str | None, force: bool) -> None:
    """Write a self-describing copy of a model FILE or run folder, optionally in half precision,
    or hand it to another ecosystem (--format hf / onnx)."""
    if fmt != "safetensors":
        if dtype:
            raise click.UsageError(f"--dtype applies to --format safetensors only, not {fmt}")
        click.echo(f"wrote {export_other(src, out, fmt, force=force)}")
        return
    path = api.export(src, out, dtype, force=force)
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")
