"""GPU readiness (issue 20): zoo's CUDA path checked in one run of a few minutes (started by gpu.sh).

In order, every training row a real ``zoo train`` process as a user would start it:

1. device: its name and count, the peak dense bf16 rate of PEAK_BF16_TFLOPS, and the bf16 and fp32
   matrix-product rates measured now;
2. parity: shakespeare-char-gpt and gpt-lm trained for the same 500 steps (same seed, dropout off)
   on the CPU in fp32, on the GPU in fp32 and on the GPU under bf16 autocast; the GPU's val loss
   must be within TOL_FP32 (fp32) and TOL_BF16 (bf16) of the CPU's;
3. shipped: both entries as shipped, on the GPU under bf16;
4. their artifacts evaluated on the GPU (within TOL_EVAL of the run's own val loss) and generating
   on it (tokens/s with the cache; the greedy text beside the CPU's, reported, not judged);
5. throughput: shakespeare-char-gpt at nanoGPT's GPU size (6 layers, 384 wide, block 256, batch 64);
6. DDP: the bf16 parity run of shakespeare-char-gpt in 2 processes, one GPU each (nccl), when the
   machine has two GPUs; its val loss must be within TOL_DDP of the one-process run.

Every training row reports tokens/s (``steady``: its last epoch, after warm-up) and model FLOP/s
utilisation (MFU, against the GPU's peak and against the matrix-product rate measured here).
Model FLOPs per token: 6 per weight (forward and backward; the position table excluded, the
token table counted once as the tied output head) plus 12 x layers x width x block for attention.

Modes:
  --device cuda (default)  the check above; writes benchmarks/results/gpu.json
  --device cpu             the same rows, tiny (each entry's ``tiny`` table, 4 steps), the CPU in the
                           GPU's place (DDP: 2 gloo processes); writes only with --json
  --dry-run                builds every row's data, tokenizer, config and model, prints the commands
                           (the DDP one too) and trains nothing: on the CPU, in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, matmul_tflops, model_flops, table

ENTRIES = {"char": "shakespeare-char-gpt", "bpe": "gpt-lm"}
# Peak dense (not sparse) bf16 tensor-core rates from the vendors' datasheets, TFLOP/s; first match wins.
PEAK_BF16_TFLOPS = (
    (r"H200 NVL", 835.0), (r"H200", 989.0), (r"H100 NVL", 835.0), (r"H100.*PCIe", 756.0), (r"H100", 989.0),
    (r"A100", 312.0), (r"L40S", 362.0), (r"L40\b", 181.0), (r"\bL4\b", 121.0), (r"\bA10\b", 125.0),
)
TOL_FP32 = 0.02  # nats: GPU fp32 vs CPU fp32 after the same 500 steps (only the order of sums differs)
TOL_BF16 = 0.05  # nats: GPU bf16 autocast vs CPU fp32 (attention and logits stay fp32 in these models)
TOL_DDP = 0.02  # nats: 2 GPUs vs 1, the same global batches under bf16
TOL_EVAL = 0.005  # nats: zoo.evaluate of the artifact vs the val loss its run recorded (same device and dtype)
PARITY_STEPS = {"train": {"epochs": 2, "steps_per_epoch": 250}}
TINY_STEPS = {"train": {"epochs": 2, "steps_per_epoch": 2}}
NANOGPT_GPU = {"model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2}, "task": {"block_size": 256},
               "train": {"batch_size": 64, "epochs": 3, "steps_per_epoch": 100, "eval_every": 3},
               "optim": {"lr": 0.001, "warmup_steps": 100}}
TINY_GPU_SIZE = {"task": {"block_size": 32}, "train": {"batch_size": 8}}


def peak_tflops(gpu_name: str | None) -> float | None:
    """The peak dense bf16 TFLOP/s of a GPU known by name; None: unknown."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if gpu_name and re.search(pattern, gpu_name):
            return tflops
    return None


def merge(*parts: dict[str, Any]) -> dict[str, Any]:
    from zoo.config import merge as _merge

    out: dict[str, Any] = {}
    for part in parts:
        out = _merge(out, part)
    return out


