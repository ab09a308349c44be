"""Never delete or overwrite what zoo did not write (issue 26): the user's folders, links, devices and pipes.

Every case was first reproduced on a throwaway folder: ``zoo train --out`` replacing a project
folder (its ``.git`` and ``.env`` deleted), ``zoo export --format hf --force`` deleting a whole
folder, ``--format onnx`` overwriting a sidecar, atomic writes turning FIFOs and symlinks into plain
files, ``predict --output`` replacing a run's model, ``--out .`` and ``--output DIR`` failing after
the work. Each test fails on the code before the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

import zoo
from zoo import api
from zoo.errors import ZooError

from conftest import ROOT, TINY_SUBSEQ_SETS

REVIEWS = str(ROOT / "examples" / "text_classification" / "reviews.csv")
QUICK = {"progress": False, "threads": 1}
TRAIN = ["train", "subseq-gru", *[a for s in TINY_SUBSEQ_SETS for a in ("--set", s)], "--set", "train.epochs=1",
         "--set", "train.progress=false"]


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (dotfiles included) -> its sha256; a link -> where it points."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def error_line(result) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (OSError, TypeError)), result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def project(folder: Path) -> Path:
    """A user's folder that happens to hold files named like a run's: a project, say."""
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / ".env").write_text("SECRET=1\n")
    (folder / "README.md").write_text("# my project\n")
    (folder / "config.toml").write_text("[tool]\nname = 'mine'\n")
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    api.reset()
    out = tmp_path_factory.mktemp("cls") / "run"
    zoo.train("text-rnn", {"dataset": {"train_file": REVIEWS, "val_fraction": 0.25},
                           "tokenizer": {"text": {"min_freq": 1}}, "model": {"hidden": 8, "emb_dim": 8},
                           "task": {"max_len": 8}, "train": {"epochs": 1, "batch_size": 4, **QUICK}}, out=out)
    api.reset()
    return out


# --- zoo train --out ----------------------------------------------------------------------------------

def test_train_refuses_a_project_folder_it_did_not_write(cli, tmp_path):
    folder = project(tmp_path / "proj")
    before = tree(folder)
    result = cli(*TRAIN, "--out", str(folder))
    line = error_line(result)
    assert "README.md" in line and "config.toml" in line and "--force" in line
    assert tree(folder) == before  # .git, .env, README and config as they were
    assert not (folder / "model.safetensors").exists()


def test_train_refuses_a_runs_config_and_tokenizers_without_zoos_marker(cli, tmp_path):
    """A run's config.toml and tokenizers.json, copied by hand: nothing proves zoo wrote this folder."""
    folder = tmp_path / "copied"
    folder.mkdir()
    (folder / "config.toml").write_text('entry = "zoo_subseq:subseq-gru"\n')
    (folder / "tokenizers.json").write_text("{}")
    before = tree(folder)
    line = error_line(cli(*TRAIN, "--out", str(folder)))
    assert "tokenizers.json" in line and "--force" in line
    assert tree(folder) == before


