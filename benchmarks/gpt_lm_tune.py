"""Reference system 2's tuning study, scaled to this machine: ``zoo tune gpt-lm``, then tuned vs shipped.

The reference tunes learning rate, weight decay, layers, heads, activation (ReLU or GELU)
and feed-forward width with Optuna and a Hyperband pruner, 25 trials of up to 30 epochs
with early stopping, and validates on held-out text. This benchmark runs that study on
the entry's default search space (its ``tune`` table; this file's copy when the entry has
none), the same parameters plus dropout, then trains in the same invocation

- ``shipped``: the entry exactly as shipped, and
- ``tuned``: the entry with the study's best parameters,

for the same budget (the entry's own epochs and steps, at most ``--final-time`` seconds of
training each), and reports val loss (nats per BPE token) and bits per byte of both, the
study's ``history.png`` and Optuna's parameter importances.

Per-trial budget (the reference's 30 epochs, scaled): 30 epochs of ``STEPS_PER_EPOCH``
steps, at most ``--trial-time`` seconds of training (default 60: 25 trials fit in about
30 minutes with Hyperband stopping most of them early), early stopping after 3
evaluations without improvement, validation on 256 evenly spaced blocks. Hyperband's
rungs are epochs. ``baseline = false``: the shipped configuration is not trial 0, so the
best trial is what TPE and Hyperband found.

    .venv/bin/python benchmarks/gpt_lm_tune.py [--trials 25] [--trial-time 60] [--final-time 300] [--keep DIR]
    .venv/bin/python benchmarks/gpt_lm_tune.py --quick    # 3 trials of a few seconds: does it run?

Needs tiny-shakespeare under ZOO_DATA_DIR (or --data-dir). Writes
benchmarks/results/gpt_lm_tune.json and gpt_lm_tune_history.png (not with --quick).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import zoo
from _common import RESULTS, table, write

STEPS_PER_EPOCH = 25
# the default space proposed for the entry's [tune] table, used when the entry declares none
SPACE = """
[tune]
metric = "val_loss"
pruner = "hyperband"

[space."optim.lr"]
type = "float"
low = 1e-4
high = 1e-2
log = true

[space."optim.weight_decay"]
type = "float"
low = 0.0
high = 0.2

[space."model.n_layer"]
type = "int"
low = 2
high = 6

[space."model.n_head"]  # every choice divides n_embd = 128
type = "categorical"
choices = [2, 4, 8]

[space."model.activation"]
type = "categorical"
choices = ["relu", "gelu"]

[space."model.mlp_ratio"]  # feed-forward width = mlp_ratio * n_embd
type = "int"
low = 2
high = 6

[space."model.dropout"]
type = "float"
low = 0.0
high = 0.3
"""


def budgets(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-trial overrides, the overrides both final runs share)."""
    if args.quick:
        trial = {"task": {"eval_blocks": 32}, "train": {"epochs": 3, "steps_per_epoch": 5, "max_time": 3.0,
                                                       "patience": 3, "progress": False}}
        final = {"task": {"eval_blocks": 64}, "train": {"epochs": 2, "steps_per_epoch": 5, "max_time": 5.0,
                                                       "progress": False}}
        return trial, final
    trial = {"task": {"eval_blocks": 256},
             "train": {"epochs": 30, "steps_per_epoch": STEPS_PER_EPOCH, "max_time": args.trial_time, "patience": 3,
                       "max_eval_time": 10.0, "progress": False}}
    final = {"train": {"max_time": args.final_time, "progress": False}}
    return trial, final


def space_file(folder: Path, entry: str, seed: int) -> tuple[Path, str]:
    """The entry's space (its tune table, or the copy above) with baseline = false and the benchmark's seed."""
    import tomli_w
    from zoo_tune.space import entry_table

    _, table_ = entry_table(entry)
    if table_.get("space"):
        settings = {k: v for k, v in table_.items() if k != "space"}
        text = tomli_w.dumps({"tune": {**settings, "baseline": False, "seed": seed}, "space": table_["space"]})
        source = f"the entry's tune table ({entry})"
    else:
        text = SPACE.replace("[tune]\n", f"[tune]\nbaseline = false\nseed = {seed}\n")
        source = f"benchmarks/gpt_lm_tune.py ({entry} declares no tune table)"
    path = folder / "space.toml"
    path.write_text(text, encoding="utf-8")
    return path, source