def as_sets(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"amp": "bf16"}}`` -> ``["train.amp=bf16"]``: the --set words of a command line."""
    out: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            out += as_sets(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value if isinstance(value, str) else json.dumps(value)}")
    return out


@dataclass
class Row:
    key: str  # e.g. "char parity cuda-bf16"
    entry: str
    device: str
    amp: str  # "off" or "bf16"
    overrides: dict[str, Any]
    nproc: int = 1

    def settings(self, threads: int | None) -> dict[str, Any]:
        train = {"device": self.device, "amp": self.amp, "progress": False}
        if threads is not None:
            train["threads"] = threads
        return merge(self.overrides, {"train": train})

    def command(self, out: Path, threads: int | None) -> list[str]:
        sets = [w for s in as_sets(self.settings(threads)) for w in ("--set", s)]
        nproc = ["--nproc", str(self.nproc)] if self.nproc > 1 else []
        return [sys.executable, "-m", "zoo", "train", self.entry, *sets, *nproc, "--out", str(out)]


@dataclass
class Plan:
    device: str  # where the "GPU" rows run: cuda, or cpu standing in for it
    tiny: bool
    rows: list[Row] = field(default_factory=list)
    ddp_reason: str = ""
    ddp_runs: bool = False


def tiny_table(entry: str) -> dict[str, Any]:
    import zoo

    tiny = zoo.get_registry().get("entry", entry).data.get("tiny") or {}
    return merge(tiny, TINY_STEPS)


def make_plan(device: str, tiny: bool, n_gpus: int, cpus: int) -> Plan:
    """Every row, in the order they run: the GPU first (the point of the run), then the CPU references."""
    plan = Plan(device, tiny)
    dev_rows, cpu_rows = [], []
    for short, entry in ENTRIES.items():
        base = tiny_table(entry) if tiny else {}
        parity = merge(base, {} if tiny else PARITY_STEPS, {"model": {"dropout": 0.0}})
        dev_rows += [Row(f"{short} parity {device}-bf16", entry, device, "bf16", parity),
                     Row(f"{short} parity {device}-fp32", entry, device, "off", parity)]
        cpu_rows.append(Row(f"{short} parity cpu-fp32", entry, "cpu", "off", parity))
    for short, entry in ENTRIES.items():
        dev_rows.append(Row(f"{short} shipped {device}-bf16", entry, device, "bf16", tiny_table(entry) if tiny else {}))
    size = merge(tiny_table(ENTRIES["char"]), TINY_GPU_SIZE) if tiny else NANOGPT_GPU
    plan.rows = [*dev_rows, *cpu_rows, Row(f"char gpu-size {device}-bf16", ENTRIES["char"], device, "bf16", size)]
    first = plan.rows[0]
    plan.rows.append(Row(f"char ddp2 {device}-bf16", first.entry, device, "bf16", first.overrides, nproc=2))
    if device == "cuda":
        plan.ddp_runs = n_gpus >= 2
        gpus = f"{n_gpus} GPU{'s' if n_gpus != 1 else ''}"
        plan.ddp_reason = (f"{gpus}: 2 processes, nccl" if plan.ddp_runs else
                           f"skipped: this machine has {gpus}; the nccl check needs 2")
    else:
        plan.ddp_runs = cpus >= 2
        plan.ddp_reason = ("2 CPU processes, gloo (standing in for 2 GPUs)" if plan.ddp_runs else
                           "skipped: 1 CPU core; the check needs 2 processes")
    return plan


# --- building (the dry run) and measuring ---------------------------------------------------------

def build_row(row: Row, threads: int | None, cache: dict[str, Any]) -> dict[str, Any]:
    """Resolve, build (data, tokenizer, task) and instantiate the row's model, as its run would; train nothing."""
    import zoo
    from zoo.build.pieces import make_model
    from zoo.build.prepare import build

    resolved = zoo.resolve_entry(row.entry, row.settings(threads))
    key = json.dumps([row.entry, {k: row.overrides.get(k) for k in ("dataset", "tokenizer", "task")}], sort_keys=True)
    if key not in cache:
        cache[key] = build(resolved, None, None, ("train", "val"))
    built = cache[key]
    model = make_model(resolved, built.task.model_sizes())
    block, batch = resolved.configs["task"].block_size, resolved.configs["train"].batch_size
    params, fpt = model_flops(model, resolved.configs["model"], block)
    tcfg = resolved.configs["train"]
    return {"row": row.key, "params": params, "flops_per_token": fpt, "tokens_per_step": batch * block,
            "steps": tcfg.max_steps or (tcfg.steps_per_epoch or 0) * tcfg.epochs}


