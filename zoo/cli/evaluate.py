"""``zoo eval MODEL``: a trained model on a split of its dataset, or on other files of the same kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from zoo import api
from zoo.cli.common import fmt_value, overrides_from


@click.command("eval")
@click.argument("file", type=click.Path())
@click.option("--split", help="Split to evaluate [default: test, or val when the dataset has no test split].")
@click.option("--device", default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: the run's train.eval_batch_size]")
@click.option("--set", "sets", multiple=True, metavar="dataset.KEY=VALUE",
              help="Other data (dataset.test_file=other.csv) or another readout (task.decode=bio).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for outputs.SPLIT.jsonl and metrics.SPLIT.json, written when the task has per-example "
                   "outputs (e.g. generated code) [default: the model's folder].")
@click.option("--force", is_flag=True, help="Replace outputs.SPLIT.jsonl / metrics.SPLIT.json already in --out.")
def eval_cmd(file: str, split: str | None, device: str, data_dir: str | None, batch_size: int | None,
             sets: tuple[str, ...], as_json: bool, out: str | None, force: bool) -> None:
    """Evaluate a model FILE (or run folder) on a split of its dataset (or, with --set dataset.KEY=VALUE,
    on other files of the same kind)."""
    overrides = overrides_from(sets, None)
    if set(overrides) - {"dataset", "task"}:
        raise click.UsageError("zoo eval --set takes dataset.KEY=VALUE or task.KEY=VALUE only (weights are fixed)")
    dataset = overrides.get("dataset")
    split = split or api.default_split(file, dataset=dataset, data_dir=data_dir)
    if out:  # a folder of the user's: its files are replaced only with --force, and checked before any work
        _check_outputs(Path(out), split, force)
    records: list[dict[str, Any]] = []
    metrics = api.evaluate(file, split, device=device, data_dir=data_dir, batch_size=batch_size, outputs=records,
                           dataset=dataset, task=overrides.get("task"))
    if records:
        folder = Path(out) if out else api.artifact_path(file).parent
        folder.mkdir(parents=True, exist_ok=True)
        api.write_outputs(folder / f"outputs.{split}.jsonl", records)
        api.write_outputs(folder / f"metrics.{split}.json", [metrics])
        click.echo(f"wrote {folder / f'outputs.{split}.jsonl'} ({len(records)} examples) and metrics.{split}.json",
                   err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        for k, v in metrics.items():
            click.echo(f"{split} {k}: {fmt_value(v)}")
        if out:
            click.echo(f"wrote {out}")


def _check_outputs(folder: Path, split: str, force: bool) -> None:
    from zoo.store.targets import check_output_file

    for name in (f"outputs.{split}.jsonl", f"metrics.{split}.json"):
        check_output_file(folder / name, force, f"--out {folder}: {name}")
