"""``zoo tune``: hyperparameter search over any entry with Optuna and a Hyperband (or median) pruner.

Light at import: click only. The search-space code loads when the command runs,
Optuna only when a study is opened (``pip install 'zoo[tune]'``).
"""

from __future__ import annotations

from typing import Any

import click

from zoo import hookimpl

__version__ = "0.1.0"


def tune(*args: Any, **kwargs: Any):
    """``zoo_tune.study.tune``: run or continue a study; see there."""
    from .study import tune as _tune

    return _tune(*args, **kwargs)


@click.command("tune")
@click.argument("entry")
@click.option("--trials", type=click.IntRange(min=1), required=True,
              help="Stop when the study holds N complete or pruned trials (counting earlier runs and other "
                   "processes on the same storage; failed trials do not count).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Start no new trial after S seconds.")
@click.option("--storage", metavar="URL", help="Optuna storage [default: sqlite:///OUT/study.db].")
@click.option("--study", "study_name", metavar="NAME", help="Study name [default: the entry's name].")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="TOML search space replacing the entry's default "
                   "([space.\"optim.lr\"] tables, optional [tune]).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Fixed override for every trial, e.g. train.epochs=6.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file of fixed overrides (applied before --set).")
@click.option("--pruner", type=click.Choice(["hyperband", "median", "none"]),
              help="Override the space's pruner [default: hyperband].")
@click.option("--device", help="auto, cpu, cuda or cuda:N (sets train.device).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for trial runs, best.toml, trials.csv, history.png [default: runs/tune-ENTRY].")
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
@click.option("--logger", "loggers", multiple=True, metavar="NAME",
              help="Report to this experiment tracker (repeatable; sets train.loggers): a parent run for the study, "
                   "a child run per trial, pruned trials marked pruned.")
def tune_cmd(entry: str, trials: int, timeout: float | None, storage: str | None, study_name: str | None,
             space_file: str | None, sets: tuple[str, ...], config_file: str | None, pruner: str | None,
             device: str | None, out: str | None, data_dir: str | None, loggers: tuple[str, ...] = ()) -> None:
    """Search hyperparameters of ENTRY: each trial is a zoo training run, pruned early when it lags.

    Run the same command again to resume an interrupted study; run it in several
    processes on one --storage to share the trials. At the end: a table of trials,
    OUT/best.toml (for 'zoo train ENTRY --config OUT/best.toml'), OUT/trials.csv and
    OUT/history.png.
    """
    from .study import TuneInterrupted, require_optuna

    require_optuna()  # before anything else: the one-line install hint
    overrides = _overrides(sets, config_file, device)
    if loggers:
        overrides.setdefault("train", {})["loggers"] = list(dict.fromkeys(loggers))
    try:
        result = tune(entry, trials, timeout=timeout, storage=storage, study=study_name, space=space_file,
                      overrides=overrides, out=out, data_dir=data_dir, pruner=pruner, on_trial=_echo_trial)
    except TuneInterrupted as exc:
        where = f"trial {exc.trial} marked {exc.state or 'failed'}; " if exc.trial is not None else ""
        click.echo(f"interrupted: {where}run the same command to resume the study", err=True)
        click.get_current_context().exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted before a trial started; run the same command to resume the study", err=True)
        click.get_current_context().exit(130)
    _echo_result(result)


def _overrides(sets: tuple[str, ...], config_file: str | None, device: str | None) -> dict[str, Any]:
    import zoo

    overrides = zoo.read_overrides(sets, config_file)
    if device:
        overrides.setdefault("train", {})["device"] = device
    return overrides


def _echo_trial(row: Any) -> None:
    value = "" if row.value is None else f" {row.value:.4f}"
    params = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.params.items())
    after = f"{row.epochs} epoch{'s' if row.epochs != 1 else ''}"
    what = {"pruned": f"pruned after {after}", "fail": "failed"}.get(row.state, row.state)
    why = f" ({row.error})" if row.error else ""
    click.echo(f"trial {row.number} {what}:{value}{why}  {params}")


def _echo_result(result: Any) -> None:
    if result.rows:
        click.echo()
        click.echo(result.table())
    counts = result.counts()
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    click.echo(f"\nstudy '{result.study}' ({result.storage}): {len(result.rows)} trials ({summary}); "
               f"{result.ran} run now in {result.seconds:.0f} s")
    if result.best is not None:
        click.echo(f"best: trial {result.best.number}, {result.metric} = {result.best.value:.4f}")
        click.echo(f"wrote {result.files['best']}: zoo train {result.entry.split(':', 1)[-1]} "
                   f"--config {result.files['best']}")
    else:
        click.echo("no trial completed yet: no best.toml")
    for key in ("csv", "plot"):
        if key in result.files:
            click.echo(f"wrote {result.files[key]}")


@hookimpl
def zoo_register_commands(cli: click.Group) -> None:
    cli.add_command(tune_cmd)


@hookimpl
def zoo_register_entry_keys(register: Any) -> None:
    """Entries carry their default search space as a ``tune`` table; this plugin is what reads it."""
    register("tune", summary="zoo tune's default search space ([tune.space.\"SECTION.KEY\"] tables) and "
             "settings (trials' budget, pruner)", check=_tune_table)


def _tune_table(value: Any, where: str) -> None:
    """The shape of an entry's ``tune`` table, checked when the entry registers; its parameters are
    checked in full when a study starts (zoo_tune.space)."""
    from zoo import ZooError

    if not isinstance(value, dict):
        raise ZooError(f"{where}: must be a table (settings and [tune.space.\"SECTION.KEY\"] tables), got {value!r}")
    space = value.get("space", {})
    if not isinstance(space, dict) or not all(isinstance(p, dict) for p in space.values()):
        raise ZooError(f"{where}: 'space' must hold one table per parameter, e.g. "
                       f"[tune.space.\"optim.lr\"] type = \"float\", got {space!r}")
