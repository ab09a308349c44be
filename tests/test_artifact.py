"""The model.safetensors artifact: round trip, metadata, torch-free header reads, refusing mismatches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo import api
from zoo.build.prepare import build as build_run
from zoo.inference.load import export_built
from zoo.store.artifact import read_header, read_metadata
from zoo.config import build, merge
from zoo.errors import ArtifactError, DeviceError
from zoo.config.train import OptimConfig, TrainConfig
from zoo.training.evaluation import evaluate
from zoo.training.trainer import Trainer

from conftest import TINY_SUBSEQ

SMALL = merge(TINY_SUBSEQ, {
    "dataset": {"train_size": 256, "val_size": 64, "test_size": 64},
    "model": {"emb_dim": 8, "hidden": 16},
    "train": {"batch_size": 32, "eval_batch_size": 64, "threads": 1},
})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder made by zoo.train (read-only for the tests that use it)."""
    return zoo.train("subseq-gru", SMALL, out=tmp_path_factory.mktemp("artifact") / "run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained in this process, and the artifact zoo exports for it."""
    resolved = zoo.resolve_entry("subseq-gru", SMALL)
    built = build_run(resolved, None, None, ("train", "val", "test"))
    torch.manual_seed(0)
    model = resolved.cls("model")(resolved.configs["model"], **built.task.model_sizes())
    tcfg = build(TrainConfig, SMALL["train"], "train")
    Trainer(model, built.task, tcfg, OptimConfig()).fit(built.splits["train"], built.splits["val"])
    built.model = model.eval()
    metrics = {"test": evaluate(model, built.task, built.splits["test"], 64, torch.device("cpu"))}
    path = export_built(built, tmp_path_factory.mktemp("artifact") / "model.safetensors", metrics)
    return built, path


def as_json(data):
    return json.loads(json.dumps(data))  # tuples become lists, as in the file


def rewrite(src, dst, **meta_changes: str) -> None:
    """Copy an artifact with some raw metadata values replaced (weights unchanged)."""
    _, raw = read_header(src)
    save_file(load_file(str(src)), str(dst), metadata={**raw, **meta_changes})


def test_loaded_model_gives_the_same_outputs_as_the_trained_one(trained):
    built, path = trained
    lm = zoo.load(path)
    assert not lm.model.training
    batch = next(built.task.batches(built.splits["test"], 16, shuffle=False, seed=0))
    with torch.no_grad():
        want = built.model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        got = lm.model(batch["src"], batch["src_lengths"], batch["tgt_in"])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    t = batch["tgt_out"].size(1)
    assert torch.equal(lm.task.greedy(lm.model, batch, t), built.task.greedy(built.model, batch, t))
    # the tokenizers travel inside the file
    for role in ("src", "tgt"):
        assert lm.tokenizers[role].get_state() == built.tokenizers[role].get_state()
    text = "3 2 1 2 3 4 5 6 7 8"
    assert lm.tokenizers["src"].encode(text) == built.tokenizers["src"].encode(text)


def test_evaluating_the_artifact_reproduces_the_metrics_of_training(run):
    again = zoo.evaluate(run.artifact, "test", device="cpu")
    assert again == pytest.approx(run.metrics["test"], rel=1e-6, abs=1e-9)
    val = zoo.evaluate(run.run_dir, "val", device="cpu")  # a run folder works too
    assert set(val) == {"loss", "exact_match", "token_accuracy", "perplexity"}


def test_metadata_describes_the_model(run):
    meta = read_metadata(run.artifact)
    for key in ("entry", "model", "plugin", "plugin_version", "arch_version", "config", "tokenizers", "metrics",
                "zoo_version"):
        assert key in meta, key
    assert meta["format"] == "zoo-model"
    assert meta["entry"] == "seq2seq:subseq-gru"
    assert meta["model"] == "seq2seq:gru-seq2seq" and meta["plugin"] == "seq2seq"
    assert meta["plugin_version"] == zoo.plugin_state().plugins["seq2seq"].version != ""
    assert meta["arch_version"] == str(zoo.get_registry().get("model", "gru-seq2seq").load().arch_version)
    assert meta["zoo_version"] == zoo.__version__
    assert meta["config"] == as_json(zoo.resolve_entry("subseq-gru", SMALL).data)
    assert meta["tokenizers"]["src"]["name"] == "tokenizers:digits"
    assert meta["tokenizers"]["tgt"]["state"]["itos"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert meta["metrics"]["test"] == pytest.approx(run.metrics["test"])
    assert meta["reference"]["metric"] == "exact_match"
    _, raw = read_header(run.artifact)
    assert all(isinstance(v, str) for v in raw.values())  # a safetensors rule
    lm = zoo.load(run.artifact)
    assert as_json(lm.config) == meta["config"] and lm.metadata["entry"] == "seq2seq:subseq-gru"


def test_read_metadata_does_not_import_torch(run):
    code = ("import sys, json; from zoo.store.artifact import read_metadata; "
            f"m = read_metadata({str(run.artifact)!r}); "
            "print(json.dumps({'entry': m['entry'], 'torch': 'torch' in sys.modules, "
            "'safetensors': any(k.startswith('safetensors') for k in sys.modules)}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"entry": "seq2seq:subseq-gru", "torch": False, "safetensors": False}


def test_arch_version_mismatch_is_refused(run, monkeypatch):
    cls = zoo.get_registry().get("model", "gru-seq2seq").load()
    monkeypatch.setattr(cls, "arch_version", int(cls.arch_version) + 1)
    with pytest.raises(ArtifactError) as err:
        zoo.load(run.artifact)
    msg = str(err.value)
    assert str(run.artifact) in msg
    assert f"architecture version {cls.arch_version - 1}" in msg and str(cls.arch_version) in msg
    assert "retrain" in msg and "\n" not in msg


def test_zoo_major_version_mismatch_is_refused(run, tmp_path):
    old = tmp_path / "model.safetensors"
    rewrite(run.artifact, old, zoo_version="99.0.0")
    with pytest.raises(ArtifactError) as err:
        zoo.load(old)
    assert "99.0.0" in str(err.value) and zoo.__version__ in str(err.value)
    rewrite(run.artifact, old, zoo_version=f"{zoo.__version__.split('.')[0]}.999.0")  # same major: fine
    assert zoo.load(old).metadata["zoo_version"].endswith(".999.0")


def test_weights_that_do_not_fit_the_config_are_refused(run, tmp_path):
    meta = read_metadata(run.artifact)
    config = merge(meta["config"], {"model": {"hidden": 24}})
    bad = tmp_path / "model.safetensors"
    rewrite(run.artifact, bad, config=json.dumps(config))
    with pytest.raises(ArtifactError, match="weights do not fit model seq2seq:gru-seq2seq"):
        zoo.load(bad)


def test_artifact_of_a_missing_plugin_says_so(run, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "subseq,tokenizers")
    api.reset()
    with pytest.raises(ArtifactError) as err:
        zoo.load(run.artifact)
    assert "seq2seq" in str(err.value) and "plugin" in str(err.value)


def test_not_a_zoo_model(run, tmp_path):
    other = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ArtifactError, match="not a zoo model"):
        zoo.load(other)
    with pytest.raises(ArtifactError, match="not a zoo model"):
        zoo.load(run.run_dir / "checkpoint.safetensors")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_loading_onto_a_missing_device_is_refused(run):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        zoo.load(run.artifact, device="cuda")


def test_export_half_precision_keeps_metadata(run, tmp_path):
    out = zoo.export(run.artifact, tmp_path / "half.safetensors", "float16")
    tensors = load_file(str(out))
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    full = load_file(str(run.artifact))
    assert tensors.keys() == full.keys()
    for k, t in tensors.items():
        torch.testing.assert_close(t.float(), full[k], rtol=1e-3, atol=1e-4)
    meta, src_meta = read_metadata(out), read_metadata(run.artifact)
    for key in ("entry", "model", "config", "tokenizers", "metrics", "arch_version"):
        assert meta[key] == src_meta[key], key
    lm = zoo.load(out)
    assert next(lm.model.parameters()).dtype == torch.float32  # loaded into the usual float32 model
