"""``zoo train ENTRY`` and ``zoo train --resume RUN``: one process, or N under torchrun (``--nproc``)."""

from __future__ import annotations

from typing import Any

import click

from zoo import api
from zoo.cli.common import fmt_value, overrides_from
from zoo.cli.tracking import logger_option


@click.command()
@click.argument("entry", required=False)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. model.hidden=256.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of overrides (applied before --set).")
@click.option("--device", help="auto, cpu, cuda or cuda:N (sets train.device).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/ENTRY].")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the interrupted run in this folder.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Train data-parallel in N processes (torchrun; one per CPU core or GPU).")
@click.option("--no-cache", is_flag=True, help="Prepare the data afresh and keep nothing (train.cache=false).")
@logger_option
@click.pass_context
def train(ctx: click.Context, entry: str | None, sets: tuple[str, ...], config_file: str | None, device: str | None,
          out: str | None, resume: str | None, force: bool, data_dir: str | None, nproc: int,
          no_cache: bool) -> None:
    """Train ENTRY, evaluate it on its test split and write the run folder.

    With --nproc N (or under 'torchrun --nproc-per-node N -m zoo train ...') N processes
    train with DistributedDataParallel; train.batch_size stays the global batch.
    """
    from zoo.cli.launch import launch
    from zoo.runtime import distributed

    if resume and (entry or out or force):
        raise click.UsageError("--resume RUN takes no ENTRY, --out or --force: the run folder says what to train")
    if not resume and not entry:
        raise click.UsageError("missing ENTRY (see 'zoo list'), or --resume RUN")
    distributed.require_procs(nproc)
    world = distributed.from_env()
    if nproc > 1 and world.size > 1:
        raise click.UsageError("--nproc inside torchrun: torchrun already started the processes")
    overrides = overrides_from(sets, config_file, device=device or None, cache=False if no_cache else None)
    if nproc > 1:
        run_dir = api.check_train(entry, overrides, out=out, resume=resume, force=force, nproc=nproc)
        verbose = ctx.parent.params.get("verbose", 0) if ctx.parent else 0
        flags = {"--config": config_file, "--device": device, "--out": out, "--resume": resume, "--data-dir": data_dir}
        launch(nproc, _rank_args(verbose, entry, flags, sets, force, no_cache), run_dir, quiet=verbose == 0)
        return

    def on_epoch(rec: dict[str, Any]) -> None:
        shown = {k: v for k, v in rec.items() if k not in ("epoch",)}
        click.echo(f"epoch {rec['epoch']}: " + "  ".join(f"{k}={fmt_value(v)}" for k, v in shown.items()))

    result = api.train(entry, overrides, out=out, resume=resume, force=force, data_dir=data_dir, on_epoch=on_epoch)
    if world.main:  # rank 0 speaks for the run
        _echo_result(result)


def _rank_args(verbose: int, entry: str | None, flags: dict[str, str | None], sets: tuple[str, ...],
               force: bool, no_cache: bool) -> list[str]:
    """The command line each rank runs: this one, less ``--nproc``."""
    args = ["-v"] * verbose + ["train"] + ([entry] if entry else [])
    for flag, value in flags.items():
        if value:
            args += [flag, value]
    args += [arg for item in sets for arg in ("--set", item)]  # --logger NAME is among them (train.loggers)
    return args + [flag for flag, on in (("--force", force), ("--no-cache", no_cache)) if on]


def _echo_result(result: Any) -> None:
    t = result.metrics["train"]
    click.echo(f"trained {t['epochs']} epochs, {t['steps']} steps in {t['train_time']:.1f} s ({t['stopped']})")
    for split in ("val", "test"):
        if split in result.metrics:
            click.echo(f"{split}: " + "  ".join(f"{k}={fmt_value(v)}" for k, v in result.metrics[split].items()))
    click.echo(f"model: {result.artifact}")
