"""The prepared-data cache in a study (issue 28): ``zoo tune text-rnn`` with the cache against without it.

Two studies of ``--trials`` trials (default 10), each a ``zoo tune text-rnn`` process of its own on
a fresh cache folder (``ZOO_CACHE_DIR``), with the same search space (written here: learning rate,
hidden size, dropout), the same sampler seed, no pruning and the same fixed settings; the second
adds ``train.cache=false``. With the cache, the first trial prepares the splits (reads the file, fits
the word vocabulary, encodes) and every later trial reads them back; without it every trial prepares
afresh. Reported: each study's wall time (start-up included) and its trials' seconds (from
``trials.csv``), and whether both found the same metric values (they must: the cache changes no number).

The data: IMDB's 25,000 training reviews as a user's file (``ZOO_DATA_DIR/imdb/train.jsonl.gz``,
``text`` and ``label``; 10% held out for validation), or ``--file`` (CSV or JSONL, ``--text-column``,
``--label-column``); ``--limit N`` keeps N rows of each split. ``--tiny``: the entry's own example
file and tiny model, a smoke run. Prints a table; writes ``results/tune_cache.json`` (``--tiny`` or
``--limit``: ``results/tune_cache_limited.json``).

    ZOO_DATA_DIR=/path/to/data python benchmarks/tune_cache.py       # IMDB, 10 trials each: a quiet machine
    python benchmarks/tune_cache.py --tiny --trials 2                 # seconds
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, run_child, table, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE = """[tune]
pruner = "none"  # every trial runs its epochs: the two studies do the same work
seed = 0  # the same trials in both studies

[space."optim.lr"]
type = "float"
low = 0.0005
high = 0.005
log = true

[space."model.hidden"]
type = "categorical"
choices = {hidden}

[space."model.dropout"]
type = "float"
low = 0.1
high = 0.5
"""
FIXED = {"train.epochs": "1", "train.progress": "false"}  # one pass over the training reviews a trial
TINY = {"dataset.train_file": str(ROOT / "examples/text_classification/reviews.csv"), "dataset.val_fraction": "0.25",
        "model.emb_dim": "8", "tokenizer.text.min_freq": "1", "train.epochs": "1", "train.batch_size": "4",
        "train.progress": "false"}


def settings(args: argparse.Namespace) -> dict[str, str]:
    """The fixed --set overrides of every trial."""
    if args.tiny:
        return dict(TINY)
    file = args.file
    if file is None:
        data = os.environ.get("ZOO_DATA_DIR")
        if not data:
            raise SystemExit("give --file, or set ZOO_DATA_DIR to the folder holding imdb/train.jsonl.gz")
        file = Path(data) / "imdb" / "train.jsonl.gz"
    out = {**FIXED, "dataset.train_file": str(file), "dataset.text_column": args.text_column,
           "dataset.label_column": args.label_column}
    if args.limit is not None:
        out["dataset.limit"] = str(args.limit)
    return out


def study(label: str, trials: int, space: Path, sets: dict[str, str], work: Path) -> dict:
    """One ``zoo tune`` process on a fresh cache: its wall time and its trials."""
    out = work / f"study-{label}"
    env = {**os.environ, "ZOO_CACHE_DIR": str(work / f"cache-{label}")}
    cmd = [sys.executable, "-m", "zoo", "tune", "text-rnn", "--trials", str(trials), "--space", str(space),
           "--out", str(out), *(arg for k, v in sets.items() for arg in ("--set", f"{k}={v}"))]
    load = load_average()
    child = run_child(cmd, env)
    with open(out / "trials.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    seconds = [float(r["seconds"]) for r in rows if r["seconds"]]
    metric = next(k for k in rows[0] if k not in ("trial", "state")) if rows else None
    return {"cache": label, "trials": len(rows), "wall_s": round(child["wall_s"], 1),
            "trials_s": round(sum(seconds), 1), "first_trial_s": round(seconds[0], 2) if seconds else None,
            "later_trials_mean_s": round(sum(seconds[1:]) / len(seconds[1:]), 2) if len(seconds) > 1 else None,
            "trial_seconds": [round(s, 2) for s in seconds], "metric": metric,
            "values": [r[metric] for r in rows] if metric else [], "peak_rss_mb": round(child["peak_rss_mb"]),
            "load_before": load}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--file", type=Path, help="CSV or JSONL with a header / keys [ZOO_DATA_DIR/imdb/train.jsonl.gz]")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--limit", type=int, help="keep N rows of each split (dataset.limit)")
    p.add_argument("--tiny", action="store_true", help="the entry's example file and a tiny model: a smoke run")
    p.add_argument("--work", type=Path, help="folder for caches and studies [default: a temporary one]")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON [benchmarks/results]")
    args = p.parse_args(argv)
    sets = settings(args)
    with tempfile.TemporaryDirectory(prefix="zoo-tune-cache-", dir=args.work) as work:
        space = Path(work) / "space.toml"
        space.write_text(SPACE.format(hidden="[4, 8]" if args.tiny else "[32, 64]"), encoding="utf-8")
        rows = [study("on", args.trials, space, sets, Path(work)),
                study("off", args.trials, space, {**sets, "train.cache": "false"}, Path(work))]
    on, off = rows
    summary = {"wall_saved_s": round(off["wall_s"] - on["wall_s"], 1),
               "wall_ratio_off_on": round(off["wall_s"] / max(on["wall_s"], 1e-9), 2),
               "same_values": on["values"] == off["values"]}
    print(table(rows, ["cache", "trials", "wall_s", "trials_s", "first_trial_s", "later_trials_mean_s", "peak_rss_mb",
                       "load_before"]))
    print(f"with the cache: {summary['wall_saved_s']} s less ({summary['wall_ratio_off_on']}x); the same "
          f"{on['metric']} values in both studies: {summary['same_values']}")
    name = "tune_cache_limited" if args.tiny or args.limit is not None else "tune_cache"
    payload = {"rows": rows, "summary": summary, "settings": sets, "space": SPACE}
    print(f"wrote {write(name, payload, folder=args.results)}")


if __name__ == "__main__":
    main()
