"""seq2py on CoNaLa: BLEU, exact match and test loss of the reference entry, and an ablation.

    ZOO_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/seq2py.py main [RUN_DIR]
    ZOO_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/seq2py.py eval RUN_DIR
    ZOO_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/seq2py.py ablation [ROW ...]

``main`` trains the ``seq2py`` entry as registered (its entries.toml) and evaluates it on the 500
test intents (RUN_DIR keeps its run folder); ``eval RUN_DIR`` decodes the test intents again
with the current code, for a change to decoding that does not need training again.
``ablation`` trains the same recipe at a reduced budget (smaller model, fewer epochs: see
ABLATION_BASE) with one change per row, side by side, and reports each row's BLEU relative
to the first. Rows already measured are kept in the JSON file, so rows can be run one at a time. Results: benchmarks/results/seq2py.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import _common

import zoo
from zoo import config

THREADS = int(os.environ.get("SEQ2PY_THREADS", "1"))  # the benchmark machine is shared: one thread
COMMON = {"train": {"threads": THREADS, "progress": False}}
# reduced budget for the ablation: half the width, 10 epochs (embeddings frozen for 7), beam 5, float32 and
# no weight average (the recipe the ablation table was measured with, before issue 20)
ABLATION_BASE = {
    "model": {"d_model": 128, "n_head": 4, "d_ff": 256},
    "train": {"epochs": 10, "eval_every": 10, "freeze": {"embeddings": 7}, "amp": "off", "ema": None},
    "task": {"length_penalty": 1.0},  # as when the rows below were measured
}
ROWS = {  # in the order they are run: the required comparisons first
    "full recipe": {},
    # random embeddings, trained from the first step (freezing random vectors would confound the comparison)
    "no pretrained vectors": {"task": {"vectors": "none"}, "train": {"freeze": {"embeddings": 0}}},
    "no freezing": {"train": {"freeze": {"embeddings": 0}}},  # (an empty table would merge away)
    "no augmentation (rewritten intents only)": {"dataset": {"both_intents": False}},
    "augment: rename slots too": {"task": {"rename_slots": 0.5}},
    "no copy mechanism": {"model": {"copy": False}},
}
# rows measured before 2026-11-29 (base without both_intents, beam search that could return a loop
# cut off at max_len) are kept in the JSON under "ablation_superseded", not mixed with these


def load_uptime() -> str:
    try:
        return open("/proc/loadavg", encoding="utf-8").read().split()[0]
    except OSError:
        return "?"


def run(overrides: dict, keep: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or os.path.join(tmp, "run")
        load_before = load_uptime()
        t0 = time.perf_counter()
        result = zoo.train("seq2py", config.merge(COMMON, overrides), out=out, force=True)
        wall = time.perf_counter() - t0
        outputs = open(os.path.join(out, "outputs.test.jsonl"), encoding="utf-8").read().splitlines()
    return {**scores(result.metrics["test"], result.metrics["train"]), "wall_s": wall, "load_before": load_before,
            "load_after": load_uptime(), "examples": [json.loads(x) for x in outputs[:5]]}


def scores(test: dict, train: dict) -> dict:
    """A row's test metrics (in %) and training summary."""
    return {
        "bleu": 100 * test["bleu"], "bleu_smooth": 100 * test["bleu_smooth"], "exact_match": 100 * test["exact_match"],
        "test_loss": test["loss"], "perplexity": test["perplexity"], "epochs": train["epochs"],
        "train_time_s": train["train_time"],
    }


def reevaluate(run_dir: str, previous: dict | None) -> dict:
    """The test metrics of a kept ``main`` run folder, decoded by the current code."""
    records: list[dict] = []
    t0 = time.perf_counter()
    test = zoo.evaluate(run_dir, split="test", outputs=records)
    secs = time.perf_counter() - t0
    train = json.loads(open(os.path.join(run_dir, "metrics.json"), encoding="utf-8").read())["train"]
    return {
        **scores(test, train), "eval_s": secs, "load_after": load_uptime(), "examples": records[:5],
        "config": "seq2py entry as registered, test split decoded again by `eval`",
        "before_reevaluation": {k: previous[k] for k in ("bleu", "exact_match", "test_loss")} if previous else None,
    }


def main() -> None:
    mode, names = (sys.argv[1] if len(sys.argv) > 1 else "main"), sys.argv[2:]
    path = _common.RESULTS / "seq2py.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    main_row, ablation = saved.get("main"), saved.get("ablation", {})
    superseded = saved.get("ablation_superseded", {})

    def save() -> None:  # after every run, so that an interrupted benchmark keeps what it measured
        _common.write("seq2py", {
            "main": main_row, "ablation": ablation, "ablation_base": ABLATION_BASE, "rows": ROWS, "threads": THREADS,
            "ablation_superseded": superseded,
            "reference": {"official seq2seq baseline BLEU": 14.72, "TranX BLEU": 24.30, "reference test loss": 1.443}})

    if mode == "main":  # main [RUN_DIR]: keep the run folder there
        main_row = run({}, keep=names[0] if names else None)
        main_row["config"] = "seq2py entry as registered"
        save()
    elif mode == "eval":  # eval RUN_DIR: decode the test split again with this code (training not repeated)
        main_row = reevaluate(names[0], main_row)
        save()
    else:
        for name in names or list(ROWS):
            print(f"running: {name}", flush=True)
            ablation[name] = run(config.merge(ABLATION_BASE, ROWS[name]))
            print(f"  {name}: BLEU {ablation[name]['bleu']:.2f}, exact {ablation[name]['exact_match']:.1f}%, "
                  f"test loss {ablation[name]['test_loss']:.3f}, {ablation[name]['train_time_s']:.0f} s", flush=True)
            save()
    cols = ["row", "bleu", "bleu_smooth", "exact_match", "test_loss", "train_time_s", "load_after"]
    if main_row:
        print(_common.table([{"row": "seq2py (the entry as registered)", **main_row}], cols))
        print()
    if ablation:
        base = ablation.get("full recipe", {}).get("bleu")
        rows = [{"row": n, **r, "bleu_ratio": (r["bleu"] / base if base else float("nan"))}
                for n, r in ablation.items()]
        print("ablation (reduced budget: d_model 128, 10 epochs)")
        print(_common.table(rows, cols + ["bleu_ratio"]))


if __name__ == "__main__":
    main()
