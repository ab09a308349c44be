"""The ``zoo`` command line: every bad input is a one-line error with the right exit code that names what is
wrong and loses nothing already written; the happy paths print what a person needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import zoo
from zoo import api
from zoo.store.artifact import read_header
from zoo.errors import DataError

from conftest import TINY_SUBSEQ_SETS

# One thread: on a busy 2-core machine torch's default of two makes tiny runs many times slower.
TINY_SETS = [*TINY_SUBSEQ_SETS, "train.threads=1"]
SMALL_SETS = [*TINY_SETS, "dataset.train_size=256", "dataset.val_size=64", "dataset.test_size=64",
              "train.batch_size=32", "train.epochs=1"]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def error_line(result) -> str:
    """The error part of a failed command: one line, and no traceback or escaped exception."""
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a crash
    assert "Traceback" not in result.output
    out = result.output
    assert out.count("Error: ") == 1, out
    err = out[out.index("Error: "):].rstrip("\n")
    assert "\n" not in err, err
    return err


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``zoo train subseq-gru`` with the tiny settings, run once; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("cli") / "run"
    api.reset()
    from zoo.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["train", "subseq-gru", *sets(TINY_SETS), "--out", str(out)])
    api.reset()
    assert result.exit_code == 0, result.output
    return result, out


@pytest.fixture
def run_copy(trained, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained[1], out)
    return out


# --- happy paths ---------------------------------------------------------------------------------

def test_list_shows_every_kind(cli):
    result = cli("list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header, name in [("entries:", "seq2seq:subseq-gru"), ("models:", "seq2seq:gru-seq2seq"),
                         ("tokenizers:", "tokenizers:digits"), ("datasets:", "subseq:subseq"),
                         ("tasks:", "seq2seq:seq2seq")]:
        assert header in out and name in out
        assert out.index(header) < out.index(name)
    assert "GRU encoder-decoder copying" in out  # the summaries


def test_list_pattern(cli):
    result = cli("list", "gru*")
    assert result.exit_code == 0
    assert "seq2seq:gru-seq2seq" in result.stdout
    assert "subseq-gru" not in result.stdout and "digits" not in result.stdout and "lstm" not in result.stdout
    result = cli("list", "*subseq*")
    assert "seq2seq:subseq-gru" in result.stdout and "subseq:subseq" in result.stdout
    assert "gru-seq2seq" not in result.stdout
    result = cli("list", "no-such-thing*")
    assert result.exit_code == 0 and result.stdout == ""


def test_list_kind(cli):
    result = cli("list", "--kind", "model")
    assert result.exit_code == 0
    assert result.stdout.startswith("models:\n")
    assert "seq2seq:gru-seq2seq" in result.stdout
    assert "entries:" not in result.stdout and "seq2seq:subseq-gru" not in result.stdout
    assert "tokenizers:digits" not in result.stdout
    bad = cli("list", "--kind", "widget")
    assert bad.exit_code == 2 and "widget" in error_line(bad)


def test_info_entry(cli):
    result = cli("info", "subseq-gru")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "entry: seq2seq:subseq-gru" in out
    assert "model: gru-seq2seq" in out and "dataset: subseq" in out and "task: seq2seq" in out
    assert "command: zoo train subseq-gru" in out
    assert "0.986" in out and "exact_match" in out  # the reference result


def test_info_model_prints_its_config_defaults(cli):
    result = cli("info", "gru-seq2seq")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "model: seq2seq:gru-seq2seq" in out
    assert "config:" in out
    for line in ("model.hidden = 256", "model.layers = 3", "model.emb_dim = 128", "model.dropout = 0.5",
                 'model.attention = "none"', "model.bidirectional_encoder = false"):
        assert line in out, line


def test_info_artifact_reads_the_header(cli, trained):
    _, out_dir = trained
    for target in (out_dir / "model.safetensors", out_dir):
        result = cli("info", str(target))
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert f"file: {out_dir / 'model.safetensors'}" in out
        assert "entry: seq2seq:subseq-gru" in out and "model: seq2seq:gru-seq2seq" in out
        arch = zoo.get_registry().get("model", "gru-seq2seq").load().arch_version
        assert f"zoo_version: {zoo.__version__}" in out and f"arch_version: {arch}" in out
        assert "metrics: {" in out and '"exact_match"' in out and '"test"' in out
        n_values = sum(t.numel() for t in load_file(str(out_dir / "model.safetensors")).values())
        assert f"({n_values:,} values)" in out


def test_plugins(cli):
    result = cli("plugins")
    assert result.exit_code == 0
    for name in ("seq2seq", "subseq", "tokenizers", "zoo"):
        assert f"{name} {zoo.__version__}: ok" in result.stdout
    assert "registered: dataset:subseq" in result.stdout


def test_train_prints_progress_and_writes_the_run(trained):
    result, out_dir = trained
    out = result.stdout
    assert "epoch 1:" in out and "epoch 2:" in out and "train_loss=" in out and "val_exact_match=" in out
    assert "trained 2 epochs" in out
    assert "test: " in out and "exact_match=" in out
    assert f"model: {out_dir / 'model.safetensors'}" in out
    for name in ("config.toml", "metrics.jsonl", "loss.png", "model.safetensors", "README.md"):
        assert (out_dir / name).is_file()
    assert "train_size = 2000" in (out_dir / "config.toml").read_text()


def test_eval_and_export_half_precision(cli, trained, tmp_path):
    _, out_dir = trained
    result = cli("eval", str(out_dir / "model.safetensors"), "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    saved = json.loads((out_dir / "metrics.json").read_text())["test"]
    assert metrics == pytest.approx(saved)
    plain = cli("eval", str(out_dir), "--split", "val")
    assert plain.exit_code == 0 and "val exact_match: " in plain.stdout and "val loss: " in plain.stdout

    half = tmp_path / "half.safetensors"
    result = cli("export", str(out_dir / "model.safetensors"), "--out", str(half), "--dtype", "float16")
    assert result.exit_code == 0, result.output
    assert f"wrote {half}" in result.stdout
    assert {t.dtype for t in load_file(str(half)).values()} == {torch.float16}
    lm = zoo.load(half)
    assert lm.metadata["entry"] == "seq2seq:subseq-gru"
    again = zoo.evaluate(half, "test", device="cpu")
    assert again["exact_match"] == pytest.approx(metrics["exact_match"], abs=0.05)
    assert again["token_accuracy"] == pytest.approx(metrics["token_accuracy"], abs=0.05)
    assert again["loss"] == pytest.approx(metrics["loss"], rel=0.05)


def _no_torch_snippet(args: list[str]) -> str:
    return ("import sys\nfrom zoo.cli import main\n"
            f"try: main({args!r})\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH'); "
            "print(sorted(m for m in sys.modules if m.startswith('zoo_')))")


@pytest.mark.parametrize("args", [["list"], ["--help"], ["list", "--kind", "model"]])
def test_listing_imports_no_torch_and_no_model_code(args):
    proc = subprocess.run([sys.executable, "-c", _no_torch_snippet(args)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == "NOTORCH", proc.stdout
    modules = eval(lines[-1])  # noqa: S307 - our own print of a list of names
    assert "zoo_seq2seq" in modules  # plugins were loaded ...
    heavy = [m for m in modules if m.rsplit(".", 1)[-1] in ("gru", "task", "dataset", "digits", "model")]
    assert heavy == []  # ... but none of their model, task or dataset modules
    if args[0] == "list":
        assert "seq2seq:gru-seq2seq" in proc.stdout
    else:
        assert "train" in proc.stdout and "Commands:" in proc.stdout


# --- bad names and bad --set --------------------------------------------------------------------

def test_unknown_entry_suggests_the_close_one(cli, tmp_path):
    result = cli("train", "subseq-gur", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    err = error_line(result)
    assert "subseq-gur" in err and "did you mean" in err and "'subseq-gru'" in err
    assert not (tmp_path / "x").exists()


def test_unknown_name_in_info(cli):
    result = cli("info", "gru-seq2sq")
    assert result.exit_code == 2
    assert "gru-seq2sq" in error_line(result)


def test_info_suggests_a_close_model_name(cli):
    result = cli("info", "gru-seq2sq")
    err = error_line(result)
    assert "gru-seq2seq" in err


@pytest.mark.parametrize("args, exit_code, names", [
    (["--set", "model.nope=1"], 2, ["model.nope", "hidden"]),  # unknown key: the valid keys are listed
    (["--set", "model.hidden=abc"], 2, ["model.hidden", "int", "'abc'"]),
    (["--set", "model.hidden=1.5"], 2, ["model.hidden", "int"]),
    (["--set", "train.progress=1"], 2, ["train.progress", "bool"]),
    (["--set", "train.epochs"], 2, ["train.epochs", "KEY=VALUE"]),
    (["--set", "optim.name=lion"], 2, ["optim.name", "'adamw'"]),
    (["--set", "train.epochs=0"], 2, ["epochs must be >= 1"]),
    (["--set", "modle.hidden=3"], 2, ["modle"]),
    (["--set", "entry=imdb-rnn"], 2, ["entry='imdb-rnn'", "subseq-gru", "not a setting"]),  # no claiming another
    (["--config", "/nonexistent/over.toml"], 1, ["/nonexistent/over.toml", "cannot read"]),
])
def test_bad_settings(cli, tmp_path, args, exit_code, names):
    out = tmp_path / "x"
    result = cli("train", "subseq-gru", *args, "--out", str(out))
    assert result.exit_code == exit_code, result.output
    err = error_line(result)
    for text in names:
        assert text in err, (text, err)
    assert not out.exists()


def test_train_needs_an_entry_or_resume(cli):
    result = cli("train")
    assert result.exit_code == 2 and "ENTRY" in error_line(result)


# --- broken model files ----------------------------------------------------------------------------

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:40] = b"garbage!" * 4
    path.write_bytes(bytes(data))


def _not_safetensors(path: Path) -> None:
    path.write_text("this is not a model, only some text that happens to have the right name\n" * 5)


def _tiny(path: Path) -> None:
    path.write_bytes(b"\x01\x02")


@pytest.mark.parametrize("damage, words", [
    (_truncate, "truncated"),
    (_garble_header, "corrupt"),
    (_not_safetensors, "corrupt or truncated"),
    (_tiny, "not a safetensors file"),
])
@pytest.mark.parametrize("command", [["eval"], ["info"], ["export", "--out", "OUT"]])
def test_damaged_model_file_is_a_one_line_error(cli, run_copy, tmp_path, damage, words, command):
    model = run_copy / "model.safetensors"
    damage(model)
    before = files(run_copy)
    args = [a if a != "OUT" else str(tmp_path / "exported.safetensors") for a in command]
    result = cli(args[0], str(model), *args[1:])
    assert result.exit_code == 1, result.output
    err = error_line(result)
    assert str(model) in err and words in err
    assert files(run_copy) == before
    assert not (tmp_path / "exported.safetensors").exists()


def test_damaged_model_file_in_a_real_process(run_copy):
    model = run_copy / "model.safetensors"
    _truncate(model)
    proc = subprocess.run([sys.executable, "-m", "zoo", "info", str(model)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ") and "truncated" in proc.stderr


def test_missing_model_file(cli, tmp_path):
    result = cli("eval", str(tmp_path / "nothing.safetensors"))
    assert result.exit_code == 1
    assert "nothing.safetensors" in error_line(result)


def test_model_from_another_major_zoo_version_is_refused(cli, run_copy):
    model = run_copy / "model.safetensors"
    _, raw = read_header(model)
    save_file(load_file(str(model)), str(model), metadata={**raw, "zoo_version": "99.0.0"})
    before = files(run_copy)
    result = cli("eval", str(model))
    assert result.exit_code == 1, result.output
    err = error_line(result)
    assert "99.0.0" in err and zoo.__version__ in err
    info = cli("info", str(model))  # info only describes the file: it shows the version
    assert info.exit_code == 0 and "zoo_version: 99.0.0" in info.stdout
    assert files(run_copy) == before


def test_unknown_split(cli, trained):
    result = cli("eval", str(trained[1]), "--split", "dev")
    assert "'dev'" in error_line(result) and "train, val, test" in error_line(result)


def test_export_onto_its_source_is_refused(cli, run_copy):
    before = files(run_copy)
    result = cli("export", str(run_copy / "model.safetensors"), "--out", str(run_copy / "model.safetensors"))
    assert result.exit_code == 2 and "source" in error_line(result)
    assert files(run_copy) == before


def test_checkpoint_is_not_a_model(cli, trained):
    result = cli("eval", str(trained[1] / "checkpoint.safetensors"))
    assert result.exit_code == 1 and "not a zoo model" in error_line(result)


# --- data dir ------------------------------------------------------------------------------------

def test_data_dir_that_does_not_exist(monkeypatch, tmp_path):
    from zoo.sdk.files import data_dir

    with pytest.raises(DataError, match="--data-dir=/nonexistent: no such folder.*ZOO_DATA_DIR"):
        data_dir("/nonexistent")
    monkeypatch.setenv("ZOO_DATA_DIR", "/nonexistent")
    with pytest.raises(DataError, match="ZOO_DATA_DIR=/nonexistent: no such folder"):
        data_dir()
    assert data_dir(tmp_path) == tmp_path  # --data-dir wins over the variable
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert data_dir() is None


def test_train_with_a_missing_data_dir(cli, tmp_path, monkeypatch):
    out = tmp_path / "x"
    result = cli("train", "subseq-gru", "--data-dir", "/nonexistent", "--out", str(out))
    assert result.exit_code == 1
    err = error_line(result)
    assert "/nonexistent" in err and "ZOO_DATA_DIR" in err
    assert not out.exists()
    monkeypatch.setenv("ZOO_DATA_DIR", "/nonexistent")
    result = cli("train", "subseq-gru", "--out", str(out))
    assert result.exit_code == 1
    assert "ZOO_DATA_DIR=/nonexistent" in error_line(result)
    assert not out.exists()


def test_eval_with_a_missing_data_dir(cli, trained):
    result = cli("eval", str(trained[1]), "--data-dir", "/nonexistent")
    assert result.exit_code == 1 and "ZOO_DATA_DIR" in error_line(result)


# --- run folders ----------------------------------------------------------------------------------

def test_out_folder_holding_a_run_is_refused_and_kept(cli, run_copy):
    before = files(run_copy)
    result = cli("train", "subseq-gru", *sets(SMALL_SETS), "--out", str(run_copy))
    assert result.exit_code == 1
    err = error_line(result)
    assert str(run_copy) in err and "already holds a run" in err and "--force" in err and "--resume" in err
    assert files(run_copy) == before


def test_force_replaces_the_run(cli, run_copy):
    (run_copy / "notes.txt").write_text("mine")  # not a run file: kept
    result = cli("train", "subseq-gru", *sets(SMALL_SETS), "--out", str(run_copy), "--force")
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs" in result.stdout
    assert len((run_copy / "metrics.jsonl").read_text().splitlines()) == 1
    assert "train_size = 256" in (run_copy / "config.toml").read_text()
    assert zoo.load(run_copy).config["dataset"]["train_size"] == 256
    assert (run_copy / "notes.txt").read_text() == "mine"


@no_cuda
def test_force_that_fails_keeps_the_old_run(cli, run_copy):
    before = files(run_copy)
    result = cli("train", "subseq-gru", *sets(SMALL_SETS), "--out", str(run_copy), "--force", "--device", "cuda")
    assert result.exit_code == 1
    assert files(run_copy) == before


def test_resume_continues_the_run(cli, run_copy):
    old_lines = (run_copy / "metrics.jsonl").read_text().splitlines()
    result = cli("train", "--resume", str(run_copy), "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    assert "epoch 3:" in result.stdout and "epoch 1:" not in result.stdout
    assert "trained 3 epochs" in result.stdout
    lines = (run_copy / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and lines[:2] == old_lines
    assert json.loads(lines[2])["step"] == 3 * json.loads(lines[0])["step"]


def test_resume_may_not_change_the_model(cli, run_copy):
    before = files(run_copy)
    result = cli("train", "--resume", str(run_copy), "--set", "model.hidden=8")
    assert result.exit_code == 2
    assert "model" in error_line(result) and "train" in error_line(result)
    assert files(run_copy) == before


def test_resume_takes_no_entry_or_out(cli, run_copy):
    before = files(run_copy)
    result = cli("train", "subseq-gru", "--resume", str(run_copy))
    assert result.exit_code == 2 and "--resume" in error_line(result)
    assert files(run_copy) == before


@pytest.mark.parametrize("make", ["missing", "empty", "config-only"])
def test_resume_without_a_run(cli, tmp_path, make):
    d = tmp_path / "d"
    if make != "missing":
        d.mkdir()
    if make == "config-only":
        (d / "config.toml").write_text("[train]\nepochs = 1\n")
    before = files(d) if d.exists() else None
    result = cli("train", "--resume", str(d))
    assert result.exit_code == 1
    err = error_line(result)
    assert str(d) in err and "nothing to resume" in err
    assert (files(d) if d.exists() else None) == before


def test_resume_from_a_damaged_checkpoint_changes_nothing(cli, run_copy):
    _truncate(run_copy / "checkpoint.safetensors")
    before = files(run_copy)
    result = cli("train", "--resume", str(run_copy), "--set", "train.epochs=3")
    assert result.exit_code == 1
    assert "checkpoint.safetensors" in error_line(result)
    assert files(run_copy) == before


# --- devices -------------------------------------------------------------------------------------

@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_on_a_cpu_machine(cli, tmp_path, device):
    out = tmp_path / "x"
    result = cli("train", "subseq-gru", "--device", device, "--out", str(out))
    assert result.exit_code == 1
    err = error_line(result)
    assert device in err and "CUDA is not available" in err
    assert not out.exists()


@no_cuda
def test_cuda_for_eval_on_a_cpu_machine(cli, trained):
    result = cli("eval", str(trained[1]), "--device", "cuda")
    assert result.exit_code == 1 and "CUDA is not available" in error_line(result)


def test_unknown_device(cli, tmp_path):
    result = cli("train", "subseq-gru", "--device", "tpu", "--out", str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "tpu" in error_line(result)
