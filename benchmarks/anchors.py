"""Issue 20's rows: an entry as shipped, over seeds, beside its baseline and one ablation row per change.

    ZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/anchors.py ENTRY [--seeds 0 1 2]
        [--no-baseline] [--ablations] [--no-readouts] [--threads N]

ENTRY is one of ROWS (shakespeare-char-gpt has its own script, benchmarks/shakespeare_char_gpt.py,
because its target is a wall-time ratio). Every run is a real ``zoo train ENTRY`` process with
``train.seed`` set, trained on the training split and scored once on the test split. The test
split chooses nothing: early stopping and every setting the entry ships were chosen on its
validation split (``val_by`` says which), and the ``val_*`` column is reported beside ``test_*``.

Rows:
- ``shipped``: the entry as registered, once per seed;
- ``baseline``: the recipe this entry shipped before issue 20 (``BASELINE``), seed 0: the
  same-run comparison;
- ``--ablations``: the shipped recipe with one of this wave's changes undone per row, seed 0:
  what each change buys;
- readouts (a row's ``readouts``, every shipped seed): the same trained weights evaluated with a task
  setting changed (``zoo eval --set task.KEY=VALUE``), for a change that needs no training, such
  as the decoding;
- the reranker (a row's ``reranker``, every shipped seed): a second entry trained with the same seed
  (``reranker (ENTRY)``), then ``reranked``: the shipped weights' beam reranked by it at the weight
  that validation BLEU chooses from ``weights`` (0: the beam alone; each split decoded once, then read at every weight;
  checked by one ``zoo.evaluate`` at the chosen weight). Its training time is both runs', and the
  summary is over these rows. ``--no-readouts`` skips the readouts.

Before every run the benchmark sleeps 2 s and counts how many cores other processes kept busy
(``busy_before``, from /proc/stat); a run with more than ``QUIET_CORES`` marks the result
``loaded``, and its time is not a claim. The 1-minute load average after each run is kept too.
The summary gives the mean, standard deviation and minimum over the shipped seeds and
whether the target holds: mean >= target and every seed's training time <= the budget.
Results go to ``benchmarks/results/anchors.json``, keyed by entry, rewritten after every run
(``complete`` is false until the last), so a run that fails an hour in keeps the rows before it;
entries not run this time keep their earlier rows (with their ``when``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, table, timed_train

QUIET_CORES = 0.25  # other processes may keep at most this much of the CPU busy before a run


def _row(metric: str, target: float, budget_s: float, anchor: str, val_by: str,
         baseline: dict[str, Any], ablations: dict[str, dict[str, Any]],
         readouts: dict[str, dict[str, Any]] | None = None,
         reranker: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metric": metric, "target": target, "budget_s": budget_s, "anchor": anchor, "val_by": val_by,
            "baseline": baseline, "ablations": ablations, "readouts": readouts or {}, "reranker": reranker}


ROWS: dict[str, dict[str, Any]] = {
    "pos-transformer-char": _row(
        "accuracy", 0.979, 600.0,
        "neural taggers on the WSJ at 97.5-97.9% (trained on 4x the data; CoNLL-2000's tags are the Brill tagger's)",
        "epochs and width chosen by validation accuracy on the last 1,000 training sentences (dataset.val_sentences=1000)",
        {"train.epochs": 10},
        {}),  # the baseline row is the one change (10 -> 20 epochs)
    "chunk-transformer": _row(
        "span_f1", 0.935, 600.0,
        "Kudo & Matsumoto 2000 (SVMs), CoNLL-2000 shared task best: 93.48, with the given POS tags",
        "decoding, the POS head and epochs chosen by validation span F1 on the last 1,000 training sentences "
        "(dataset.val_sentences=1000)",
        {"train.epochs": 10, "task.decode": "argmax", "task.aux_labels": [], "dataset.aux_label": None},
        {"no POS head": {"task.aux_labels": [], "dataset.aux_label": None}},
        {"argmax decoding (same weights)": {"decode": "argmax"}}),
    "imdb-rnn": _row(
        "accuracy", 0.920, 600.0,
        "Johnson & Zhang 2016, one-hot bidirectional LSTM with pooling: 91.86% (8.14% error); NBSVM-bigrams 91.2%",
        "the epoch kept and the ensemble (model.members) chosen by validation accuracy on 2,500 held-out training "
        "reviews (dataset.val_size)",
        {"model.members": 1, "model.bag": 0},  # the baseline: one network, the first wave's recipe
        {"no n-gram bag (two networks, shipped 2026-12-02)": {"model.bag": 0}}),
    "seq2py": _row(
        "bleu", 0.31, 1200.0,
        "Yin & Neubig 2019 reranker 30.11 BLEU on CoNaLa test; TranX 24.30",
        "epochs, the length penalty, the weight average (not shipped) and the checkpoint chosen by validation "
        "BLEU on the 200 held-out training pairs",
        # the first wave's recipe: float32, length penalty 1.0
        {"train.amp": "off", "train.max_time": None, "task.length_penalty": 1.0},
        {"30 epochs, frozen 22, weight average 0.999 (tried; lower validation BLEU)":
            {"train.epochs": 30, "train.freeze": {"embeddings": 22}, "train.ema": 0.999}},
        {"length penalty 1.0 (same weights)": {"length_penalty": 1.0}, "beam 10 (same weights)": {"beam": 10}},
        # every shipped seed also trains this code-to-intent entry (same seed) and reranks the beam with it;
        # the weight is chosen per seed on validation BLEU, and the training time counts both runs
        {"entry": "seq2py-reverse", "weights": [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]}),
}


def flags(sets: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in sets.items():
        if value is None:
            text = "none"
        elif isinstance(value, dict):  # a TOML inline table
            text = "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
        else:
            text = value if isinstance(value, str) else json.dumps(value)
        out += ["--set", f"{key}={text}"]
    return out


def train(entry: str, sets: dict[str, Any], seed: int, out: Path, threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "zoo", "train", entry, "--out", str(out), "--force",
           "--set", f"train.seed={seed}", "--set", "train.progress=false", *flags(sets)]
    if threads:
        cmd += ["--set", f"train.threads={threads}"]
    wall, busy, m = timed_train(cmd, out, f"{entry} {sets}")
    row = {"seed": seed, "wall_s": wall, "train_s": m["train"]["train_time"], "epochs": m["train"]["epochs"],
           "best_epoch": m["train"].get("best_epoch"), "busy_before": None if busy is None else round(busy, 2),
           "load_after": round(os.getloadavg()[0], 2)}
    for split in ("val", "test"):
        for key, value in m.get(split, {}).items():
            if isinstance(value, (int, float)) and "/" not in key:
                row[f"{split}_{key}"] = value
    return row


def live_artifact(run: Path) -> Path:
    """A copy of the run's artifact holding the live weights of its last epoch (the checkpoint's), not
    the validated weight average that ``train.ema`` saves: what the run would give without the average."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from zoo.store.checkpoint import load_checkpoint

    artifact = run / "model.safetensors"
    with safe_open(str(artifact), "pt") as f:
        metadata = f.metadata()
    live = load_checkpoint(run / "checkpoint.safetensors")["model"]
    out = run / "live" / "model.safetensors"
    out.parent.mkdir(exist_ok=True)
    save_file({k: live[k].contiguous() for k in load_file(str(artifact))}, str(out), metadata=metadata)
    return out


