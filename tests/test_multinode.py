"""Past one machine (issue 20): the same ``zoo train`` started on two torchrun "nodes" through c10d rendezvous.

Two torchrun agents on this machine stand for two machines: each has its own working
directory and run-folder path, one process, gloo. The run must reach the weights of a
two-process run on one machine, leave nothing on the node that is not global rank 0,
and continue with ``--resume`` when every node can read the run folder (here: a copy of it).

With c10d rendezvous torchrun ignores ``--node-rank``: it numbers the agents in the order of
their host names and process ids. The test therefore finds global rank 0 by what it prints
(only rank 0 prints the epochs and the artifact) rather than assuming it from the flag.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.store.checkpoint import CHECKPOINT, load_checkpoint

from conftest import zoo_on_cores

pytestmark = pytest.mark.slow

# Tiny subseq-gru as tests/test_ddp.py trains it: an odd last batch (241 rows) that two ranks split
# 9 / 8, gradient accumulation with a partial last group, an encoder frozen in epoch 1.
SETS = ["dataset.train_size=241", "dataset.val_size=64", "dataset.test_size=64", "model.emb_dim=8",
        "model.hidden=16", "train.epochs=2", "train.batch_size=32", "train.eval_batch_size=64", "train.threads=1",
        "train.progress=false", "train.grad_accum=3", "train.freeze.encoder=1", "optim.lr=0.01",
        "optim.warmup_steps=0", "train.early_stopping=val_loss"]  # the artifact follows the falling val loss
TRAIN = ["train", "subseq-gru", *[a for s in SETS for a in ("--set", s)]]
MORE = ["--set", "train.epochs=3"]  # what the resumed runs add
TIMEOUT_S = 120  # one launch; the rendezvous itself gives up after JOIN_TIMEOUT_S
JOIN_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def node_cmd(node_rank: int, port: int, zoo_args: list[str], backend: str) -> list[str]:
    if backend == "c10d":
        rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"zoo-test-{port}",
                "--rdzv-conf", f"join_timeout={JOIN_TIMEOUT_S}"]
    else:
        rdzv = ["--rdzv-backend", "static", "--master-addr", "127.0.0.1", "--master-port", str(port)]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node_rank),
            "--nproc-per-node", "1", *rdzv, "--max-restarts", "0", "-m", "zoo", *zoo_args]


def run_nodes(cwds: list[Path], args_of: list[list[str]], backend: str = "c10d",
              order: tuple[int, int] = (0, 1)) -> list[subprocess.CompletedProcess]:
    """Start one torchrun agent per node (in ``order``), each in its own cwd and process group; wait for both.

    Their output goes to files beside the nodes' folders (a full pipe would stall a rank, and with it
    the other). A node still running after TIMEOUT_S is killed with its whole group.
    """
    port = free_port()
    logs = cwds[0].parent / f"logs-{port}"
    logs.mkdir()
    procs: dict[int, subprocess.Popen] = {}
    try:
        for rank in order:
            with open(logs / f"{rank}.out", "w") as out, open(logs / f"{rank}.err", "w") as err:
                procs[rank] = subprocess.Popen(node_cmd(rank, port, args_of[rank], backend), cwd=cwds[rank],
                                               env=env(), stdout=out, stderr=err, start_new_session=True)
            time.sleep(0.5)  # the first agent started takes the lower process id
        deadline = time.monotonic() + TIMEOUT_S
        for p in procs.values():
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the nodes did not finish in {TIMEOUT_S} s:\n" + "\n".join(
            f"node {r}: {(logs / f'{r}.err').read_text()[-1500:]}" for r in sorted(procs)))
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return [subprocess.CompletedProcess(procs[r].args, procs[r].returncode, (logs / f"{r}.out").read_text(),
                                        (logs / f"{r}.err").read_text()) for r in (0, 1)]


def run_one_machine(cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*zoo_on_cores(2), *args, "--nproc", "2"], cwd=cwd, env=env(), text=True,
                          capture_output=True, timeout=TIMEOUT_S)


def check_ok(*results: subprocess.CompletedProcess) -> None:
    for r in results:
        assert r.returncode == 0, f"{r.args}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def writer(results: list[subprocess.CompletedProcess], outs: list[Path]) -> int:
    """The node that was global rank 0: the only one that printed its epochs and its artifact."""
    spoke = [i for i, r in enumerate(results) if f"model: {outs[i] / 'model.safetensors'}" in r.stdout]
    assert len(spoke) == 1, [r.stdout for r in results]
    assert all("epoch 1:" not in r.stdout for i, r in enumerate(results) if i != spoke[0])
    return spoke[0]


def assert_same_weights(a: Path, b: Path) -> None:
    """The same artifact, and the same last weights in the checkpoint that --resume continues from."""
    pairs = [(load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))),
             (load_checkpoint(a / CHECKPOINT)["model"], load_checkpoint(b / CHECKPOINT)["model"])]
    for wa, wb in pairs:
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6, msg=k)


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its content hash and modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_nodes_train_like_one_machine_rank_0_alone_writes_and_resume_works(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for n in nodes:
        n.mkdir()
    outs = [n / "run" for n in nodes]  # absolute, and different: a node that wrote anything would show

    # the same command on one machine in two processes, and on two "machines" in one process each
    single = run_one_machine(one, [*TRAIN, "--out", str(one / "run")])
    both = run_nodes(nodes, [[*TRAIN, "--out", str(out)] for out in outs])
    check_ok(single, *both)
    w = writer(both, outs)
    other = 1 - w
    assert_same_weights(one / "run", outs[w])
    assert [r["val_loss"] for r in history(outs[w])] == pytest.approx([r["val_loss"] for r in history(one / "run")],
                                                                       rel=1e-5)
    assert history(outs[w])[-1]["val_loss"] < history(outs[w])[0]["val_loss"]  # it learned: equal weights say more
    # global rank 0 wrote the whole run folder; the other node's working directory and out path got nothing
    assert sorted(p.name for p in outs[w].iterdir()) == sorted(p.name for p in (one / "run").iterdir())
    assert list(nodes[other].iterdir()) == []

    # --resume: every rank reads the run's config, tokenizers and checkpoint, so the other node gets a copy
    # of the run folder (as a shared filesystem would give it); rank 0 alone writes, into its own
    shutil.copytree(outs[w], outs[other])
    before = [snapshot(n) for n in nodes]
    single = run_one_machine(one, ["train", "--resume", str(one / "run"), *MORE])
    both = run_nodes(nodes, [["train", "--resume", str(out), *MORE] for out in outs])
    check_ok(single, *both)
    w = writer(both, outs)  # the same agents started in the same order: node 0 again, but the test need not care
    assert load_checkpoint(outs[w] / CHECKPOINT)["trainer"]["epoch"] == 3
    assert [r["epoch"] for r in history(outs[w])] == [1, 2, 3]
    assert_same_weights(one / "run", outs[w])
    assert snapshot(nodes[1 - w]) == before[1 - w]  # read, never written


def test_static_rendezvous_makes_node_rank_0_the_writer_whatever_starts_first(tmp_path):
    """What the README advises when the run folder should be on one chosen machine: --node-rank counts there."""
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    for n in nodes:
        n.mkdir()
    outs = [n / "run" for n in nodes]
    args = [*TRAIN, "--set", "train.epochs=1"]
    both = run_nodes(nodes, [[*args, "--out", str(out)] for out in outs], backend="static", order=(1, 0))
    check_ok(*both)
    assert writer(both, outs) == 0
    assert (outs[0] / "model.safetensors").is_file()
    assert list(nodes[1].iterdir()) == []
