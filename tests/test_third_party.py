"""The example third-party plugin, found through its entry point like any user's package."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys

import pytest

import zoo
from zoo.store import artifact
from conftest import ROOT

EXAMPLE = ROOT / "examples" / "zoo-lstm-seq2seq"


def _installed() -> None:
    try:
        md.distribution("zoo-lstm-seq2seq")
    except md.PackageNotFoundError:
        pytest.fail("the example plugin is not installed: run the tests with scripts/test.sh, which installs it")


def test_installed_plugin_is_listed_with_its_name_and_version(cli):
    _installed()
    plugins = cli("plugins")
    assert plugins.exit_code == 0, plugins.output
    assert "lstm 0.2.0: ok" in plugins.output
    assert "model:lstm-seq2seq" in plugins.output and "entry:subseq-lstm" in plugins.output
    listing = cli("list")
    assert "lstm:lstm-seq2seq" in listing.output and "lstm:subseq-lstm" in listing.output


def test_installed_plugin_trains_end_to_end(cli, tmp_path):
    _installed()
    out = tmp_path / "run"
    result = cli("train", "subseq-lstm", "--out", str(out), "--set", "dataset.train_size=1000",
                 "--set", "dataset.val_size=100", "--set", "dataset.test_size=100", "--set", "train.epochs=1",
                 "--set", "model.hidden=32", "--set", "model.emb_dim=16")
    assert result.exit_code == 0, result.output
    meta = artifact.read_metadata(out / "model.safetensors")
    assert meta["model"] == "lstm:lstm-seq2seq" and meta["plugin"] == "lstm" and meta["plugin_version"] == "0.2.0"
    assert meta["entry"] == "lstm:subseq-lstm"
    loaded = zoo.load(out / "model.safetensors")
    assert type(loaded.model).__name__ == "LSTMSeq2Seq"


def test_plugin_command_is_added_to_the_cli(cli):
    _installed()
    result = cli("lstm-hello")
    assert result.exit_code == 0 and "lstm:subseq-lstm" in result.output


def test_discovery_in_a_throwaway_install(tmp_path):
    """Install the plugin into a fresh folder and put only that on the path of a new process."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = dict(os.environ, PYTHONPATH=str(target), ZOO_PLUGINS="lstm,seq2seq,subseq,tokenizers")
    # PYTHONPATH comes before site-packages, so this copy wins over one installed in the venv
    code = ("import zoo\n"
            "info = zoo.plugin_state().plugins['lstm']\n"
            "print(info.status, info.version, info.module, zoo.list_models('lstm*'))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:3] == ["ok", "0.2.0", "zoo_lstm_seq2seq"]
    assert "lstm:lstm-seq2seq" in proc.stdout
    assert str(target) in subprocess.run(
        [sys.executable, "-c", "import zoo_lstm_seq2seq, sys; print(zoo_lstm_seq2seq.__file__)"],
        capture_output=True, text=True, env=env, timeout=60).stdout


def test_core_does_not_know_the_plugin_by_name():
    """The core finds plugins only through entry points: no module of zoo/ names a plugin package."""
    for path in (ROOT / "zoo").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("zoo_lstm_seq2seq", "zoo_seq2seq", "zoo_subseq", "zoo_tokenizers"):
            assert name not in text, f"{path} mentions plugin package {name}"
