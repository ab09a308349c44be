"""float32 against int8, per trained model: file size, the metric on its final split, predict throughput.

For every trained model named on the command line (a run folder, a model file or a trained
entry's name; the issue's rows are imdb-rnn, pos-transformer-char and shakespeare-char-gpt):

- ``zoo export --dtype int8`` (int8 Linear / LSTM / GRU weights + scales, torch dynamic quantization
  when loaded) beside the float32 artifact, and ``zoo export --format onnx --quantize int8`` where the
  model has an ONNX export: the bytes of each file;
- ``zoo eval`` on the final split (test, or val when the dataset has none) of both zoo artifacts: the
  entry's headline metric (accuracy for classifiers and taggers, loss for language models);
- ``predict_per_s``: raw inputs per second through ``zoo.load(x).predict(inputs, batch_size=B)``,
  the workload of ``benchmarks/predict.py`` (a language model generates ``--lm-tokens`` per prompt).

    .venv/bin/python benchmarks/int8.py runs/imdb-rnn runs/pos-transformer-char runs/shakespeare-char-gpt
    .venv/bin/python benchmarks/int8.py --quick     # tiny models of entries that need no data: a smoke run

Results: a table, and benchmarks/results/int8.json (``--quick`` writes int8_quick.json); the README keeps each entry's run as int8_ENTRY.json.
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
from _common import table, write
from predict import ROOT, train_quick, workload
from zoo import api
from zoo.inference.load import find_artifact

METRICS = {"classification": "accuracy", "tagging": "accuracy", "lm": "loss", "seq2seq": "exact_match",
           "code-generation": "bleu"}
COLUMNS = ["entry", "dtype", "bytes", "metric", "value", "predict_per_s", "onnx_bytes"]


def onnx_bytes(path: Path, out: Path, quantize: str | None) -> int | None:
    """Total bytes of the ONNX file(s) of ``path`` (None where the model has no ONNX export)."""
    from zoo.errors import ZooError
    from zoo.interop import export_onnx

    try:
        onnx = export_onnx(zoo.load(path), out, quantize=quantize)
    except (ZooError, ImportError):
        return None
    return sum(p.stat().st_size for p in out.parent.glob(f"{onnx.stem}*.onnx"))


def throughput(path: Path, args: argparse.Namespace) -> float:
    m = zoo.load(path)
    inputs, _, options, _ = workload(m, args.limit, args.lm_tokens)
    m.predict(inputs[: args.batch_size], batch_size=args.batch_size, **options)  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        m.predict(inputs, batch_size=args.batch_size, **options)
        times.append(time.perf_counter() - t0)
    return len(inputs) / statistics.median(times)


def measure(path: Path, tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    meta = zoo.load(path).metadata
    entry = meta.get("entry", "").split(":", 1)[-1] or str(path)
    task = meta["task"].split(":", 1)[-1]
    key = METRICS.get(task, "loss")
    int8 = api.export(path, tmp / f"{entry}.int8.safetensors", "int8")
    rows = []
    for dtype, artifact, quantize in (("float32", path, None), ("int8", int8, "int8")):
        metrics = zoo.evaluate(artifact, device="cpu")
        rows.append({"entry": entry, "dtype": dtype, "bytes": artifact.stat().st_size, "metric": key,
                     "value": metrics.get(key), "predict_per_s": throughput(artifact, args),
                     "onnx_bytes": onnx_bytes(path, tmp / dtype / f"{entry}.onnx", quantize)})
        print(table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model files, run folders or trained entry names")
    ap.add_argument("--quick", action="store_true", help="train tiny models of the entries that need no data")
    ap.add_argument("--limit", type=int, default=1000, help="inputs timed per model (default 1000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lm-tokens", type=int, default=32, help="tokens a language model generates per prompt")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: comparable runs)")
    ap.add_argument("--repeat", type=int, default=3, help="timed predict runs per file (the median)")
    args = ap.parse_args()
    if not args.models and not args.quick:
        ap.error("name trained models (files, run folders or entries), or use --quick")
    torch.set_num_threads(args.threads)
    paths = [find_artifact(p).resolve() for p in args.models]
    os.chdir(ROOT)  # tiny configs and file datasets name paths relative to the repository
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            paths += [find_artifact(p) for p in train_quick(Path(tmp) / "runs")]
        for path in paths:
            rows += measure(path, Path(tmp), args)
    print()
    print(table(rows, COLUMNS))
    settings = {k: getattr(args, k) for k in ("limit", "batch_size", "lm_tokens", "threads", "repeat")}
    settings["load_before"], settings["load_after"] = load_before, os.getloadavg()
    note = "tiny models trained by --quick: a check that the benchmark runs, not figures to report" if args.quick else ""
    name = "int8_quick" if args.quick else "int8"
    print(f"wrote {write(name, {'quick': args.quick, 'note': note, 'settings': settings, 'rows': rows})}")


if __name__ == "__main__":
    main()
