"""int8: zoo export --dtype int8 (int8 weights + scales in safetensors, torch dynamic quantization on load)
and zoo export --format onnx --quantize int8 (onnxruntime dynamic quantization)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo import api

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"progress": False, "threads": 1}
REVIEWS = str(ROOT / "examples" / "text_classification" / "reviews.csv")
TEXTS = ["A warm, funny film!", "Dull. DULL.", "Loved it " * 10, "great"]


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt")
    corpus = tmp / "corpus.txt"
    corpus.write_text("the cat sat on the mat; the dog ate the hat.\n" * 40, encoding="utf-8")
    api.reset()
    zoo.train("text-gpt", {"dataset": {"files": [str(corpus)]},
                           "model": {"n_layer": 2, "n_head": 2, "n_embd": 64},
                           "task": {"block_size": 24, "eval_blocks": 4},
                           "train": {"epochs": 1, "steps_per_epoch": 30, "batch_size": 8, **QUICK},
                           "optim": {"lr": 1e-2, "warmup_steps": 0}}, out=tmp / "run")
    return tmp / "run", corpus


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "run"
    api.reset()
    zoo.train("text-rnn", {"dataset": {"train_file": REVIEWS, "val_fraction": 0.25},
                           "tokenizer": {"text": {"min_freq": 1}},
                           "model": {"cell": "lstm", "packed": True, "hidden": 32, "emb_dim": 16},
                           "task": {"max_len": 16}, "train": {"epochs": 2, "batch_size": 4, **QUICK}}, out=out)
    return out


def test_int8_gpt_artifact_is_smaller_stores_int8_and_predicts_like_float32(gpt_run, tmp_path):
    from safetensors import safe_open

    run, corpus = gpt_run
    out = api.export(run, tmp_path / "gpt.int8.safetensors", "int8")
    assert out.stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    with safe_open(str(out), "pt") as fh:
        assert fh.get_tensor("transformer.h.0.mlp.c_fc.weight").dtype == torch.int8
        assert fh.get_tensor("int8_scale.transformer.h.0.mlp.c_fc.weight").dtype == torch.float32
        assert fh.get_tensor("transformer.wte.weight").dtype == torch.float32  # tied to the head: float32
        assert fh.metadata()["weights"] == "int8"
    f32, i8 = zoo.load(run), zoo.load(out)
    assert "quantized" in type(i8.model.transformer.h[0].attn.c_attn).__module__  # torch's int8 kernels
    x = torch.tensor([f32.tokenizers["text"].encode("the cat sat on the mat")])
    with torch.no_grad():
        want, got = f32.model(x), i8.model(x)
    assert float((want - got).abs().max()) < 0.05 * float(want.abs().max())
    assert float((want.argmax(-1) == got.argmax(-1)).float().mean()) >= 0.9
    text = i8.predict("the cat", temperature=0, max_new_tokens=10)["text"]  # the cached decode path, int8
    assert len(text) == 10
    loss32 = zoo.evaluate(run, device="cpu", dataset={"files": [str(corpus)]})["loss"]
    loss8 = zoo.evaluate(out, device="cpu", dataset={"files": [str(corpus)]})["loss"]
    assert abs(loss8 - loss32) < 0.05 * loss32


def test_int8_lstm_classifier_gives_float32_labels(lstm_run, tmp_path):
    out = api.export(lstm_run, tmp_path / "cls.int8.safetensors", "int8")
    f32, i8 = zoo.load(lstm_run), zoo.load(out)
    assert any("quantized" in type(m).__module__ and "LSTM" in type(m).__name__ for m in i8.model.modules())
    want, got = f32.predict(TEXTS), i8.predict(TEXTS)
    assert [r["label"] for r in got] == [r["label"] for r in want]
    for a, b in zip(want, got):
        pa = {r["label"]: r["probability"] for r in a["probabilities"]}
        pb = {r["label"]: r["probability"] for r in b["probabilities"]}
        assert max(abs(pa[k] - pb[k]) for k in pa) < 0.05


def test_int8_refusals(gpt_run, lstm_run, tmp_path, cli):
    run, _ = gpt_run
    out = api.export(run, tmp_path / "gpt.int8.safetensors", "int8")
    with pytest.raises(zoo.ConfigError, match="int8 weights already"):
        api.export(out, tmp_path / "again.safetensors", "int8")
    from zoo.interop import export_hf

    with pytest.raises(zoo.ZooError, match="holds int8 weights"):
        export_hf(zoo.load(out), tmp_path / "hf")
    done = cli("export", str(run), "--out", str(tmp_path / "x.safetensors"), "--quantize", "int8")
    assert done.exit_code == 2 and "--dtype int8" in done.output
    done = cli("export", str(run), "--out", str(tmp_path / "hf"), "--format", "hf", "--quantize", "int8")
    assert done.exit_code == 2 and "--format onnx only" in done.output
    done = cli("export", str(lstm_run), "--out", str(tmp_path / "cli.int8.safetensors"), "--dtype", "int8")
    assert done.exit_code == 0, done.output
    assert zoo.load(tmp_path / "cli.int8.safetensors").predict(["great"])[0]["label"]
    done = cli("info", str(tmp_path / "cli.int8.safetensors"))
    assert done.exit_code == 0 and "weights: int8" in done.output


def test_onnx_int8_classifier_and_gpt(lstm_run, gpt_run, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from zoo.interop import export_onnx

    lm = zoo.load(lstm_run)
    f32 = export_onnx(lm, tmp_path / "f32" / "cls.onnx")
    i8 = export_onnx(lm, tmp_path / "i8" / "cls.onnx", quantize="int8")
    assert json.loads(i8.with_suffix(".json").read_text())["quantize"] == "int8"
    assert i8.stat().st_size < f32.stat().st_size
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [6, 7, 8, 0, 0, 0]])
    lengths = torch.tensor([6, 3])
    feeds = {"ids": ids.numpy(), "lengths": lengths.numpy()}
    got = ort.InferenceSession(str(i8), providers=["CPUExecutionProvider"]).run(["probabilities"], feeds)[0]
    with torch.no_grad():
        want = torch.softmax(lm.model(ids, lengths), -1)
    assert float((torch.from_numpy(got) - want).abs().max()) < 0.05
    gpt = zoo.load(gpt_run[0])
    path = export_onnx(gpt, tmp_path / "gpt" / "gpt.onnx", quantize="int8")
    cfg = gpt.model.config
    empty = torch.zeros(cfg.n_layer, 1, cfg.n_head, 0, cfg.n_embd // cfg.n_head).numpy()
    x = torch.tensor([gpt.tokenizers["text"].encode("the cat sat on the mat")])
    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"ids": x.numpy(), "past_keys": empty, "past_values": empty})[0]
    with torch.no_grad():
        want = gpt.model(x)
    assert float((torch.from_numpy(logits) - want).abs().max()) < 0.05 * float(want.abs().max())
