"""What ``zoo info`` shows: a model file's header, or the registered components of a name."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from .errors import ZooUsageError
from .registry import KINDS
from .zoo_state import get_registry


def info_file(path: Path) -> None:
    """A model file's header: what made it, its tensors, metrics and config."""
    from .artifact import read_header, read_metadata

    meta = read_metadata(path)
    header, _ = read_header(path)
    n_params = sum(math.prod(t["shape"]) for t in header.values())
    click.echo(f"file: {path}")
    for key in ("entry", "model", "plugin", "plugin_version", "arch_version", "task", "dataset",
                "zoo_version", "created"):
        if key in meta:
            click.echo(f"{key}: {meta[key]}")
    click.echo(f"tensors: {len(header)} ({n_params:,} values)")
    for key in ("metrics", "reference", "sizes", "config"):
        if key in meta:
            click.echo(f"{key}: {json.dumps(meta[key], indent=2, sort_keys=True)}")


def info_name(name: str) -> None:
    """Every registered component called ``name``, with its entry data or config fields."""
    reg = get_registry()
    found = []
    for kind in KINDS:
        try:
            found.append(reg.get(kind, name))
        except ZooUsageError:
            continue
    if not found:
        from .errors import UnknownNameError

        known = [s.id for kind in KINDS for s in reg.specs(kind)] + [s.name for kind in KINDS for s in reg.specs(kind)]
        raise UnknownNameError("name", name, known)
    for spec in found:
        click.echo(f"{spec.kind}: {spec.id}")
        if spec.summary:
            click.echo(f"  {spec.summary}")
        if spec.kind == "entry":
            _info_entry(spec.data)
        else:
            _info_config(spec.load())


def _info_entry(data: dict[str, Any]) -> None:
    for key in ("model", "task", "dataset", "tokenizer", "command"):
        if key in data:
            click.echo(f"  {key}: {data[key]}")
    if "reference" in data:
        click.echo(f"  reference: {json.dumps(data['reference'])}")
    if data.get("config"):
        click.echo(f"  config: {json.dumps(data['config'], sort_keys=True)}")


def _info_config(cls: type) -> None:
    import dataclasses

    cfg = getattr(cls, "Config", None)
    if cfg is not None and dataclasses.fields(cfg):
        click.echo("  config:")
        for f in dataclasses.fields(cfg):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
            click.echo(f"    {f.name} = {default!r}")


@click.command()
@click.argument("name")
def info(name: str) -> None:
    """Describe a registered NAME, a model FILE (read without loading its tensors), a Hugging Face
    folder or an ONNX file."""
    from .interop import describe

    foreign = describe(name)
    if foreign is not None:
        click.echo("\n".join(foreign))
        return
    path = Path(name)
    if path.is_dir() and (path / "model.safetensors").is_file():
        path = path / "model.safetensors"
    if path.is_file() or name.endswith(".safetensors"):
        info_file(path)
    else:
        info_name(name)
