"""subseq-gru against the reference configuration, side by side in one run.

Target (issue 2): >= 99.9% whole-sequence exact match on 10,000 freshly generated
examples the model never saw, in under 80 s of training on a 2-core CPU. The
reference system needs 154 s to reach 98.6%.

Rows:
- ``zoo subseq-gru``: the entry exactly as shipped in registry.toml.
- ``reference config``: the reference system's settings (embedding 128, hidden 256,
  3 layers, dropout 0.5, no attention, teacher forcing 0.5, Adam 1e-3, batch 64,
  clipping 1.0) trained by the same Trainer for the same 80 s budget.

Both are evaluated on the same 10,000 test examples (dataset seed 0, split
"test"; inputs that occur in the training split are excluded by the dataset).

    .venv/bin/python benchmarks/subseq_gru.py [--budget 80] [--seeds 0 1 2] [--skip-reference]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import zoo
from _common import table, write

TARGET_EM = 0.999
BUDGET_S = 80.0
REFERENCE = {
    "model": {"emb_dim": 128, "hidden": 256, "layers": 3, "dropout": 0.5, "init_range": 0.08, "attention": "none",
              "bidirectional_encoder": False},
    "task": {"teacher_forcing": 0.5},
    "train": {"batch_size": 64, "clip_norm": 1.0, "epochs": 1000, "early_stopping": "val_exact_match"},
    "optim": {"name": "adam", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0},
}


def run(name: str, overrides: dict, out: Path) -> dict:
    t0 = time.perf_counter()
    result = zoo.train("subseq-gru", zoo.config.merge(overrides, {"train": {"progress": False}}), out=out)
    wall = time.perf_counter() - t0
    test, tr = result.metrics["test"], result.metrics["train"]
    return {"config": name, "train_s": tr["train_time"], "wall_s": wall, "steps": tr["steps"],
            "test_exact_match": test["exact_match"], "test_token_accuracy": test["token_accuracy"],
            "test_loss": test["loss"], "stopped": tr["stopped"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="training seconds allowed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of the zoo entry")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows.append(run(f"zoo subseq-gru (seed {seed})", {"train": {"seed": seed}}, Path(tmp) / f"zoo{seed}"))
            print(table(rows[-1:], list(rows[-1])), flush=True)
        if not args.skip_reference:
            ref = zoo.config.merge(REFERENCE, {"train": {"max_time": args.budget}})
            rows.append(run(f"reference config, {args.budget:.0f} s", ref, Path(tmp) / "ref"))
    ref_row = next((r for r in rows if r["config"].startswith("reference")), None)
    for r in rows:
        r["train_s_vs_budget"] = r["train_s"] / args.budget
        r["train_s_vs_ref_154s"] = r["train_s"] / 154.0
        if ref_row:
            r["errors_vs_reference"] = (1 - r["test_exact_match"]) / max(1e-9, 1 - ref_row["test_exact_match"])
    cols = ["config", "train_s", "wall_s", "steps", "test_exact_match", "test_token_accuracy", "test_loss",
            "train_s_vs_budget", "train_s_vs_ref_154s", "errors_vs_reference"]
    print()
    print(table(rows, cols))
    zoo_rows = [r for r in rows if r["config"].startswith("zoo")]
    ok = all(r["test_exact_match"] >= TARGET_EM and r["train_s"] < args.budget for r in zoo_rows)
    print(f"\ntarget: exact match >= {TARGET_EM:.1%} on 10,000 unseen examples in < {args.budget:.0f} s of "
          f"training: {'PASS' if ok else 'FAIL'}")
    path = write("subseq_gru", {"rows": rows, "target_exact_match": TARGET_EM, "budget_s": args.budget,
                                "pass": ok, "reference_system": {"exact_match": 0.986, "train_s": 154.0}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