def readouts(spec: dict[str, Any], row: dict[str, Any], run: Path) -> list[dict[str, Any]]:
    """The shipped run's weights on the val and test splits under each of the row's readouts: task settings
    (``zoo eval --set task.KEY=VALUE``), or ``{"weights": "live"}`` for the last epoch's live weights."""
    import zoo

    out = []
    for label, task in spec["readouts"].items():
        task = dict(task)
        source = live_artifact(run) if task.pop("weights", None) == "live" else run
        found: dict[str, Any] = {}
        for split in ("val", "test"):
            m = zoo.evaluate(source, split, device="cpu", task=task or None)
            found.update({f"{split}_{k}": v for k, v in m.items() if isinstance(v, (int, float)) and "/" not in k})
        out.append({"row": label, "overrides": {f"task.{k}": v for k, v in task.items()} or {"weights": "live"},
                    "seed": row["seed"], "train_s": row["train_s"], "epochs": row["epochs"], **found})
        key = spec["metric"]
        print(f"  {label}: val_{key} {found[f'val_{key}']:.4f}, test_{key} {found[f'test_{key}']:.4f}", flush=True)
    return out


def rerank_grid(run: Path, reverse: Path, weights: list[float]) -> dict[float, dict[str, float]]:
    """BLEU on val and test of the run's beam reranked by ``reverse`` at every weight: each split decoded and
    scored by the reconstruction model once (zoo_seq2py.rerank), then read at each weight."""
    import torch

    import zoo
    from zoo.inference.load import dataset_of
    from zoo.runtime.device import autocast_dtype
    from zoo.build.prepare import encode_split
    from zoo_seq2py import bleu, rerank

    fwd, rev = zoo.load(run), zoo.load(reverse)
    task, model = fwd.task, fwd.model
    dtype = autocast_dtype(fwd.resolved.configs["train"].amp, torch.device("cpu"))
    source = dataset_of(fwd.resolved, None, None)
    out: dict[float, dict[str, float]] = {w: {} for w in weights}
    for split in ("val", "test"):
        encoded = encode_split(fwd.resolved, source, task, split)
        sums: dict[float, dict[str, float]] = {w: {} for w in weights}
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            for batch in task.batches(encoded, 128, shuffle=False, seed=0):
                hyps = task.n_best_ids(model, batch, task.config.beam)  # the beam's own ranking
                for cands, meta in zip(rerank.score(task, hyps, batch["meta"], rev), batch["meta"]):
                    ref = bleu.tokenize_for_bleu(meta["reference"])
                    for w in weights:
                        best = rerank.ranked(cands, w)
                        hyp = bleu.tokenize_for_bleu(task.decode_ids(best[0][1], meta) if best else "")
                        for k, x in bleu.ngram_stats(hyp, ref).items():
                            sums[w][k] = sums[w].get(k, 0.0) + x
        for w in weights:
            out[w][f"{split}_bleu"] = bleu.bleu_from_stats(sums[w])
    return out


