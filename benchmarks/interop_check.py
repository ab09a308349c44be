"""The interoperability paths on full-size trained entries: largest difference to zoo, side by side.

- ``--hf RUN`` (a GPT run): ``zoo export --format hf``, then transformers' logits on a validation
  text against zoo's, and the greedy continuations of both;
- ``--onnx RUN`` (a classifier or tagger): ``zoo export --format onnx``, then onnxruntime on inputs
  of mixed lengths (fed by the shipped ``zoo_onnx_preprocess.py``) against ``zoo.load(RUN).predict``.

- ``--gpt2-124m``: a randomly initialised ``GPT2LMHeadModel`` of GPT-2 124M's size (768 wide, 12 layers,
  12 heads, 1024 positions, 50,257 ids, ``gelu_new``) with a byte-level BPE of as many ids, built and
  saved locally (nothing is downloaded), then ``zoo import hf`` without a dataset: the largest
  difference of per-token log-likelihoods against transformers, and whether greedy text agrees.

    .venv/bin/python benchmarks/interop_check.py --hf runs/shakespeare-char-gpt --onnx runs/imdb-rnn \\
        --onnx runs/pos-transformer-char --gpt2-124m

Results: a table, and benchmarks/results/interop_check.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch

import zoo
from _common import table, write
from zoo.interop import export_hf, export_onnx

TEXTS = ["A warm, funny film; I loved every minute of it.", "Dull.",
         "The plot wanders, the acting is wooden and the score never stops telling you what to feel, "
         "yet the last twenty minutes are as good as anything this year."]
SENTENCES = ["He reckons the current account deficit will narrow to only # 1.8 billion in September .",
             "Rockwell said the agreement calls for it to supply 200 additional so-called shipsets .", "Yes ."]


def check_hf(run: Path, tmp: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    m = zoo.load(run)
    out = export_hf(m, tmp / f"hf-{run.name}")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    prompt, new = "ROMEO:\nWhat light", 40  # prompt and continuation within the 64-token context
    ids = torch.tensor([m.tokenizers["text"].encode(prompt)])
    with torch.no_grad():
        diff = (hf(ids).logits.float() - m.model(ids).float()).abs().max().item()
        greedy_hf = hf.generate(ids, do_sample=False, max_new_tokens=new, suppress_tokens=[0, 1, 2, 3])[0, ids.size(1):]
    greedy_zoo = m.predict(prompt, temperature=0, max_new_tokens=new)
    same = m.tokenizers["text"].decode(greedy_hf.tolist()) == greedy_zoo["text"]
    return {"entry": m.metadata["entry"], "path": "zoo -> transformers", "max_abs_diff": diff,
            "same_output": same, "inputs": 1}


def check_onnx(run: Path, tmp: Path) -> dict[str, Any]:
    import onnxruntime

    m = zoo.load(run)
    out = export_onnx(m, tmp / f"{run.name}.onnx")
    spec = importlib.util.spec_from_file_location("zoo_onnx_preprocess", out.parent / "zoo_onnx_preprocess.py")
    pre_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pre_mod)
    pre = pre_mod.Preprocessor(str(out.with_suffix(".json")))
    session = onnxruntime.InferenceSession(str(out))
    if "classification" in m.metadata["task"]:
        probs = session.run(["probabilities"], pre.classification(TEXTS))[0]
        want = [{r["label"]: r["probability"] for r in rec["probabilities"]} for rec in m.predict(TEXTS)]
        diff = max(abs(float(probs[i][j]) - want[i][label]) for i in range(len(TEXTS))
                   for j, label in enumerate(pre.labels))
        same = [pre.labels[int(p.argmax())] for p in probs] == [rec["label"] for rec in m.predict(TEXTS)]
        return {"entry": m.metadata["entry"], "path": "zoo -> onnxruntime", "max_abs_diff": diff,
                "same_output": same, "inputs": len(TEXTS)}
    feeds, counts = pre.tagging(SENTENCES)
    tags = pre.tag_labels(session.run(["tags"], feeds)[0], counts, SENTENCES)
    same = tags == [rec["tags"] for rec in m.predict(SENTENCES)]
    return {"entry": m.metadata["entry"], "path": "zoo -> onnxruntime", "max_abs_diff": None, "same_output": same,
            "inputs": len(SENTENCES)}


def gpt2_124m_folder(path: Path) -> Path:
    """GPT-2 124M's shapes, random weights, and a 50,257-id byte-level BPE (vocab.json + merges.txt)."""
    import json

    from tokenizers import pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel

    path.mkdir(parents=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    merges = []
    for a in alphabet:  # pairs of byte symbols, in a fixed order, up to 50,000 merges
        for b in alphabet:
            if len(vocab) == 50256:
                break
            merges.append(f"{a} {b}")
            vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = 50256
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(path)  # GPT2Config's defaults are GPT-2 124M's
    return path


def check_gpt2_124m(tmp: Path) -> dict[str, Any]:
    import time

    from transformers import GPT2LMHeadModel

    from zoo.interop import import_hf

    src = gpt2_124m_folder(tmp / "gpt2-124m")
    hf = GPT2LMHeadModel.from_pretrained(src).eval()
    start = time.perf_counter()
    run = import_hf(src, out=tmp / "gpt2-124m-run")
    seconds = time.perf_counter() - start
    m = zoo.load(run)
    text = TEXTS[2]
    ids = m.tokenizers["text"].encode(text)
    with torch.no_grad():
        def loglik(logits):
            return torch.log_softmax(logits[0, :-1].double(), -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]

        diff = (loglik(m.model(torch.tensor([ids]))) - loglik(hf(torch.tensor([ids])).logits)).abs().max().item()
        p = torch.tensor([ids[:8]])
        greedy_hf = hf.generate(p, do_sample=False, max_new_tokens=16, suppress_tokens=[50256],
                                pad_token_id=50256)[0, 8:].tolist()
    greedy_zoo = m.predict(m.tokenizers["text"].decode(ids[:8]), temperature=0, max_new_tokens=16)["text"]
    return {"entry": "gpt2-124m (random init)", "path": "transformers -> zoo", "inputs": len(ids),
            "max_abs_diff": diff, "same_output": m.tokenizers["text"].decode(greedy_hf) == greedy_zoo,
            "parameters": sum(p.numel() for p in m.model.parameters()), "import_seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", type=Path, action="append", default=[], help="a GPT run folder")
    ap.add_argument("--onnx", type=Path, action="append", default=[], help="a classifier or tagger run folder")
    ap.add_argument("--gpt2-124m", action="store_true", help="import a random GPT-2 124M-sized folder")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.hf:
            rows.append(check_hf(run, Path(tmp)))
        for run in args.onnx:
            rows.append(check_onnx(run, Path(tmp)))
        if args.gpt2_124m:
            rows.append(check_gpt2_124m(Path(tmp)))
    print(table(rows, ["entry", "path", "inputs", "max_abs_diff", "same_output"]))
    print(f"wrote {write('interop_check', {'rows': rows})}")


if __name__ == "__main__":
    main()
