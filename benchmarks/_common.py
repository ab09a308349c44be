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


def write(name: str, payload: dict[str, Any], folder: Path = RESULTS) -> Path:
    """``folder/NAME.json``: the payload with the benchmark's name, the time and the machine."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine(), **payload}
    path = folder / f"{name}.json"
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


# --- timing child processes: wall time, peak memory, load -------------------------------------------------

def load_average() -> float | None:
    """The 1-minute load average (None where the OS keeps none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


class Stopwatch:
    """``with Stopwatch() as sw: ...``, then ``sw.seconds`` (time.perf_counter)."""

    def __enter__(self) -> "Stopwatch":
        self.start, self.seconds = time.perf_counter(), 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now, from /proc (0 where it cannot be read)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as fh:
                total += next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children", encoding="ascii") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to its end; exit with its stderr if it fails.

    Returns ``wall_s``, ``peak_rss_mb`` (the largest single process of its tree, from ``wait4``),
    ``peak_tree_rss_mb`` (all its processes together, sampled every 0.1 s from /proc; None elsewhere),
    ``cpu_s`` (user + system of it and its waited-for children) and its ``stdout``.
    """
    import subprocess
    import tempfile
    import threading

    peak, done = [0], threading.Event()
    with tempfile.TemporaryFile("w+") as err, Stopwatch() as sw:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:5])} ... failed:\n{err.read()[-3000:]}")
    return {"wall_s": sw.seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_tree_rss_mb": peak[0] / 2**20 if peak[0] else None,
            "cpu_s": usage.ru_utime + usage.ru_stime, "stdout": out}


# ``python -c FIRST_STEP ENTRY OUT [--exit] KEY VALUE ...``: runs zoo.train(ENTRY) in that process with the
# --set overrides KEY=VALUE and prints one JSON line: seconds from the call of zoo.train to its first training
# step (first_step_s: torch's import, the data, the model), of which the data (data_ready_s: dataset,
# tokenizers, prepared splits: zoo.build.prepare.build); imports_s (import zoo) comes before; and the
# process's peak RSS so far. With --exit the process ends at the first step (os._exit: the run is cut short,
# its folder incomplete), else after training, as zoo.train returns.
FIRST_STEP = """
import json, os, resource, sys, time
t0 = time.perf_counter()
import zoo
from zoo import config
import zoo.build.prepare
first, spent = [], []
def report():
    print(json.dumps({"first_step_s": first[0] - start, "imports_s": start - t0, "data_ready_s": spent[0],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
build = zoo.build.prepare.build
def build_timed(*a, **k):
    t = time.perf_counter()
    built = build(*a, **k)
    spent.append(time.perf_counter() - t)
    loss = built.task.loss
    def timed(model, batch):  # the trainer's first call of the task's loss: the first training step
        if not first:
            first.append(time.perf_counter())
            if exit_early:
                report()
                os._exit(0)
        return loss(model, batch)
    built.task.loss = timed
    return built
zoo.build.prepare.build = build_timed
args = sys.argv[3:]
exit_early = bool(args) and args[0] == "--exit"
args = args[1:] if exit_early else args
sets = config.parse_sets([f"{args[i]}={args[i + 1]}" for i in range(0, len(args), 2)])
start = time.perf_counter()
zoo.train(sys.argv[1], sets, out=sys.argv[2], force=True)
report()
"""


def first_step(entry: str, out: Path, sets: dict[str, str], env: dict[str, str] | None = None,
               exit_early: bool = False) -> dict[str, Any]:
    """``FIRST_STEP`` in a process of its own: its JSON, with :func:`run_child`'s wall time and memory."""
    import sys

    args = ["--exit"] if exit_early else []
    for key, value in sets.items():
        args += [key, value]
    child = run_child([sys.executable, "-c", FIRST_STEP, entry, str(out), *args], env)
    found = json.loads(child.pop("stdout").strip().splitlines()[-1])
    return {**found, **{f"process_{k}": v for k, v in child.items()}}
