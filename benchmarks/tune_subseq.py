"""``zoo tune subseq-gru``: 20 trials with a Hyperband pruner on a reduced per-trial budget.

Targets (issue "zoo tune"): the trials finish on this CPU, the pruner stops at
least a third of them early, and the best trial is at least as good as the
entry's default configuration trained with the same budget in the same run.

Rows:
- ``default config``: the entry exactly as shipped, with the reduced budget below.
- ``best trial``: the study's best complete trial (by val exact match).

The study uses the entry's default search space (registry.toml
``[entries.subseq-gru.tune]``; this file's copy of it when the registry has none)
with ``baseline = false``: the entry's own configuration is *not* enqueued as
trial 0, so the best trial is what TPE + Hyperband found, not the default itself.

Per-trial budget (every trial and the default run): 8 epochs x 25 steps x 128
examples (200 optimizer steps, a quarter of the entry's 800), 25,600 training
examples (one pass), validation on the dataset's 2,000 examples after every epoch,
test on 2,000; one torch thread.

    .venv/bin/python benchmarks/tune_subseq.py [--trials 20] [--pruner hyperband] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import zoo
from _common import table, write

TARGET_PRUNED = 1 / 3
BUDGET = {
    "dataset": {"train_size": 25_600, "test_size": 2_000},
    "train": {"epochs": 8, "steps_per_epoch": 25, "threads": 1, "progress": False},
}
# the default space proposed for registry.toml [entries.subseq-gru.tune], used when the registry has none
SPACE = """
[tune]
metric = "val_exact_match"
pruner = "hyperband"

[space."optim.lr"]
type = "float"
low = 1e-3
high = 3e-2
log = true

[space."optim.warmup_steps"]
type = "int"
low = 0
high = 100
step = 10

[space."model.hidden"]
type = "int"
low = 64
high = 256
step = 32

[space."model.emb_dim"]
type = "int"
low = 32
high = 128
step = 32

[space."model.attention"]
type = "categorical"
choices = ["dot", "general", "none"]
"""


def space_file(folder: Path, seed: int) -> Path:
    """The entry's space (registry or the copy above) with baseline = false and the benchmark's seed."""
    from zoo_tune.space import entry_table

    _, table_ = entry_table("subseq-gru")
    if table_.get("space"):
        import tomli_w

        settings = {k: v for k, v in table_.items() if k != "space"}
        text = tomli_w.dumps({"tune": {**settings, "baseline": False, "seed": seed}, "space": table_["space"]})
        source = "registry.toml"
    else:
        text = SPACE.replace("[tune]\n", f"[tune]\nbaseline = false\nseed = {seed}\n")
        source = "benchmarks/tune_subseq.py (registry has no [entries.subseq-gru.tune])"
    path = folder / "space.toml"
    path.write_text(text, encoding="utf-8")
    print(f"search space from {source}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--pruner", choices=["hyperband", "median", "none"], default="hyperband")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed")
    ap.add_argument("--keep", type=Path, help="write the study here instead of a temporary folder")
    args = ap.parse_args()
    from zoo_tune import tune

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        default = zoo.train("subseq-gru", BUDGET, out=root / "default", force=True)
        default_s = time.perf_counter() - t0
        print(f"default config: val exact match {default.metrics['val']['exact_match']:.4f}, "
              f"test {default.metrics['test']['exact_match']:.4f} in {default_s:.0f} s", flush=True)

        def on_trial(row) -> None:
            value = "-" if row.value is None else f"{row.value:.4f}"
            print(f"trial {row.number}: {row.state} after {row.epochs} epochs, {value}, "
                  f"{row.seconds or 0:.0f} s  {row.params}", flush=True)

        result = tune("subseq-gru", args.trials, space=space_file(root, args.seed), overrides=BUDGET,
                      out=root / "study", pruner=args.pruner, on_trial=on_trial)
        print()
        print(result.table())

    rows = result.rows
    finished = [r for r in rows if r.state in ("complete", "pruned")]
    pruned = [r for r in rows if r.state == "pruned"]
    epochs_max = BUDGET["train"]["epochs"]
    minutes = result.seconds / 60
    best = result.best
    d_val, d_test = default.metrics["val"]["exact_match"], default.metrics["test"]["exact_match"]
    summary = [
        {"config": "default config (same budget)", "val_exact_match": d_val, "test_exact_match": d_test,
         "epochs": default.metrics["train"]["epochs"], "wall_s": default_s},
        {"config": f"best trial ({best.number})" if best else "best trial (none)",
         "val_exact_match": best.value if best else None,
         "test_exact_match": best.test.get("exact_match") if best else None,
         "epochs": best.epochs if best else None, "wall_s": best.seconds if best else None,
         "params": best.params if best else None},
    ]
    study_row = {
        "trials": len(finished), "failed": sum(r.state == "fail" for r in rows), "pruned": len(pruned),
        "fraction_pruned": len(pruned) / max(1, len(finished)), "study_s": result.seconds,
        "trials_per_min": len(finished) / minutes if minutes else 0.0,
        "epochs_run": sum(r.epochs for r in finished), "epochs_full_budget": epochs_max * len(finished),
    }
    study_row["epoch_fraction"] = study_row["epochs_run"] / max(1, study_row["epochs_full_budget"])
    print()
    print(table(summary, ["config", "val_exact_match", "test_exact_match", "epochs", "wall_s"]))
    print()
    print(table([study_row], list(study_row)))
    checks = {
        f"{args.trials} trials finish": len(finished) >= args.trials,
        "pruner stops >= 1/3 early": study_row["fraction_pruned"] >= TARGET_PRUNED,
        "best val >= default val": best is not None and best.value >= d_val,
    }
    print()
    for name, ok in checks.items():
        print(f"target: {name}: {'PASS' if ok else 'FAIL'}")
    path = write("tune_subseq", {
        "budget": BUDGET, "pruner": args.pruner, "seed": args.seed, "rows": summary, "study": study_row,
        "trials": [{"number": r.number, "state": r.state, "value": r.value, "epochs": r.epochs, "seconds": r.seconds,
                    "params": r.params, "test": r.test} for r in rows],
        "checks": checks, "pass": all(checks.values()),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
