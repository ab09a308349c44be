"""Nothing lost when things go wrong: kill -9 and resume, concurrent commands, diverging
runs, failed replacements, runs that died young, exports onto files that matter.

These start real ``zoo`` processes, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import TINY_SUBSEQ_SETS
from zoo.store.artifact import read_metadata

ZOO = [sys.executable, "-m", "zoo"]
# about 4 epochs of a few steps each: long enough to kill in the middle, short enough for CI
EPOCHS_SETS = [s for s in TINY_SUBSEQ_SETS if not s.startswith("train.epochs")] + [
    "train.epochs=4", "train.steps_per_epoch=6", "train.progress=false"]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def zoo_run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*ZOO, *args], capture_output=True, text=True, env=_env(), timeout=timeout)


def zoo_start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*ZOO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def folder_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run: the weights every interrupted one must reach (and how long it takes)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    t0 = time.monotonic()
    proc = zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (out.parent / "wall_s").write_text(str(time.monotonic() - t0))
    return out


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_reaches_the_same_weights(straight, tmp_path):
    rng = random.Random(2024)
    out = tmp_path / "run"
    wall = float((straight.parent / "wall_s").read_text())  # start-up included: kills land anywhere in a run
    kills = 0
    for attempt in range(12):
        state = "run" if (out / "checkpoint.safetensors").exists() else "fresh"
        args = ["train", "--resume", str(out)] if state == "run" else ["train", "subseq-gru", *_sets(EPOCHS_SETS),
                                                                          "--out", str(out)]
        proc = zoo_start(*args)
        if kills < 4:
            time.sleep(rng.uniform(0.3, 0.95) * wall)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=240)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    else:
        pytest.fail("the run never completed")
    assert kills >= 1
    want, got = load_file(str(straight / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert want.keys() == got.keys()
    assert all((want[k] == got[k]).all() for k in want), "resumed weights differ from the uninterrupted run"
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    assert not [p.name for p in out.parent.rglob(".*") if p.name.endswith(".tmp") or ".new-" in p.name]


@pytest.mark.slow
def test_two_trains_into_one_folder_one_wins_the_other_is_told_who_holds_it(tmp_path):
    out = tmp_path / "same"
    procs = [zoo_start("train", "subseq-gru", *_sets(EPOCHS_SETS), "--set", f"train.seed={seed}", "--out", str(out))
             for seed in (0, 1)]
    results = [(p, *p.communicate(timeout=240)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 1], [err for _, _, err in results]
    loser = next(err for p, _, err in results if p.returncode == 1)
    line = one_line_error(loser)
    assert "in use by process" in line or "already holds a run" in line
    seed = read_metadata(out / "model.safetensors")["config"]["train"]["seed"]  # every file from the same run
    assert f"seed = {seed}\n" in (out / "config.toml").read_text()
    assert json.loads((out / "metrics.json").read_text()) == read_metadata(out / "model.safetensors")["metrics"]


@pytest.mark.slow
def test_a_second_resume_of_a_running_run_is_refused(straight, tmp_path):
    out = tmp_path / "run"
    proc = zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--out", str(out))
    assert proc.returncode == 0
    first = zoo_start("train", "--resume", str(out), "--set", "train.epochs=1000")
    lock = tmp_path / ".run.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().startswith(f"{first.pid}\n")):  # the first holds the folder
        assert first.poll() is None and time.monotonic() < deadline, "the first resume never took the lock"
        time.sleep(0.05)
    second = zoo_run("train", "--resume", str(out), "--set", "train.epochs=1000")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert second.returncode == 1
    assert f"in use by process {first.pid}" in one_line_error(second.stderr)


def test_a_diverging_run_stops_at_the_step_with_an_error_and_ships_no_model(tmp_path):
    out = tmp_path / "run"
    proc = zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--set", "optim.name=sgd", "--set", "optim.lr=1e38",
                   "--set", "train.clip_norm=none", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert "not finite" in line and "step" in line and "learning rate" in line
    assert not (out / "model.safetensors").exists()


def test_a_failed_force_keeps_the_earlier_run_whole(straight, tmp_path):
    out = tmp_path / "run"
    zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--out", str(out))
    (out / "notes.txt").write_text("mine")
    before = folder_hash(out)
    proc = zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--set", "optim.name=sgd", "--set", "optim.lr=1e38",
                   "--set", "train.clip_norm=none", "--out", str(out), "--force")
    assert proc.returncode == 1
    assert folder_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]


def test_a_run_that_died_before_its_first_checkpoint_is_not_stuck(tmp_path):
    from zoo.store.rundir import write_marker

    out = tmp_path / "run"
    out.mkdir()
    write_marker(out)  # zoo's own folder: a run it started (a copy without the marker is refused: test_user_files)
    (out / "config.toml").write_text('entry = "zoo:subseq-gru"\n')
    (out / "tokenizers.json").write_text("{}")
    resume = zoo_run("train", "--resume", str(out))
    assert resume.returncode == 1
    line = one_line_error(resume.stderr)
    assert "before its first checkpoint" in line and f"--out {out}" in line
    fresh = zoo_run("train", "subseq-gru", *_sets(EPOCHS_SETS), "--set", "train.epochs=1", "--out", str(out))
    assert fresh.returncode == 0, fresh.stderr
    assert (out / "model.safetensors").is_file()


def test_export_refuses_existing_files_and_the_runs_own(straight, tmp_path):
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"precious")
    proc = zoo_run("export", str(straight), "--out", str(mine))
    assert proc.returncode == 1 and "--force" in one_line_error(proc.stderr)
    assert mine.read_bytes() == b"precious"
    for own in ("checkpoint.safetensors", "model.safetensors", "config.toml"):
        before = (straight / own).read_bytes()
        proc = zoo_run("export", str(straight), "--out", str(straight / own), "--force")
        assert proc.returncode in (1, 2) and own in one_line_error(proc.stderr)
        assert (straight / own).read_bytes() == before
    ok = zoo_run("export", str(straight), "--out", str(mine), "--force")
    assert ok.returncode == 0 and mine.read_bytes() != b"precious"


@pytest.mark.slow
def test_export_while_the_run_trains_on_writes_a_whole_artifact(straight, tmp_path):
    import shutil

    import zoo

    run = tmp_path / "run"
    shutil.copytree(straight, run)
    training = zoo_start("train", "--resume", str(run), "--set", "train.epochs=1000")
    try:
        time.sleep(3.0)
        out = tmp_path / "copy.safetensors"
        proc = zoo_run("export", str(run), "--out", str(out))
        assert training.poll() is None, "the resumed run ended before the export: the test proves nothing"
        assert proc.returncode == 0, proc.stderr
        assert zoo.load(out).metadata["entry"] == "seq2seq:subseq-gru"  # complete and loadable
    finally:
        training.send_signal(signal.SIGKILL)
        training.communicate()