def run_cmd(cmd: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run ``cmd`` in its own process group; on timeout the whole group (torchrun's ranks too) is killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err


def summarise(out: Path, wall: float) -> dict[str, Any]:
    """What a finished run folder says: steps, times, val loss, tokens/s overall and over its last epoch."""
    import zoo

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    loaded = zoo.load(out)
    cfg = loaded.config
    block, batch = cfg["task"]["block_size"], cfg["train"]["batch_size"]
    params, fpt = model_flops(loaded.model, loaded.resolved.configs["model"], block)
    tr = metrics["train"]
    res = {"steps": tr["steps"], "train_s": tr["train_time"], "wall_s": wall, "val_loss": metrics["val"]["loss"],
           "params": params, "flops_per_token": fpt, "tokens_per_s": tr["steps"] * batch * block / tr["train_time"]}
    if len(hist) >= 2:  # the last epoch alone: no CUDA start-up, no first-step compilation of kernels
        steps = hist[-1]["step"] - hist[-2]["step"]
        res["steady_tokens_per_s"] = steps * batch * block / (hist[-1]["train_time"] - hist[-2]["train_time"])
    else:
        res["steady_tokens_per_s"] = res["tokens_per_s"]
    return res


# --- running ----------------------------------------------------------------------------------------

@dataclass
class Runner:
    plan: Plan
    work: Path
    threads: int | None
    deadline: float  # time.monotonic() after which no row starts
    peak: float | None  # TFLOP/s of one device (None: unknown)
    measured: float | None  # bf16 matrix-product TFLOP/s measured on the device
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # command line -> its result

    def train(self, row: Row) -> dict[str, Any]:
        out = self.work / row.key.replace(" ", "_")
        cmd = row.command(out, self.threads)
        res: dict[str, Any] = {"row": row.key, "entry": row.entry, "device": row.device, "amp": row.amp,
                               "nproc": row.nproc, "command": shlex.join(cmd[1:])}
        same = shlex.join(row.command(Path("RUN"), self.threads))
        if same in self.done:  # e.g. on a CPU "cpu-fp32" and the stand-in GPU's fp32 row are one command
            return {**self.done[same], **res, "note": f"same command as '{self.done[same]['row']}'"}
        left = self.deadline - time.monotonic()
        if left <= 0:
            return {**res, "error": "skipped: over the time budget"}
        t0 = time.perf_counter()
        rc, _, err = run_cmd(cmd, timeout=left + 30.0)
        wall = time.perf_counter() - t0
        if rc != 0:
            why = "timed out" if rc is None else f"exit {rc}"
            return {**res, "wall_s": wall, "error": f"{why}: " + " | ".join(err.strip().splitlines()[-6:])}
        res.update(summarise(out, wall), run=str(out))
        self.utilisation(res)
        self.done[same] = res
        return res

    def utilisation(self, res: dict[str, Any]) -> None:
        """MFU of a row on the GPU: against the datasheet peak and against the rate measured here."""
        if res["device"] == "cpu" and self.plan.device == "cuda":
            return
        model = res["steady_tokens_per_s"] * res["flops_per_token"] / 1e12  # TFLOP/s, all devices together
        res["model_tflops"] = model
        if self.peak:
            res["mfu"] = model / (self.peak * res["nproc"])
        if self.measured:
            res["x_of_measured_matmul"] = model / (self.measured * res["nproc"])


def eval_and_generate(res: dict[str, Any], device: str, n_tokens: int) -> dict[str, Any]:
    """Evaluate a row's artifact on ``device``; generate greedily with the cache there, and on the CPU."""
    import zoo

    run = Path(res["run"])
    out: dict[str, Any] = {"row": res["row"], "device": device, "run_val_loss": res["val_loss"]}
    t0 = time.perf_counter()
    out["eval_val_loss"] = zoo.evaluate(run, device=device)["loss"]
    out["eval_s"] = time.perf_counter() - t0
    texts = {}
    for dev, n in ((device, n_tokens), ("cpu", min(n_tokens, 100))):
        t0 = time.perf_counter()
        pieces = list(zoo.generate(run, "ROMEO:", max_new_tokens=n, temperature=0.0, seed=0, device=dev))
        secs = time.perf_counter() - t0
        texts[dev] = "".join(pieces)
        if dev == device:
            out.update(gen_tokens=len(pieces), gen_tokens_per_s=len(pieces) / secs, sample=texts[dev][:80])
    cpu, mine = texts["cpu"], texts[device]
    out["greedy_same_chars_as_cpu"] = next((i for i, (a, b) in enumerate(zip(cpu, mine)) if a != b),
                                           min(len(cpu), len(mine)))
    # sampled, with a seed: the CUDA sampler
    out["sampled"] = "".join(zoo.generate(run, "ROMEO:", max_new_tokens=min(n_tokens, 100), temperature=0.8,
                                          top_k=40, seed=0, device=device))[:80]
    return out


def checks(plan: Plan, rows: dict[str, dict[str, Any]], evals: list[dict[str, Any]], n_tokens: int) -> list[dict]:
    """Each claim of the run, with its value, its tolerance and whether it holds."""
    found: list[dict[str, Any]] = []

    def diff(name: str, a: str, b: str, tol: float) -> None:
        ra, rb = rows.get(a, {}), rows.get(b, {})
        if "val_loss" in ra and "val_loss" in rb:
            d = abs(ra["val_loss"] - rb["val_loss"])
            found.append({"check": name, "value": d, "tolerance": tol, "ok": d <= tol})
        else:
            found.append({"check": name, "value": None, "tolerance": tol, "ok": False,
                          "why": ra.get("error") or rb.get("error") or "row missing"})

    dev = plan.device
    for short in ENTRIES:
        diff(f"{short}: val loss {dev}-fp32 vs cpu-fp32", f"{short} parity {dev}-fp32", f"{short} parity cpu-fp32",
             TOL_FP32)
        diff(f"{short}: val loss {dev}-bf16 vs cpu-fp32", f"{short} parity {dev}-bf16", f"{short} parity cpu-fp32",
             TOL_BF16)
    for e in evals:
        d = abs(e["eval_val_loss"] - e["run_val_loss"])
        found.append({"check": f"{e['row']}: zoo.evaluate on {dev} vs the run's val loss", "value": d,
                      "tolerance": TOL_EVAL, "ok": d <= TOL_EVAL})
        found.append({"check": f"{e['row']}: generated tokens on {dev}", "value": e["gen_tokens"],
                      "tolerance": n_tokens, "ok": e["gen_tokens"] == n_tokens})
    if plan.ddp_runs:
        first = plan.rows[0].key
        diff(f"char: val loss 2 processes vs 1 ({dev}-bf16)", f"char ddp2 {dev}-bf16", first, TOL_DDP)
    for key, r in rows.items():
        if r.get("error") and not r["error"].startswith("skipped"):
            found.append({"check": f"{key}: trains", "value": None, "tolerance": None, "ok": False, "why": r["error"]})
    return found


# --- the run ----------------------------------------------------------------------------------------

def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda_build": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(),
                            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if info["gpus"]:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info["bf16"] = torch.cuda.is_bf16_supported(including_emulation=False)
    info["peak_bf16_tflops"] = peak_tflops(info.get("gpu")) if device == "cuda" else None
    return info


def dry_run(plan: Plan, threads: int | None, out_json: Path | None) -> int:
    """Build every row and print what the run would do; train nothing, write nothing."""
    cache: dict[str, Any] = {}
    rows = []
    for row in plan.rows:
        t0 = time.perf_counter()
        rows.append({**build_row(row, threads, cache), "build_s": time.perf_counter() - t0})
        print(f"would run [{row.key}]: {shlex.join(row.command(Path('RUN'), threads)[1:])}", flush=True)
    print(f"DDP [{plan.rows[-1].key}]: {plan.ddp_reason}")
    print()
    print(table(rows, ["row", "params", "flops_per_token", "tokens_per_step", "steps", "build_s"]))
    print(f"\nchecks: GPU vs CPU val loss within {TOL_FP32} (fp32) and {TOL_BF16} (bf16) nats; "
          f"evaluation within {TOL_EVAL}; 2 processes vs 1 within {TOL_DDP}")
    print(f"dry run: built {len(rows)} rows, trained nothing; a real run writes {out_json or 'no JSON (--json PATH)'}")
    return 0


def measure_device(device: str, tiny: bool) -> dict[str, float]:
    n = 512 if tiny else 8192
    return {f"matmul_{dt}_tflops": matmul_tflops(device, dt, n) for dt in ("bfloat16", "float32")}


def run(plan: Plan, args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    """Train every row, evaluate and generate, judge; the payload of gpu.json."""
    info.update(measure_device(plan.device, plan.tiny))
    print(table([info], list(info)), flush=True)
    rows: dict[str, dict[str, Any]] = {}
    n_tokens = 20 if plan.tiny else 500
    evals: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="zoo-gpu-") as tmp:
        runner = Runner(plan, Path(tmp), args.threads, time.monotonic() + args.budget_s,
                        info["peak_bf16_tflops"], info["matmul_bfloat16_tflops"])
        for row in plan.rows:
            if row.nproc > 1 and not plan.ddp_runs:
                rows[row.key] = {"row": row.key, "nproc": row.nproc, "error": plan.ddp_reason}
            else:
                rows[row.key] = runner.train(row)
            print(f"[{row.key}] " + json.dumps({k: v for k, v in rows[row.key].items() if k not in ("row", "command")},
                                               default=str), flush=True)
            if " shipped " in row.key and "run" in rows[row.key]:
                try:
                    evals.append(eval_and_generate(rows[row.key], plan.device, n_tokens))
                except Exception as exc:  # noqa: BLE001 - reported as a failed check, the run goes on
                    evals.append({"row": row.key, "error": f"{type(exc).__name__}: {exc}"})
    good_evals = [e for e in evals if "error" not in e]
    found = checks(plan, rows, good_evals, n_tokens)
    found += [{"check": f"{e['row']}: evaluate and generate", "ok": False, "why": e["error"]}
              for e in evals if "error" in e]
    return {"device_info": info, "rows": list(rows.values()), "generation": evals, "checks": found,
            "tolerances": {"fp32": TOL_FP32, "bf16": TOL_BF16, "ddp": TOL_DDP, "eval": TOL_EVAL},
            "ddp": plan.ddp_reason, "tiny": plan.tiny}


def report(payload: dict[str, Any]) -> bool:
    cols = ["row", "steps", "train_s", "wall_s", "val_loss", "tokens_per_s", "steady_tokens_per_s", "model_tflops",
            "mfu", "x_of_measured_matmul", "error"]
    print()
    print(table(payload["rows"], cols))
    gen = [e for e in payload["generation"] if "error" not in e]
    if gen:
        print()
        print(table(gen, ["row", "device", "run_val_loss", "eval_val_loss", "gen_tokens", "gen_tokens_per_s",
                          "greedy_same_chars_as_cpu"]))
    print()
    print(table(payload["checks"], ["check", "value", "tolerance", "ok", "why"]))
    ok = all(c["ok"] for c in payload["checks"])
    passed = sum(c["ok"] for c in payload["checks"])
    print(f"\n{passed}/{len(payload['checks'])} checks pass; DDP: {payload['ddp']}")
    return ok


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    payload = {"benchmark": "gpu", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
               "commit": commit(), **payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--dry-run", action="store_true", help="build every row, train nothing")
    ap.add_argument("--threads", type=int, default=None, help="train.threads of every row (default: torch's)")
    ap.add_argument("--budget-s", type=float, default=400.0,
                    help="no row starts after this many seconds, and one running is stopped 30 s later")
    ap.add_argument("--json", type=Path, default=None,
                    help="where to write the results [default: benchmarks/results/gpu.json with --device cuda]")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import torch

    tiny = args.device == "cpu"
    out_json = args.json or (RESULTS / "gpu.json" if args.device == "cuda" else None)
    info = device_info(args.device)
    print(f"gpu check: torch {info['torch']} (CUDA build {info['cuda_build'] or 'none'}), {info['gpus']} GPU(s)"
          f"{': ' + info['gpu'] if info.get('gpu') else ''}; peak bf16 "
          f"{info['peak_bf16_tflops'] or 'unknown'} TFLOP/s; mode: {'dry run' if args.dry_run else args.device}"
          f"{' (tiny)' if tiny else ''}", flush=True)
    plan = make_plan(args.device, tiny, info["gpus"], os.cpu_count() or 1)
    if args.dry_run:
        return dry_run(plan, args.threads, out_json)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu check: CUDA is not available to torch {torch.__version__} (CUDA build: "
              f"{torch.version.cuda or 'none, a CPU build'}); on a GPU machine install a CUDA build "
              "(ZOO_TORCH=torch bash scripts/setup.sh), or use --device cpu or --dry-run here", file=sys.stderr)
        return 2
    payload = run(plan, args, info)
    payload["wall_s"] = time.perf_counter() - t0
    ok = report(payload)
    print(f"gpu check: {'PASS' if ok else 'FAIL'} in {payload['wall_s']:.0f} s")
    if out_json is not None:
        write_json(out_json, payload)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
