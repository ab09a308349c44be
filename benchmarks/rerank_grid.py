"""seq2py's reranker read at more weights than the anchors benchmark tried, on runs it already trained.

    ZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/rerank_grid.py RUN:REVERSE [RUN:REVERSE ...]
        [--weights 0 0.1 0.25 0.5 1 2 4]

Each RUN is a ``seq2py`` run folder and REVERSE the ``seq2py-reverse`` run trained with the same seed (the
folders ``benchmarks/anchors.py seq2py`` trains). Weight 0 is the beam alone. For each pair the beam is
decoded once per split and read at every weight (``anchors.rerank_grid``); then two choices, both on
validation BLEU only:

- ``per_run``: the weight each run's own validation prefers (ties: the smaller weight);
- ``shared``: one weight for every run, the one with the best mean validation BLEU: what a recipe
  would ship as its default ``task.rerank_weight``.

Test BLEU is reported for each choice. Results go to ``benchmarks/results/rerank_grid.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, table
from anchors import rerank_grid


def choose(grids: list[dict[float, dict[str, float]]], weights: list[float]) -> dict[str, Any]:
    """The per-run and the shared choice of weight, with their test BLEU (see the module's docstring)."""
    per_run = [max(weights, key=lambda w: (g[w]["val_bleu"], -w)) for g in grids]
    shared = max(weights, key=lambda w: (statistics.fmean(g[w]["val_bleu"] for g in grids), -w))
    return {"per_run": {"weights": per_run, "test_bleu": [g[w]["test_bleu"] for g, w in zip(grids, per_run)]},
            "shared": {"weight": shared, "test_bleu": [g[shared]["test_bleu"] for g in grids]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="RUN:REVERSE run folders")
    ap.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--json", type=Path, default=RESULTS / "rerank_grid.json")
    args = ap.parse_args()
    if not os.environ.get("ZOO_DATA_DIR"):
        raise SystemExit("set ZOO_DATA_DIR to the folder holding the datasets (e.g. ../shared/data)")
    grids, rows = [], []
    for pair in args.pairs:
        run, sep, reverse = pair.partition(":")
        if not sep:
            raise SystemExit(f"{pair}: give RUN:REVERSE")
        grid = rerank_grid(Path(run), Path(reverse), args.weights)
        grids.append(grid)
        for w in args.weights:
            rows.append({"run": Path(run).name, "weight": w, **grid[w]})
    print(table(rows, ["run", "weight", "val_bleu", "test_bleu"]))
    chosen = choose(grids, args.weights)
    means = {kind: statistics.fmean(c["test_bleu"]) for kind, c in chosen.items()}
    print(f"per run: weights {chosen['per_run']['weights']}, test BLEU mean {means['per_run']:.4f}")
    print(f"shared: weight {chosen['shared']['weight']}, test BLEU mean {means['shared']:.4f}")
    result = {"weights": args.weights, "runs": [p.partition(":")[0] for p in args.pairs], "rows": rows,
              "chosen": chosen, "test_bleu_mean": means, "machine": machine(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
