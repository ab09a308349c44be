"""Batched ``predict`` on raw inputs against ``evaluate`` on the same examples, and single-input latency.

For every trained model named on the command line (a model file, a run folder or a trained
entry's name), on the first ``--limit`` examples of its final split (test, or val):

- ``predict_per_s``: raw inputs per second through ``zoo.load(x).predict(inputs, batch_size=B)``;
- ``evaluate_per_s``: examples per second through the task's ``encode`` and the evaluation
  loop (``zoo.training.evaluation.evaluate``) at the same batch size; both start from raw examples;
- ``ratio``: predict / evaluate (issue 16: batched predict should not be slower per example);
- ``latency_ms`` / ``latency_p90_ms``: one input per call, median and 90th percentile of ``--latency-n``.

Language models are the exception: predict generates ``--lm-tokens`` tokens after a 32-character
prompt while evaluation scores blocks, so their two rates count different work (see ``unit``).

    .venv/bin/python benchmarks/predict.py runs/imdb-rnn runs/pos-transformer-char [--limit 1000]
    .venv/bin/python benchmarks/predict.py --quick    # trains tiny models of the entries that need no data

Results: a table, and benchmarks/results/predict.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.build.pieces import final_split
from _common import table, write
from zoo import config
from zoo.sdk import files as data
from zoo.inference.load import find_artifact

ROOT = Path(__file__).resolve().parent.parent
# entries whose tiny models train without downloaded data (--quick), as in tests/test_predict.py
QUICK = {"text-rnn": {}, "conll-tagger": {"dataset": {"label_column": -1}}, "subseq-gru": {},
         "seq2py-pairs": {}, "text-gpt": {}}
RAW = {  # task -> the raw input of one of its dataset's examples
    "classification": lambda ex: ex["text"],
    "tagging": lambda ex: list(ex["tokens"]),
    "seq2seq": lambda ex: ex["src"],
    "code-generation": lambda ex: ex["src"],
}
COLUMNS = ["entry", "task", "examples", "unit", "predict_per_s", "evaluate_per_s", "ratio", "latency_ms",
           "latency_p90_ms"]


def train_quick(out: Path) -> list[Path]:
    runs = []
    for entry, extra in QUICK.items():
        tiny = zoo.get_registry().get("entry", entry).data["tiny"]
        overrides = config.merge(config.merge(tiny, {"train": {"progress": False}}), extra)
        runs.append(zoo.train(entry, overrides, out=out / entry).run_dir)
    return runs


def workload(m: Any, limit: int, lm_tokens: int) -> tuple[list[Any], Any, dict[str, Any], str]:
    """(raw inputs, the same examples encoded for evaluation, predict options, unit) of a loaded model."""
    dataset = m.resolved.cls("dataset")(m.resolved.configs["dataset"], data_dir=data.data_dir(None))
    examples = list(dataset.load(final_split(dataset)))
    task = m.metadata["task"].split(":", 1)[-1]
    if task == "lm":  # prompts cut from the split's text; evaluation scores `limit` blocks of it
        text = m.task.config.separator.join(ex["text"] for ex in examples)
        step = max(32, len(text) // limit)
        prompts = [text[i : i + 32] for i in range(0, len(text) - 32, step)][:limit]
        m.task.config.eval_blocks = limit
        return prompts, examples, {"max_new_tokens": lm_tokens}, f"prompt+{lm_tokens} tok / block"
    examples = examples[:limit]
    return [RAW[task](ex) for ex in examples], examples, {}, "example"


def measure(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from zoo.runtime.device import autocast_dtype
    from zoo.training.evaluation import evaluate

    m = zoo.load(path, device=args.device)
    inputs, examples, options, unit = workload(m, args.limit, args.lm_tokens)
    is_lm = unit != "example"
    device = next(m.model.parameters()).device
    amp = autocast_dtype(m.resolved.configs["train"].amp, device)
    bs = args.batch_size
    m.predict(inputs[:bs], batch_size=bs, **options)  # warm-up
    predict_times, evaluate_times = [], []
    for _ in range(args.repeat):  # alternating, so that a change in the machine's load hits both alike
        t0 = time.perf_counter()
        records = m.predict(inputs, batch_size=bs, **options)
        predict_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        encoded = m.task.encode(examples)
        evaluate(m.model, m.task, encoded, bs, device, amp)
        evaluate_times.append(time.perf_counter() - t0)
    predict_s, evaluate_s = statistics.median(predict_times), statistics.median(evaluate_times)
    evaluated = len(examples)
    if is_lm:  # the blocks evaluation scored: non-overlapping, at most eval_blocks of them
        n, block = encoded["ids"].numel() - 1, m.task.config.block_size
        evaluated = min(m.task.config.eval_blocks, len(range(0, n - block + 1, block)))
    latencies = []
    for x in inputs[: args.latency_n]:
        t0 = time.perf_counter()
        m.predict(x, **options)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    return {"entry": m.metadata.get("entry", "").split(":", 1)[-1] or str(path), "task": m.metadata["task"],
            "examples": len(records), "unit": unit, "batch_size": bs, "predict_s": predict_s,
            "predict_per_s": len(records) / predict_s, "evaluate_s": evaluate_s,
            "evaluate_per_s": evaluated / evaluate_s,
            "ratio": (len(records) / predict_s) / (evaluated / evaluate_s),
            "latency_ms": statistics.median(latencies), "latency_p90_ms": latencies[int(0.9 * (len(latencies) - 1))],
            "latency_n": len(latencies), "amp": str(amp).replace("torch.", "") if amp else "off"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model files, run folders or trained entry names")
    ap.add_argument("--quick", action="store_true", help="train tiny models of the entries that need no data")
    ap.add_argument("--limit", type=int, default=1000, help="examples per model (default 1000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--latency-n", type=int, default=50, help="single-input calls timed per model")
    ap.add_argument("--lm-tokens", type=int, default=32, help="tokens a language model generates per prompt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: comparable runs)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of predict and evaluate each (the median)")
    args = ap.parse_args()
    if not args.models and not args.quick:
        ap.error("name trained models (files, run folders or entries), or use --quick")
    torch.set_num_threads(args.threads)
    paths = [find_artifact(p).resolve() for p in args.models]
    os.chdir(ROOT)  # tiny configs and file datasets name paths relative to the repository
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            paths += train_quick(Path(tmp))
        for path in paths:
            rows.append(measure(path, args))
            print(table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    print()
    print(table(rows, COLUMNS))
    settings = {k: getattr(args, k) for k in ("limit", "batch_size", "latency_n", "lm_tokens", "device", "threads",
                                              "repeat")}
    settings["load_before"], settings["load_after"] = load_before, os.getloadavg()
    print(f"load average (1, 5, 15 min) before {load_before}, after {settings['load_after']}")
    note = "tiny models trained by --quick: a check that the benchmark runs, not figures to report" if args.quick else ""
    print(f"wrote {write('predict', {'quick': args.quick, 'note': note, 'settings': settings, 'rows': rows})}")


if __name__ == "__main__":
    main()