def rerank_rows(spec: dict[str, Any], shipped: dict[str, Any], run: Path, threads: int | None) -> list[dict[str, Any]]:
    """The reranker's rows for one shipped seed: its own training run, then the shipped weights reranked at the
    weight validation BLEU chooses (the grid kept in the row), checked once through ``zoo.evaluate``."""
    import zoo

    cfg, seed = spec["reranker"], shipped["seed"]
    reverse = run.parent / f"{run.name}-reverse"
    rev = {"row": f"reranker ({cfg['entry']})", "overrides": {},
           **train(cfg["entry"], {}, seed, reverse, threads)}
    print(table([rev], [c for c in rev if c != "overrides"]), flush=True)
    grid = rerank_grid(run, reverse, cfg["weights"])
    weight = max(cfg["weights"], key=lambda w: (grid[w]["val_bleu"], -w))  # ties: the smaller weight
    check = zoo.evaluate(run, "test", device="cpu", task={"reranker": str(reverse), "rerank_weight": weight})
    row = {"row": "reranked", "overrides": {"task.reranker": cfg["entry"], "task.rerank_weight": weight},
           "seed": seed, "train_s": shipped["train_s"] + rev["train_s"], "epochs": shipped["epochs"],
           "weight": weight, **grid[weight], "test_bleu_zoo_eval": check["bleu"],
           "grid": {str(w): v for w, v in grid.items()}}
    print(f"  reranked (weight {weight}, chosen on val): val_bleu {row['val_bleu']:.4f}, test_bleu "
          f"{row['test_bleu']:.4f} (zoo eval: {check['bleu']:.4f}); beam alone {shipped['test_bleu']:.4f}", flush=True)
    return [rev, row]


