"""benchmarks/gpu.sh (issue 20): the GPU check's dry run and its CPU rehearsal, on a machine without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import zoo

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # benchmarks/ is no package: found through sys.path

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
ROWS = ["char parity cuda-bf16", "char parity cuda-fp32", "bpe parity cuda-bf16", "bpe parity cuda-fp32",
        "char shipped cuda-bf16", "bpe shipped cuda-bf16", "char parity cpu-fp32", "bpe parity cpu-fp32",
        "char gpu-size cuda-bf16", "char ddp2 cuda-bf16"]


def run_script(args: list[str], data: Path, python: str | None = None, tmp: Path | None = None, timeout: float = 120):
    env = {**os.environ, "ZOO_DATA_DIR": str(data), "OMP_NUM_THREADS": "1", "PYTHON": python or sys.executable}
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    if python is not None:  # that interpreter alone decides what it can import
        env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def results_state() -> tuple[bool, int]:
    path = ROOT / "benchmarks/results/gpu.json"
    return path.exists(), path.stat().st_mtime_ns if path.exists() else 0


@pytest.mark.slow
def test_dry_run_builds_every_row_and_prints_its_command_without_training(data_dir_or_skip):
    before = results_state()
    proc = run_script(["--dry-run"], data_dir_or_skip)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    commands = {line.split("]", 1)[0][len("would run ["):]: line.split("]: ", 1)[1]
                for line in out.splitlines() if line.startswith("would run [")}
    assert list(commands) == ROWS
    for key, cmd in commands.items():
        assert cmd.startswith("-m zoo train ") and cmd.endswith("--out RUN"), cmd
        assert ("train.device=cpu" if "cpu-fp32" in key else "train.device=cuda") in cmd
        assert ("train.amp=bf16" if key.endswith("bf16") else "train.amp=off") in cmd
    assert "--nproc 2" in commands["char ddp2 cuda-bf16"]
    assert "train.steps_per_epoch=250" in commands["char parity cuda-bf16"]  # 2 x 250: the parity budget
    if not torch.cuda.is_available():
        assert "DDP [char ddp2 cuda-bf16]: skipped: this machine has 0 GPUs; the nccl check needs 2" in out
    # every row's model was built: nanoGPT's GPU-size model has its 10.7M weights
    size_row = next(line.split() for line in out.splitlines() if line.startswith("char gpu-size cuda-bf16 "))
    assert 10.6e6 < int(size_row[3]) < 10.8e6
    assert "dry run: built 10 rows, trained nothing" in out
    assert results_state() == before  # a dry run writes no results


@pytest.mark.slow
def test_a_python_with_torch_but_without_zoo_runs_the_checkout(data_dir_or_skip, tmp_path):
    """The path a CUDA image takes: its python3 has torch and the libraries, not zoo; nothing is installed into it."""
    env_dir = tmp_path / "image"
    venv.create(env_dir, with_pip=False)
    shelf = tmp_path / "shelf"  # everything this interpreter can import, but zoo and its plugins
    shelf.mkdir()
    site = Path(torch.__file__).parent.parent
    for item in site.iterdir():
        if not (item.name.startswith(("zoo", "__editable__", "_zoo")) or item.suffix == ".pth"):
            (shelf / item.name).symlink_to(item)
    py = next((env_dir / "bin").glob("python3*"))
    (next(env_dir.glob("lib/python3*/site-packages")) / "shelf.pth").write_text(f"{shelf}\n")
    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert subprocess.run([str(py), "-c", "import torch"], env=bare, cwd=tmp_path).returncode == 0
    assert subprocess.run([str(py), "-c", "import zoo_lm"], env=bare, capture_output=True,
                          cwd=tmp_path).returncode != 0

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = run_script(["--dry-run"], data_dir_or_skip, python=str(py), tmp=scratch)
    assert proc.returncode == 0, proc.stderr
    assert f"gpu.sh: zoo from {ROOT} for this run" in proc.stderr
    assert "dry run: built 10 rows, trained nothing" in proc.stdout
    # the interpreter is as it was, and the run's temporary folder is gone
    assert subprocess.run([str(py), "-c", "import zoo_lm"], env=bare, capture_output=True,
                          cwd=tmp_path).returncode != 0
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_row_and_check(data_dir_or_skip, tmp_path):
    out = tmp_path / "gpu.json"
    before = results_state()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--device", "cpu", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "ZOO_DATA_DIR": str(data_dir_or_skip), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu check: PASS" in proc.stdout
    payload = json.loads(out.read_text())
    rows = {r["row"]: r for r in payload["rows"]}
    assert "char gpu-size cpu-bf16" in rows and rows["char gpu-size cpu-bf16"]["steps"] == 4
    for r in rows.values():
        if "error" not in r:
            assert r["val_loss"] > 0 and r["steady_tokens_per_s"] > 0 and r["flops_per_token"] > 0
    checks = {c["check"]: c for c in payload["checks"]}
    assert all(c["ok"] for c in checks.values()), checks
    assert {"char: val loss cpu-bf16 vs cpu-fp32", "bpe: val loss cpu-bf16 vs cpu-fp32"} <= set(checks)
    assert len(payload["generation"]) == 2 and all(g["gen_tokens"] == 20 for g in payload["generation"])
    ddp = "char: val loss 2 processes vs 1 (cpu-bf16)"
    if (os.cpu_count() or 1) >= 2:
        assert ddp in checks and rows["char ddp2 cpu-bf16"]["nproc"] == 2
    else:
        assert ddp not in checks and "skipped" in rows["char ddp2 cpu-bf16"]["error"]
    assert results_state() == before  # --json elsewhere: the GPU's results stay


@no_cuda
def test_the_gpu_run_without_cuda_is_one_clear_error():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_check.py")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("gpu check: CUDA is not available") and "--device cpu" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0),
    ("NVIDIA L40", 181.0), ("NVIDIA A10", 125.0), ("Tesla T4", None), ("NVIDIA GeForce GTX 1080", None), (None, None),
])
def test_peak_bf16_rate_by_gpu_name(name, tflops):
    assert gpu_check.peak_tflops(name) == tflops


def test_model_flops_per_token_counts_the_tied_head_once_and_no_position_table():
    model = zoo.get_model("gpt", config={"n_layer": 1, "n_head": 2, "n_embd": 8}, vocab_size=10, block_size=4)
    params, flops = gpu_check.model_flops(model, SimpleNamespace(n_layer=1, n_embd=8), block=4)
    # wte 10x8 (also the head) + 3 LayerNorms 3x16 + c_attn 8x24+24 + c_proj 8x8+8 + c_fc 8x32+32 + c_proj 32x8+8
    assert params == 80 + 48 + 216 + 72 + 288 + 264
    assert flops == 6 * params + 12 * 1 * 8 * 4
