"""Data-parallel training speed: 1 vs 2 processes on this machine; autocast on a GPU when there is one.

CPU rows (issue 8): the same entry, global batch and number of optimizer steps, side by side:
- ``1 proc x 1 thread``:  ``zoo train ENTRY --set train.threads=1``
- ``1 proc x N threads``: the same cores as N processes, used by torch's intra-op threads instead
- ``N procs x 1 thread``: ``zoo train ENTRY --nproc N`` (DDP over gloo; each rank takes 1/N of every batch)
samples/s = steps x global batch / train_time, where train_time is rank 0's training seconds
(evaluation excluded; waiting for the gradient all-reduce included). Every configuration runs
``--repeats`` times, interleaved, in a fresh process; the table shows the median and the ratio to
the 1-process, 1-thread row. The machine is shared: the 1-minute load average before and after
each run is recorded next to it.

GPU rows, only when ``torch.cuda.is_available()``: shakespeare-char-gpt for ``--gpu-steps``
optimizer steps with ``train.amp=off`` and ``train.amp=auto`` (bf16, or fp16 with a gradient
scaler on a GPU without bf16); tokens/s = steps x batch x block / train_time. Two shapes: the
entry as shipped (batch 12 x block 64: small kernels, launch-bound) and batch 64 x block 256.
The device name is recorded. (``--autocast-device cpu`` runs these rows on the CPU, with bf16, to
check the script where no GPU is lent.)

    .venv/bin/python benchmarks/ddp.py [--entry subseq-gru] [--steps 100] [--nproc 2] [--repeats 3]
    ZOO_DATA_DIR=/path/to/data .venv/bin/python benchmarks/ddp.py --skip-cpu   # GPU rows only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table, write

ROOT = Path(__file__).resolve().parent.parent


def cpu_overrides(entry: str, steps: int, threads: int) -> list[str]:
    sets = ["train.epochs=1", f"train.steps_per_epoch={steps}", f"train.threads={threads}", "train.progress=false"]
    if entry.endswith("subseq-gru"):  # enough examples for `steps` batches of 128 in one epoch; small eval splits
        sets += [f"dataset.train_size={steps * 128}", "dataset.val_size=200", "dataset.test_size=200"]
    return sets


def cpu_run(entry: str, steps: int, nproc: int, threads: int, extra: list[str], out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "zoo", "train", entry, "--out", str(out), "--device", "cpu"]
    for s in cpu_overrides(entry, steps, threads) + extra:
        cmd += ["--set", s]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = (out / "config.toml").read_text()
    batch = next(int(line.split("=")[1]) for line in cfg.splitlines() if line.startswith("batch_size ="))
    tr = metrics["train"]
    return {"steps": tr["steps"], "batch": batch, "train_s": tr["train_time"], "wall_s": wall,
            "samples_per_s": tr["steps"] * batch / tr["train_time"], "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def cpu_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    n = args.nproc
    configs = [("1 proc x 1 thread", 1, 1), (f"1 proc x {n} threads", 1, n), (f"{n} procs x 1 thread", n, 1)]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):  # interleaved: a change in the machine's load hits every row alike
            for label, nproc, threads in configs:
                out = Path(tmp) / f"{rep}-{nproc}-{threads}"
                r = cpu_run(args.entry, args.steps, nproc, threads, args.set, out)
                runs[label].append(r)
                print(f"  {label} #{rep + 1}: {r['samples_per_s']:.0f} samples/s "
                      f"(train {r['train_s']:.2f} s, load {r['load_before']:.2f} -> {r['load_after']:.2f})", flush=True)
    rows = []
    for label, nproc, threads in configs:
        rs = runs[label]
        rows.append({"config": label, "processes": nproc, "threads": threads, "steps": rs[0]["steps"],
                     "global_batch": rs[0]["batch"],
                     "samples_per_s": statistics.median(r["samples_per_s"] for r in rs),
                     "train_s": statistics.median(r["train_s"] for r in rs),
                     "wall_s": statistics.median(r["wall_s"] for r in rs),
                     "load_min": min(r["load_before"] for r in rs), "load_max": max(r["load_after"] for r in rs),
                     "runs": rs})
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["x_vs_1x1"] = r["samples_per_s"] / base
    return rows


GPU_SHAPES = {
    "as shipped (12 x 64)": {},
    "batch 64 x block 256": {"train": {"batch_size": 64}, "task": {"block_size": 256}},
}


def autocast_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    import torch

    import zoo

    device = args.autocast_device
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    amps = ("off", "auto") if device == "cuda" else ("off", "bf16")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, shape_over in GPU_SHAPES.items():
            for amp in amps:
                over = zoo.config.merge(shape_over, {
                    "train": {"device": device, "amp": amp, "epochs": 1, "max_steps": args.gpu_steps,
                              "steps_per_epoch": args.gpu_steps, "progress": False},
                    "task": {"eval_blocks": 8}})
                out = Path(tmp) / f"{len(rows)}"
                result = zoo.train("shakespeare-char-gpt", over, out=out)
                cfg = zoo.load(out).config
                tr = result.metrics["train"]
                tokens = tr["steps"] * cfg["train"]["batch_size"] * cfg["task"]["block_size"]
                rows.append({"shape": shape, "amp": amp, "steps": tr["steps"], "train_s": tr["train_time"],
                             "tokens_per_s": tokens / tr["train_time"], "load": os.getloadavg()[0]})
                print(f"  {shape} amp={amp}: {rows[-1]['tokens_per_s']:.0f} tokens/s", flush=True)
    for r in rows:
        off = next(x for x in rows if x["shape"] == r["shape"] and x["amp"] == "off")
        r["x_vs_amp_off"] = r["tokens_per_s"] / off["tokens_per_s"]
    return rows, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entry", default="subseq-gru")
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps of every CPU run")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra overrides, CPU rows")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--gpu-steps", type=int, default=200)
    ap.add_argument("--autocast-device", choices=["cuda", "cpu"], default="cuda",
                    help="where the autocast rows run; they run on cuda only when CUDA is available")
    ap.add_argument("--no-write", action="store_true", help="print only (script checks)")
    args = ap.parse_args()
    payload: dict[str, Any] = {"entry": args.entry, "cpu": [], "gpu": None}

    if not args.skip_cpu:
        print(f"{args.entry}: {args.steps} steps, 1 vs {args.nproc} processes (load before: "
              f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)", flush=True)
        rows = cpu_rows(args)
        payload["cpu"] = rows
        print()
        print(table(rows, ["config", "steps", "global_batch", "samples_per_s", "x_vs_1x1", "train_s", "wall_s",
                           "load_min", "load_max"]))

    import torch

    if args.autocast_device == "cpu" or torch.cuda.is_available():
        print(f"\nshakespeare-char-gpt on {args.autocast_device}: {args.gpu_steps} steps, autocast off vs on",
              flush=True)
        rows, name = autocast_rows(args)
        payload["gpu"] = {"device": name, "rows": rows}
        print(f"device: {name}")
        print(table(rows, ["shape", "amp", "steps", "train_s", "tokens_per_s", "x_vs_amp_off", "load"]))
    else:
        payload["gpu"] = {"device": None, "rows": [], "note": "no CUDA device on this machine: GPU rows not run"}
        print("\nno CUDA device: the GPU rows (shakespeare-char-gpt tokens/s with and without autocast) were not run")

    if not args.no_write:
        path = write("ddp", payload)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
