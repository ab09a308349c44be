"""ONNX export of zoo's GPT (with a key/value cache) and of the seq2py encoder-decoder, run in onnxruntime."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import zoo
from zoo import api
from zoo.interop import export_onnx

pytest.importorskip("onnx", reason="the onnx extra (pip install 'zoo[onnx]') is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'zoo[onnx]') is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

TOL = 1e-4  # fp32: onnxruntime's logits / log-probabilities against zoo's forward
QUICK = {"progress": False, "threads": 1}


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt")
    corpus = tmp / "corpus.txt"
    corpus.write_text("the cat sat on the mat; the dog ate the hat.\n" * 40, encoding="utf-8")
    api.reset()
    zoo.train("text-gpt", {"dataset": {"files": [str(corpus)]},
                           "model": {"n_layer": 2, "n_head": 2, "n_embd": 16, "activation": "gelu_tanh"},
                           "task": {"block_size": 24, "eval_blocks": 4},
                           "train": {"epochs": 1, "steps_per_epoch": 20, "batch_size": 8, **QUICK},
                           "optim": {"lr": 1e-2, "warmup_steps": 0}}, out=tmp / "run")
    return tmp / "run"


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_gpt_block_logits_and_cached_greedy_decoding_match_zoo(gpt_run, tmp_path):
    lm = zoo.load(gpt_run)
    path = export_onnx(lm, tmp_path / "gpt.onnx")
    side = json.loads((tmp_path / "gpt.json").read_text())
    assert side["family"] == "gpt" and side["max_abs_diff"] <= TOL
    run = session(path)
    cfg = lm.model.config
    empty = np.zeros((cfg.n_layer, 2, cfg.n_head, 0, cfg.n_embd // cfg.n_head), dtype=np.float32)
    ids = torch.tensor([lm.tokenizers["text"].encode(t)[:16] for t in ("the cat sat on the mat", "a dog ate the hat")])
    logits, keys, values = run.run(None, {"ids": ids.numpy(), "past_keys": empty, "past_values": empty})
    with torch.no_grad():
        assert float((torch.from_numpy(logits) - lm.model(ids)).abs().max()) <= TOL
    assert keys.shape[3] == ids.shape[1]
    # greedy decoding one token at a time through the cache, with the shipped preprocessing (no zoo needed)
    pre = preprocessor(tmp_path)
    feeds, out = pre.gpt("the dog"), []
    for _ in range(12):
        logits, pk, pv = run.run(None, feeds)
        step = logits[0, -1].copy()
        step[pre.tok["text"].specials] = -np.inf  # zoo never writes a special id
        out.append(int(step.argmax()))
        feeds = {"ids": np.array([[out[-1]]]), "past_keys": pk, "past_values": pv}
    assert pre.tok["text"].decode(out) == lm.predict("the dog", temperature=0, max_new_tokens=12)["text"]


def preprocessor(folder):
    spec = importlib.util.spec_from_file_location("zoo_onnx_preprocess_gen", folder / "zoo_onnx_preprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Preprocessor(next(folder.glob("*.json")))


def test_gpt_with_an_imported_bpe_generates_through_the_preprocessing(tmp_path):
    pytest.importorskip("transformers", reason="the hf extra is not installed")
    from test_interop_gpt2 import gpt2_folder

    from zoo.interop import import_hf

    src, _ = gpt2_folder(tmp_path / "gpt2", activation_function="gelu_new")
    lm = zoo.load(import_hf(src, out=tmp_path / "run"))
    path = export_onnx(lm, tmp_path / "onnx" / "gpt2.onnx")
    pre, run = preprocessor(tmp_path / "onnx"), session(path)
    assert pre.tok["text"].specials == [0]  # the folder's <|endoftext|> stands for zoo's specials
    prompt = "The droghte of"
    feeds = pre.gpt(prompt)
    assert feeds["ids"][0].tolist() == lm.tokenizers["text"].encode(prompt)
    out = []
    for _ in range(10):
        logits, pk, pv = run.run(None, feeds)
        step = logits[0, -1].copy()
        step[pre.tok["text"].specials] = -np.inf
        out.append(int(step.argmax()))
        feeds = {"ids": np.array([[out[-1]]]), "past_keys": pk, "past_values": pv}
    assert pre.tok["text"].decode(out) == lm.predict(prompt, temperature=0, max_new_tokens=10)["text"]


def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"src": f"add {i} to `x`", "tgt": f"x + {i}"} for i in range(12)]
    rows += [{"src": f"print 'w{i}'", "tgt": f"print('w{i}')"} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_seq2py_encoder_and_decoder_step_decode_as_zoo(tmp_path):
    api.reset()
    zoo.train("seq2py-pairs", {"dataset": {"train_file": str(pairs(tmp_path))},
                               "model": {"d_model": 16, "n_head": 2, "d_ff": 32, "enc_layers": 1, "dec_layers": 2},
                               "task": {"beam": 1, "max_decode_len": 10, "vectors_epochs": 1},
                               "train": {"epochs": 2, "batch_size": 8, "freeze": {}, **QUICK}}, out=tmp_path / "run")
    lm = zoo.load(tmp_path / "run")
    assert lm.model.config.copy  # the pointer-generator's copy distribution is in the graph
    path = export_onnx(lm, tmp_path / "s2p.onnx")
    assert (tmp_path / "s2p.decoder.onnx").is_file()
    side = json.loads((tmp_path / "s2p.json").read_text())
    assert side["family"] == "seq2seq-transformer" and side["max_abs_diff"] <= TOL
    from zoo.interop import describe

    lines = describe(path)  # zoo info FILE.onnx
    assert "input decoder_step.past_keys: float32 (2 layers, batch, 2 heads, steps, 8): zeros of 0 steps first" in lines
    assert any(line.startswith("graphs: encoder s2p.onnx, decoder_step s2p.decoder.onnx") for line in lines)
    encoder, step = session(path), session(tmp_path / "s2p.decoder.onnx")
    src = torch.tensor([[5, 6, 7, 8, 9], [6, 5, 4, 0, 0]])
    src_ext = src.clone()
    with torch.no_grad():
        want = lm.model.greedy(src, src_ext, 8, bos_id=2, eos_id=3)
        memory = encoder.run(None, {"src": src.numpy()})[0]
        assert float((torch.from_numpy(memory) - lm.model.encode(src)[0]).abs().max()) <= TOL
    m = lm.model
    pk = pv = np.zeros((len(m.decoder), 2, m.config.n_head, 0, m.config.d_model // m.config.n_head), np.float32)
    ids, got, done = np.array([2, 2]), [[], []], [False, False]
    for _ in range(8):
        logp, pk, pv = step.run(None, {"ids": ids, "src": src.numpy(), "src_ext": src_ext.numpy(), "memory": memory,
                                       "past_keys": pk, "past_values": pv})
        ids = logp.argmax(-1)
        for i in range(2):
            done[i] = done[i] or int(ids[i]) == 3
            if not done[i]:
                got[i].append(int(ids[i]))
    assert got == want