def importances(result: Any) -> dict[str, float] | str:
    """Optuna's parameter importances (fANOVA) over the complete trials, or why there are none."""
    import optuna

    study = optuna.load_study(study_name=result.study, storage=result.storage)
    try:
        return {k: round(v, 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception as exc:  # too few complete trials, or a parameter that never varied
        return f"n/a ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"


def final_run(entry: str, name: str, overrides: dict[str, Any], out: Path, data_dir: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = zoo.train(entry, overrides, out=out / name, force=True, data_dir=data_dir)
    val, train = run.metrics["val"], run.metrics["train"]
    row = {"config": name, "val_loss": val["loss"], "bits_per_byte": val["bits_per_byte"],
           "epochs": train["epochs"], "steps": train["steps"], "train_s": train["train_time"],
           "wall_s": time.perf_counter() - t0, "stopped": train["stopped"]}
    print(f"{name}: val loss {row['val_loss']:.4f}, {row['bits_per_byte']:.4f} bits/byte after {row['steps']} steps "
          f"({row['stopped']})", flush=True)
    return row


def run_study(args: argparse.Namespace, root: Path, trial_budget: dict[str, Any]) -> Any:
    from zoo_tune import tune

    space, source = space_file(root, args.entry, args.seed)
    print(f"search space from {source}", flush=True)

    def on_trial(row: Any) -> None:
        value = "-" if row.value is None else f"{row.value:.4f}"
        print(f"trial {row.number}: {row.state} after {row.epochs} epochs, {value}, {row.seconds or 0:.0f} s  "
              f"{row.params}", flush=True)

    result = tune(args.entry, args.trials, space=space, overrides=trial_budget, out=root / "study",
                  data_dir=args.data_dir, on_trial=on_trial)
    print()
    print(result.table())
    return result


def report(args: argparse.Namespace, result: Any, rows: list[dict[str, Any]], budgets_: tuple) -> None:
    finished = [r for r in result.rows if r.state in ("complete", "pruned")]
    study_row = {"trials": len(finished), "pruned": sum(r.state == "pruned" for r in result.rows),
                 "failed": sum(r.state == "fail" for r in result.rows), "study_s": result.seconds,
                 "epochs_run": sum(r.epochs for r in finished)}
    found = importances(result)
    print()
    print(table(rows, ["config", "val_loss", "bits_per_byte", "epochs", "steps", "train_s", "wall_s"]))
    print()
    print(table([study_row], list(study_row)))
    print(f"\nparameter importances: {found}")
    shipped, tuned = rows
    checks = {"tuned val loss <= shipped val loss (same budget)": tuned["val_loss"] <= shipped["val_loss"]}
    for name, ok in checks.items():
        print(f"target: {name}: {'PASS' if ok else 'FAIL'}")
    if args.quick:
        print("--quick: nothing written to benchmarks/results")
        return
    plot = RESULTS / "gpt_lm_tune_history.png"
    if "plot" in result.files:
        shutil.copyfile(result.files["plot"], plot)
    path = write("gpt_lm_tune", {
        "entry": args.entry, "trial_budget": budgets_[0], "final_budget": budgets_[1], "seed": args.seed,
        "best_params": result.best.params if result.best else None, "rows": rows, "study": study_row,
        "importances": found, "history_png": plot.name,
        "trials": [{"number": r.number, "state": r.state, "value": r.value, "epochs": r.epochs,
                    "seconds": r.seconds, "params": r.params} for r in result.rows],
        "checks": checks, "pass": all(checks.values()),
    })
    print(f"wrote {path} and {plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entry", default="gpt-lm")
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--trial-time", type=float, default=60.0, help="seconds of training per trial at most")
    ap.add_argument("--final-time", type=float, default=300.0, help="seconds of training of each final run at most")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed")
    ap.add_argument("--quick", action="store_true", help="3 trials and final runs of a few seconds each")
    ap.add_argument("--data-dir", help="folder holding tinyshakespeare/ [default: $ZOO_DATA_DIR]")
    ap.add_argument("--keep", type=Path, help="write the study and runs here instead of a temporary folder")
    args = ap.parse_args()
    if args.quick:
        args.trials = min(args.trials, 3)
    trial_budget, final_budget = budgets(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        result = run_study(args, root, trial_budget)
        if result.best is None:
            raise SystemExit("no trial completed: nothing to compare")
        rows = [final_run(args.entry, "shipped", final_budget, root, args.data_dir),
                final_run(args.entry, "tuned", zoo.merge_config(final_budget, _nest(result.best.params)), root,
                          args.data_dir)]
        report(args, result, rows, (trial_budget, final_budget))


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    from zoo_tune.space import nest

    return nest(flat)


if __name__ == "__main__":
    main()
