"""Bad values of every command-line option: exit 2 (or 1), one line naming the option or the
path, no traceback, and nothing already written changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

import zoo
from conftest import TINY_SUBSEQ, TINY_SUBSEQ_SETS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("opts") / "run"
    zoo.train("subseq-gru", TINY_SUBSEQ, out=out)
    return out


def folder_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _sets() -> list[str]:
    return [a for s in TINY_SUBSEQ_SETS for a in ("--set", s)]


# (arguments, after {run} is filled in; words the message must hold; exit code)
CASES = [
    (["eval", "{run}", "--batch-size", "-3"], ["--batch-size"], 2),
    (["eval", "{run}", "--batch-size", "0"], ["--batch-size"], 2),
    (["eval", "{run}", "--split", "nope"], ["nope"], 1),
    (["eval", "{run}", "--device", "tpu"], ["tpu"], 1),
    (["generate", "{run}", "--temperature", "nan"], ["--temperature", "not a finite number"], 2),
    (["generate", "{run}", "--temperature", "inf"], ["--temperature", "not a finite number"], 2),
    (["generate", "{run}", "--temperature", "-1"], ["--temperature"], 2),
    (["generate", "{run}", "--max-new-tokens", "-1"], ["--max-new-tokens"], 2),
    (["generate", "{run}", "--top-k", "0"], ["--top-k"], 2),
    (["export", "{run}", "--out", "{tmp}/x.safetensors", "--dtype", "int4"], ["--dtype"], 2),
    (["export", "{run}", "--out", "{tmp}/x", "--format", "zip"], ["--format"], 2),
    (["export", "{run}", "--out", "{run}/checkpoint.safetensors", "--force"], ["checkpoint.safetensors"], 1),
    (["export", "{run}", "--out", "{run}/config.toml", "--force"], ["config.toml"], 1),
    (["predict", "{run}", "--batch-size", "0"], ["--batch-size"], 2),
    (["predict", "{run}", "--temperature", "nan"], ["--temperature"], 2),
    (["train", "subseq-gru", "--nproc", "0", "--out", "{tmp}/n"], ["nproc"], 2),
    (["train", "subseq-gru", "--device", "tpu", "--out", "{tmp}/d"], ["tpu"], 1),
    (["train", "subseq-gru", "--set", "model.hidden", "--out", "{tmp}/s"], ["model.hidden"], 2),
    (["train", "subseq-gru", "--set", "nosuch.key=1", "--out", "{tmp}/s"], ["nosuch"], 2),
    (["train", "subseq-gru", "--config", "{tmp}/missing.toml", "--out", "{tmp}/c"], ["missing.toml"], 1),
    (["train", "--resume", "{tmp}/nothing"], ["nothing to resume"], 1),
    (["train", "subseq-gru", "--out", "{run}"], ["already holds a run", "--resume", "--force"], 1),
    (["train", "subseq-gru", "--out", "{run}/README.md/sub"], ["README.md"], 1),
    (["info", "{tmp}/no-such.safetensors"], ["no-such.safetensors"], 1),
]


@pytest.mark.parametrize("args, words, code", CASES, ids=[" ".join(c[0][:3]) + f" {c[0][-1]}" for c in CASES])
def test_bad_option_values_are_refused_in_one_line(cli, run, tmp_path, args, words, code):
    before = folder_hash(run)
    args = [a.format(run=run, tmp=tmp_path) for a in args]
    result = cli(*args)
    assert result.exit_code == code, result.output
    out = result.output
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    for word in words:
        assert word in errors[0], out
    assert folder_hash(run) == before


def test_a_config_file_that_is_not_utf8_names_the_file(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[model]\nhidden = \xff\n")
    result = cli("train", "subseq-gru", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "bad.toml" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_refused_before_training(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = cli("train", "subseq-gru", *_sets(), "--out", str(ro / "run"))
    finally:
        ro.chmod(0o755)
    assert result.exit_code == 1 and "cannot" in result.output and "Traceback" not in result.output


def test_evaluation_is_reproducible_run_to_run(run):
    first = zoo.evaluate(run, "test", device="cpu")
    assert all(zoo.evaluate(run, "test", device="cpu") == first for _ in range(3))


# --- checkpoints zoo did not write (or that were edited): one error naming the file ---------------

def _rewrite_checkpoint(path: Path, change) -> None:
    """Load the checkpoint's tensors and metadata, let ``change`` edit them, write it back."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = dict(fh.metadata())
    change(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


def _reshape_one(tensors, meta):
    key = next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])


def _drop_one(tensors, meta):
    del tensors[next(k for k, v in tensors.items() if v.ndim == 2)]


def _state_not_json(tensors, meta):
    meta["state"] = "{not json"


def _state_not_an_object(tensors, meta):
    meta["state"] = "[1, 2, 3]"


@pytest.mark.parametrize("change", [_reshape_one, _drop_one, _state_not_json, _state_not_an_object])
def test_a_checkpoint_that_does_not_fit_is_one_error_naming_it(cli, run, tmp_path, change):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    _rewrite_checkpoint(copy / "checkpoint.safetensors", change)
    before = folder_hash(copy)
    result = cli("train", "--resume", str(copy), "--set", "train.epochs=3")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "checkpoint.safetensors" in errors[0] and "Traceback" not in result.output
    assert folder_hash(copy) == before


def test_an_edited_config_that_no_longer_fits_the_checkpoint_is_named(cli, run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = copy / "config.toml"
    cfg.write_text(cfg.read_text().replace("hidden = 32", "hidden = 48"))
    result = cli("train", "--resume", str(copy), "--set", "train.epochs=3")
    assert result.exit_code == 1, result.output
    assert "checkpoint.safetensors" in result.output and "config.toml" in result.output
