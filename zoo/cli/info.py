"""What ``zoo info`` shows: a model file's header, a registered name (a task's model contract, a
component's config keys), the trainer's keys, or an entry's full resolved config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from zoo.config.docs import describe_fields
from zoo.errors import ZooUsageError
from zoo.registry.discovery import get_registry
from zoo.store.rundir import ARTIFACT

TRAINER = {"train": "the trainer: epochs, batches, stopping, devices", "optim": "the optimizer and its schedule"}


def info_file(path: Path) -> None:
    """A model file's header: what made it, its tensors, metrics and config. Every string from the file
    is printed with its control characters escaped (JSON blocks by ``json.dumps``' own escapes)."""
    from zoo.runtime.untrusted import printable
    from zoo.store.artifact import read_header, read_metadata

    meta = read_metadata(path)
    header, _ = read_header(path)
    n_params = sum(math.prod(t["shape"]) for t in header.values())
    click.echo(f"file: {printable(path)}")
    for key in ("entry", "model", "plugin", "plugin_version", "arch_version", "task", "dataset",
                "zoo_version", "created", "weights", "imported_from"):
        if key in meta:
            click.echo(f"{key}: {printable(meta[key])}")
    click.echo(f"tensors: {len(header)} ({n_params:,} values)")
    for key in ("metrics", "reference", "sizes", "config"):
        if key in meta:
            click.echo(f"{key}: {json.dumps(meta[key], indent=2, sort_keys=True)}")


def info_trainer(section: str) -> None:
    """Every ``train.*`` or ``optim.*`` key: default, type, range and meaning."""
    from zoo.config.train import OptimConfig, TrainConfig

    cls = TrainConfig if section == "train" else OptimConfig
    click.echo(f"[{section}]: {TRAINER[section]}; set with --set {section}.KEY=VALUE or a [{section}] table")
    click.echo("\n".join(describe_fields(cls, section)))


def info_resolved(name: str) -> None:
    """An entry's full resolved config as TOML: every section, every default (what a run starts from)."""
    from zoo.api import resolve_entry
    from zoo.config import dumps_toml
    from zoo.errors import UnknownNameError

    try:
        resolved = resolve_entry(name)
    except UnknownNameError:
        others = [s for s in _specs_named(name) if s.kind != "entry"]
        if others:
            raise ZooUsageError(f"--resolved prints an entry's config; '{name}' is a {others[0].kind} "
                                f"({others[0].id}): 'zoo info {name}' lists its config keys") from None
        raise
    click.echo(dumps_toml(resolved.data), nl=False)


def _specs_named(name: str) -> list[Any]:
    """What ``name`` means in each kind; a short name several plugins register raises, listing every id."""
    from zoo.errors import UnknownNameError

    try:
        return get_registry().find(name)
    except UnknownNameError:
        return []


def info_name(name: str) -> None:
    """Every registered component called ``name``: an entry's tables, a task's contract, a config's keys."""
    found = _specs_named(name)
    if not found and name in TRAINER:
        info_trainer(name)
        return
    if not found:
        get_registry().find(name)  # raises: did you mean ..., or which plugin hidden by ZOO_PLUGINS has it
    if name in TRAINER:
        info_trainer(name)
    for spec in found:
        click.echo(f"{spec.kind}: {spec.id}")
        if spec.summary:
            click.echo(f"  {spec.summary}")
        if spec.kind == "entry":
            _info_entry(spec.data)
            continue
        cls = spec.load()
        if spec.kind == "task":
            info_task(cls)
        _info_config(cls, spec.kind)


def _info_entry(data: dict[str, Any]) -> None:
    for key in ("model", "task", "dataset", "tokenizer", "command"):
        if key in data:
            click.echo(f"  {key}: {data[key]}")
    if "reference" in data:
        click.echo(f"  reference: {json.dumps(data['reference'])}")
    if data.get("config"):
        click.echo(f"  config: {json.dumps(data['config'], sort_keys=True)}")
    click.echo("  (the full config with every default: zoo info NAME --resolved)")


def info_task(cls: type) -> None:
    """What a task reads, what it needs of a model, what it reports and how it predicts."""
    metrics = ", ".join(f"{m} ({d})" for m, d in getattr(cls, "metrics", {}).items())
    click.echo(f"  tokenizer roles: {', '.join(cls.tokenizer_roles)}")
    click.echo(f"  metrics: {metrics}  (the first picks the best epoch unless train.early_stopping says)")
    if cls.example_fields:
        click.echo("  examples: dicts with the fields")
        click.echo("\n".join(f"    {field}: {meaning}" for field, meaning in cls.example_fields.items()))
    click.echo("\n".join(contract_lines(cls.model_contract)))
    if getattr(cls, "supports_predict", False) or cls.predict_input:
        click.echo("  predict (zoo predict, zoo serve, zoo.load(...).predict):")
        click.echo(f"    input: {cls.predict_input or '(not documented)'}")
        click.echo(f"    record: {cls.predict_record or '(not documented)'}")
        for option, meaning in cls.predict_options.items():
            click.echo(f"    option {option}: {meaning}")


def contract_lines(contract: Any) -> list[str]:
    """A :class:`zoo.ModelContract` as ``zoo info`` prints it."""
    if contract is None:
        return ["  model contract: not declared (the task's docstring says what it expects of a model)"]
    out = ["  model contract (what a model for this task implements):",
           f"    __init__(config, {', '.join(f'{k}=' for k in contract.sizes)}) with the sizes:"]
    out += [f"      {size}: {meaning}" for size, meaning in contract.sizes.items()]
    out += [f"    {contract.forward}", f"      -> {contract.returns}"]
    for title, table in (("methods the task calls", contract.methods), ("optional", contract.optional)):
        if table:
            out.append(f"    {title}:")
            out += [f"      {call}: {meaning}" for call, meaning in table.items()]
    return out


def _info_config(cls: type, kind: str) -> None:
    import dataclasses

    cfg = getattr(cls, "Config", None)
    if cfg is not None and dataclasses.is_dataclass(cfg) and dataclasses.fields(cfg):
        section = "tokenizer.ROLE" if kind == "tokenizer" else kind
        click.echo(f"  config: the keys of [{section}] (--set {section}.KEY=VALUE)")
        click.echo("\n".join(describe_fields(cfg, section, indent="    ")))


@click.command()
@click.argument("name")
@click.option("--resolved", is_flag=True,
              help="For an entry: its full config as TOML, every default included (what a run's config.toml holds).")
def info(name: str, resolved: bool) -> None:
    """Describe NAME: an entry, a model, tokenizer, dataset or task (a task's model contract, a component's
    config keys with defaults, ranges and meanings), 'train' or 'optim' (the trainer's keys), a model FILE
    (read without loading its tensors) or URL, a packaged model, a Hugging Face folder or an ONNX file."""
    if resolved:
        info_resolved(name)
        return
    from zoo.interop import describe

    foreign = describe(name)
    if foreign is not None:
        from zoo.runtime.untrusted import printable

        click.echo("\n".join(printable(line) for line in foreign))  # the lines quote the folder's files
        return
    from zoo.inference.load import find_artifact

    path = find_artifact(name) if "://" in name else Path(name)  # a URL: its cached, verified copy
    if path.is_dir() and (path / ARTIFACT).is_file():
        path = path / ARTIFACT
    if path.is_file() or name.endswith(".safetensors"):
        info_file(path)
    elif not _specs_named(name) and name not in TRAINER and (packaged := _packaged(name)) is not None:
        info_file(packaged)  # a model installed with its wheel (zoo package)
    else:
        info_name(name)


def _packaged(name: str) -> Path | None:
    from zoo.store.remote import packaged

    return packaged(name)