def test_force_replaces_only_run_files_and_keeps_dotfiles_and_the_users_files(cli, tmp_path):
    folder = project(tmp_path / "proj")
    (folder / "notes.txt").write_text("mine\n")
    result = cli(*TRAIN, "--out", str(folder), "--force")
    assert result.exit_code == 0, result.output
    assert (folder / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (folder / ".env").read_text() == "SECRET=1\n" and (folder / "notes.txt").read_text() == "mine\n"
    assert (folder / "model.safetensors").is_file() and "subseq-gru" in (folder / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".proj.lock", "proj"]  # no staging folder left


def test_a_run_zoo_started_that_died_young_is_replaced_without_force_and_keeps_the_rest(cli, tmp_path):
    folder = tmp_path / "run"
    assert cli(*TRAIN, "--out", str(folder)).exit_code == 0
    for name in ("checkpoint.safetensors", "model.safetensors"):  # as if it died before its first checkpoint
        (folder / name).unlink()
    (folder / ".env").write_text("SECRET=1\n")
    result = cli(*TRAIN, "--out", str(folder))
    assert result.exit_code == 0, result.output
    assert (folder / "model.safetensors").is_file() and (folder / ".env").read_text() == "SECRET=1\n"


def test_a_swap_killed_midway_gives_back_dotfiles_and_folders(tmp_path):
    """Killed after the user's entries moved into the new run, before the folders swapped: the next
    command on the folder (clean_stale, under its lock) moves every one of them back."""
    from zoo.store.rundir import Staging, clean_stale

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("old")
    project(tmp_path / "mine")
    staging = Staging(run).create()
    (staging / "config.toml").write_text("new")
    for name in (".git", ".env", "README.md"):  # README.md is a run file's name: it stays with the run
        (tmp_path / "mine" / name).rename((staging if name != "README.md" else run) / name)
    clean_stale(run)
    assert (run / ".git" / "HEAD").is_file() and (run / ".env").read_text() == "SECRET=1\n"
    assert (run / "config.toml").read_text() == "old" and not staging.exists()


def test_train_refuses_to_swap_a_symlinked_run_folder(cli, tmp_path):
    real = tmp_path / "real"
    assert cli(*TRAIN, "--out", str(real)).exit_code == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    before = tree(real)
    line = error_line(cli(*TRAIN, "--out", str(link), "--force"))
    assert "symbolic link" in line and str(real) in line
    assert link.is_symlink() and tree(real) == before


def test_out_dot_is_checked_before_training(cli, tmp_path, monkeypatch):
    folder = tmp_path / "here"
    assert cli(*TRAIN, "--out", str(folder)).exit_code == 0
    before = tree(folder)
    monkeypatch.chdir(folder)
    result = cli(*TRAIN, "--out", ".", "--force")
    line = error_line(result)
    assert "epoch 1" not in result.output  # refused before any work
    assert "current folder" in line and "--out" in line
    assert tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".here.lock", "here"]


def test_out_dot_in_an_empty_folder_trains_there(cli, tmp_path, monkeypatch):
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    result = cli(*TRAIN, "--out", ".")
    assert result.exit_code == 0, result.output
    assert (folder / "model.safetensors").is_file()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".lock")]  # the lock lives beside the folder


# --- atomic writes ------------------------------------------------------------------------------------

def test_atomic_write_refuses_a_symlink_and_a_fifo_and_leaves_them(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("precious")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (link, fifo):
        with pytest.raises(ZooError, match="not a regular file"):
            zoo.atomic_write(path, "new")
    assert link.is_symlink() and target.read_text() == "precious"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "pipe", "real.txt"]  # no temporary left


# --- zoo predict --output -----------------------------------------------------------------------------

def test_predict_output_onto_a_folder_is_one_line_before_any_work(classifier, cli, tmp_path):
    folder = tmp_path / "outdir"
    folder.mkdir()
    line = error_line(cli("predict", str(classifier), "great film", "--output", str(folder)))
    assert str(folder) in line and "folder" in line
    assert list(folder.iterdir()) == []


def test_predict_output_never_replaces_a_runs_own_files(classifier, cli):
    for name in ("model.safetensors", "config.toml", "checkpoint.safetensors"):
        before = (classifier / name).read_bytes()
        line = error_line(cli("predict", str(classifier), "great film", "--output", str(classifier / name),
                              "--force"))
        assert name in line
        assert (classifier / name).read_bytes() == before


