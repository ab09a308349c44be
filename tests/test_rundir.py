"""Run-folder guarantees: one writer, replacements swapped in whole, debris cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import RunDirError
from zoo.store.rundir import RunLock, Staging, clean_stale, lock_path, status
from zoo.store.rundir import write_marker

HOLD = """
import sys, time
from zoo.store.rundir import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "runs" / "a"
    proc = _hold_lock(run)
    try:
        with pytest.raises(RunDirError, match=rf"in use by process {proc.pid} "):
            RunLock(run).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_lock_dies_with_its_process_even_under_kill_9(tmp_path):
    run = tmp_path / "a"
    proc = _hold_lock(run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with RunLock(run):  # free again at once
        assert lock_path(run).read_text().split("\n")[0] == str(os.getpid())


def test_lock_is_released_on_exit_and_reacquirable(tmp_path):
    run = tmp_path / "a"
    with RunLock(run):
        pass
    with RunLock(run):
        pass


def test_lock_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="cannot create a run folder"):
        RunLock(tmp_path / "file" / "run").acquire()


def _run(folder: Path, *, checkpoint: bool = True) -> Path:
    folder.mkdir(parents=True)
    write_marker(folder)
    (folder / "config.toml").write_text("entry = 'x'\n")
    if checkpoint:
        (folder / "checkpoint.safetensors").write_bytes(b"old weights")
    return folder


def test_status_tells_runs_incomplete_runs_and_other_files(tmp_path):
    assert status(tmp_path / "missing") == ("none", [])
    assert status(_run(tmp_path / "r")) == ("run", [])
    assert status(_run(tmp_path / "i", checkpoint=False)) == ("incomplete", [])
    other = tmp_path / "o"
    other.mkdir()
    (other / "notes.md").write_text("mine")
    (other / ".model.safetensors.x.tmp").write_text("debris")  # hidden files do not count
    assert status(other) == ("none", ["notes.md"])
    (other / "outputs.test.jsonl").write_text("{}\n")
    assert status(other) == ("foreign", ["notes.md"])  # named like a run's files, but nothing says zoo wrote them
    write_marker(other)
    assert status(other) == ("incomplete", ["notes.md"])


def test_staging_commit_replaces_the_run_and_abort_keeps_it(tmp_path):
    run = _run(tmp_path / "a")
    staging = Staging(run)
    staging.create()
    staging.abort()
    assert (run / "checkpoint.safetensors").read_bytes() == b"old weights"
    new = Staging(run).create()
    (new / "checkpoint.safetensors").write_bytes(b"new weights")
    assert (run / "checkpoint.safetensors").read_bytes() == b"old weights"  # untouched until commit
    Staging(run).commit()
    assert (run / "checkpoint.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_clean_stale_removes_debris_and_restores_a_run_cut_mid_swap(tmp_path):
    run = _run(tmp_path / "a")
    (run / ".checkpoint.safetensors.abc.tmp").write_bytes(b"half")
    dead = tmp_path / ".a.new-999999"
    dead.mkdir()
    (dead / "config.toml").write_text("new")
    removed = clean_stale(run)
    assert {p.name for p in removed} == {".checkpoint.safetensors.abc.tmp", ".a.new-999999"}
    assert not dead.exists() and sorted(p.name for p in run.iterdir()) == [".zoo-run", "checkpoint.safetensors", "config.toml"]
    run.rename(tmp_path / ".a.old-999999")  # killed after the first rename of a swap
    clean_stale(run)
    assert (run / "checkpoint.safetensors").read_bytes() == b"old weights"
    assert not (tmp_path / ".a.old-999999").exists()


def test_a_killed_replacement_leaves_the_earlier_run_whole(tmp_path):
    run = _run(tmp_path / "a")
    code = (
        "import sys, os, time\nfrom pathlib import Path\nfrom zoo.store.rundir import RunLock, Staging\n"
        "run = Path(sys.argv[1]); RunLock(run).acquire(); s = Staging(run); p = s.create()\n"
        "(p / 'config.toml').write_text('new'); print('building', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            lock = RunLock(run).acquire()
            break
        except RunDirError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    clean_stale(run)
    lock.release()
    assert (run / "checkpoint.safetensors").read_bytes() == b"old weights"
    assert (run / "config.toml").read_text() == "entry = 'x'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.lock", "a"]


def test_a_swap_carries_the_users_files_over_and_a_killed_one_gives_them_back(tmp_path):
    run = _run(tmp_path / "a")
    (run / "notes.txt").write_text("mine")
    new = Staging(run).create()
    (new / "checkpoint.safetensors").write_bytes(b"new weights")
    Staging(run).commit()
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "checkpoint.safetensors").read_bytes() == b"new weights"
    # killed after the user's file moved into the staging folder, before the folders swapped
    staging = Staging(run).create()
    (run / "notes.txt").rename(staging / "notes.txt")
    clean_stale(run)
    assert (run / "notes.txt").read_text() == "mine" and not staging.exists()