def summary(spec: dict[str, Any], shipped: list[dict[str, Any]], loaded: bool) -> dict[str, Any]:
    metric = f"test_{spec['metric']}"
    values = [r[metric] for r in shipped]
    vals = [r[f"val_{spec['metric']}"] for r in shipped if f"val_{spec['metric']}" in r]  # none: trained on all
    out = {"seeds": [r["seed"] for r in shipped], "mean": statistics.fmean(values),
           "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values),
           "val_mean": statistics.fmean(vals) if vals else None,
           "train_s_max": max(r["train_s"] for r in shipped), "loaded": loaded}
    out["met"] = (len(values) >= 3 and out["mean"] >= spec["target"] and out["train_s_max"] <= spec["budget_s"]
                  and not loaded)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("entry", choices=list(ROWS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="train.threads (default: the entry's)")
    ap.add_argument("--no-readouts", action="store_true", help="skip the readout rows (the reranker's still run)")
    args = ap.parse_args()
    if not os.environ.get("ZOO_DATA_DIR"):
        raise SystemExit("set ZOO_DATA_DIR to the folder holding the datasets (e.g. ../shared/data)")
    spec = ROWS[args.entry]
    plan = [("shipped", {}, seed) for seed in args.seeds]
    if not args.no_baseline:
        plan.append(("baseline", spec["baseline"], 0))
    if args.ablations:
        plan += [(label, sets, 0) for label, sets in spec["ablations"].items()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, sets, seed) in enumerate(plan):
            row = {"row": label, "overrides": sets, **train(args.entry, sets, seed, Path(tmp) / str(i), args.threads)}
            rows.append(row)
            print(table([row], [c for c in row if c != "overrides"]), flush=True)
            if label == "shipped" and not args.no_readouts:
                rows += readouts(spec, row, Path(tmp) / str(i))
            if label == "shipped" and spec["reranker"]:
                rows += rerank_rows(spec, row, Path(tmp) / str(i), args.threads)
            result = save(args.entry, spec, rows, complete=i == len(plan) - 1)  # a crash keeps the rows so far
    metric = spec["metric"]
    print()
    print(table(rows, ["row", "seed", "train_s", "epochs", "best_epoch", f"val_{metric}", f"test_{metric}",
                       "busy_before", "load_after"]))
    s = result["summary"]
    print(f"\n{args.entry}: test {metric} {s['mean']:.4f} +- {s['sd']:.4f} (min {s['min']:.4f}) over seeds "
          f"{s['seeds']}, training <= {s['train_s_max']:.0f} s; target >= {spec['target']} in <= "
          f"{spec['budget_s']:.0f} s: {'MET' if s['met'] else 'NOT MET'}{' [loaded machine]' if s['loaded'] else ''}")
    print(f"wrote {RESULTS / 'anchors.json'}")


def save(entry: str, spec: dict[str, Any], rows: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    """Write the rows so far into anchors.json under ``entry`` (atomically); ``complete`` once the plan is done."""
    shipped = [r for r in rows if r["row"] == ("reranked" if spec["reranker"] else "shipped")]
    loaded = any((r.get("busy_before") or 0.0) > QUIET_CORES for r in rows if "busy_before" in r)
    result = {"rows": rows, "summary": summary(spec, shipped, loaded) if shipped else None, "complete": complete,
              **{k: spec[k] for k in ("metric", "target", "budget_s", "anchor", "val_by")},
              "quiet_cores": QUIET_CORES, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine()}
    path = RESULTS / "anchors.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[entry] = result
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_path, path)
    return result


if __name__ == "__main__":
    main()