def test_eval_out_keeps_a_users_files_without_force(classifier, cli, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    mine = folder / "outputs.val.jsonl"
    mine.write_text("my own notes\n")
    line = error_line(cli("eval", str(classifier), "--split", "val", "--out", str(folder), "--device", "cpu"))
    assert "outputs.val.jsonl" in line and "--force" in line
    assert mine.read_text() == "my own notes\n" and not (folder / "metrics.val.json").exists()
    done = cli("eval", str(classifier), "--split", "val", "--out", str(folder), "--device", "cpu", "--force")
    assert done.exit_code == 0, done.output
    assert json.loads(mine.read_text().splitlines()[0])  # replaced by the records, on purpose
    assert json.loads((folder / "metrics.val.json").read_text())


def test_predict_output_refuses_a_symlink_and_an_existing_file_without_force(classifier, cli, tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("earlier\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    line = error_line(cli("predict", str(classifier), "great film", "--output", str(link), "--force"))
    assert "link" in line
    assert link.is_symlink() and target.read_text() == "earlier\n"
    line = error_line(cli("predict", str(classifier), "great film", "--output", str(target)))
    assert "--force" in line and target.read_text() == "earlier\n"
    result = cli("predict", str(classifier), "great film", "--output", str(target), "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["input"] == "great film"


def test_predict_output_writes_through_a_fifo(classifier, cli, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = cli("predict", str(classifier), "great film", "dull", "--output", str(fifo))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the pipe
    assert [json.loads(line)["input"] for line in got[0].decode().splitlines()] == ["great film", "dull"]


def test_predict_output_writes_through_a_character_device(classifier, cli, tmp_path):
    """/dev/null is written through, never replaced. The write goes through a link in tmp_path (like
    /dev/stdout, a link to a stream), so that a regression replaces that link, never the system's device."""
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    before = os.stat("/dev/null")
    result = cli("predict", str(classifier), "great film", "--output", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_rdev, after.st_ino) == (before.st_rdev, before.st_ino)
    from zoo.store.targets import STREAM, check_output_file

    assert check_output_file("/dev/null", force=False, streams=True) == STREAM  # the device itself: the same


# --- zoo export --format onnx / hf --------------------------------------------------------------------

def test_onnx_export_refuses_an_existing_sidecar_or_preprocess_module_without_force(classifier, cli, tmp_path):
    pytest.importorskip("onnx")
    sidecar = tmp_path / "model.json"
    sidecar.write_text("my own json\n")
    line = error_line(cli("export", str(classifier), "--format", "onnx", "--out", str(tmp_path / "model.onnx")))
    assert "model.json" in line and "--force" in line
    assert sidecar.read_text() == "my own json\n" and not (tmp_path / "model.onnx").exists()
    sidecar.unlink()
    pre = tmp_path / "zoo_onnx_preprocess.py"
    pre.write_text("# my edits\n")
    line = error_line(cli("export", str(classifier), "--format", "onnx", "--out", str(tmp_path / "model.onnx")))
    assert "zoo_onnx_preprocess.py" in line and "--force" in line
    assert pre.read_text() == "# my edits\n" and not (tmp_path / "model.onnx").exists()


def test_onnx_exports_share_an_unchanged_preprocess_module(classifier, cli, tmp_path):
    pytest.importorskip("onnx")
    for name in ("a.onnx", "b.onnx"):  # the second finds zoo's own module, identical: nothing to refuse
        result = cli("export", str(classifier), "--format", "onnx", "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
    assert {"a.onnx", "a.json", "b.onnx", "b.json", "zoo_onnx_preprocess.py"} <= {p.name for p in tmp_path.iterdir()}


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus") / "text.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    api.reset()
    out = tmp_path_factory.mktemp("gpt") / "run"
    zoo.train("text-gpt", {"dataset": {"files": [str(corpus)]},
                           "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0},
                           "task": {"block_size": 16, "eval_blocks": 2},
                           "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, **QUICK}}, out=out)
    api.reset()
    return out


def test_hf_export_force_replaces_only_the_exports_files(gpt_run, cli, tmp_path):
    folder = tmp_path / "hf"
    assert cli("export", str(gpt_run), "--format", "hf", "--out", str(folder)).exit_code == 0
    written = {p.name for p in folder.iterdir()}
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "notes.txt").write_text("mine\n")
    (folder / "config.json").write_text("{}")
    result = cli("export", str(gpt_run), "--format", "hf", "--out", str(folder), "--force")
    assert result.exit_code == 0, result.output
    assert (folder / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n" and (folder / "notes.txt").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "gpt2"
    assert {p.name for p in folder.iterdir()} == written | {".git", "notes.txt"}
    assert not [p.name for p in tmp_path.iterdir() if p.name != "hf"]  # no temporary folder left
    line = error_line(cli("export", str(gpt_run), "--format", "hf", "--out", str(folder)))
    assert "--force" in line and "config.json" in line  # an earlier export: --force replaces its files


def test_hf_export_into_a_folder_that_is_not_an_export_does_not_suggest_force(gpt_run, cli, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    line = error_line(cli("export", str(gpt_run), "--format", "hf", "--out", str(folder)))
    assert "--force" not in line and "config.json" in line
    line = error_line(cli("export", str(gpt_run), "--format", "hf", "--out", str(folder), "--force"))
    assert "config.json" in line
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
