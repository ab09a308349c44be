"""Shared helpers for benchmarks: machine description, a table printer, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        from zoo.runtime.device import cpu_has_bf16

        info["cpu_bf16"] = cpu_has_bf16()  # AVX512-BF16 or AMX: bf16 autocast is fast on this CPU
    except ImportError:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    return info


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(out)


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def model_flops(model: Any, model_cfg: Any, block: int) -> tuple[int, float]:
    """Weights (the position table left out) and model FLOPs per trained token."""
    n = sum(p.numel() for name, p in model.named_parameters() if "wpe" not in name)
    return n, 6.0 * n + 12.0 * model_cfg.n_layer * model_cfg.n_embd * block


def matmul_tflops(device: str, dtype_name: str, n: int, reps: int = 10) -> float:
    """The rate of an n x n x n matrix product on ``device`` in ``dtype_name``, warmed up."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    rate = 2.0 * n**3 * reps / (time.perf_counter() - t0) / 1e12
    del a, b
    if device == "cuda":
        torch.cuda.empty_cache()  # the training processes that follow get the memory back
    return rate


def cores_busy(seconds: float = 2.0) -> float | None:
    """How many CPU cores other processes keep busy, sampled over ``seconds`` while this one sleeps.

    The 1-minute load average still carries a job that ended a minute ago; this reads /proc/stat
    twice and counts the busy time between. None where /proc/stat is missing (not Linux).
    """
    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    span = total1 - total0
    return (span - (idle1 - idle0)) / span * (os.cpu_count() or 1) if span > 0 else 0.0


def timed_train(cmd: list[str], out: Path, label: str) -> tuple[float, float | None, dict[str, Any]]:
    """Run a ``zoo train`` command: its wall time, the cores others kept busy just before, its metrics.json."""
    import subprocess

    busy = cores_busy()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: zoo train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, busy, json.loads((out / "metrics.json").read_text())
