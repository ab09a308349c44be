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
              help="safetensors: a zoo artifact; hf: a Hugging Face GPT-2 folder (GPT models); onnx: ONNX graph(s) "
                   "and a JSON sidecar (classifiers, taggers, seq2seq encoders, GPT, seq2py).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16", "int8"]), help="Cast the weights.")
@click.option("--quantize", type=click.Choice(["int8"]), help="--format onnx: onnxruntime dynamic quantization.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists (never a run's own files).")
def export(src: str, out: str, fmt: str, dtype: str | None, quantize: str | None, force: bool) -> None:
    """Write a self-describing copy of a model FILE or run folder (float16, int8 ...) or hand it on (--format)."""
    if fmt != "safetensors" or quantize:  # --quantize: --format onnx; a zoo artifact takes --dtype int8
        if dtype:
            raise click.UsageError(f"--dtype applies to --format safetensors only, not {fmt}")
        click.echo(f"wrote {export_other(src, out, fmt, force=force, quantize=quantize)}")
        return
    path = api.export(src, out, dtype, force=force)
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")
