"""GPT-2-layout folders as transformers saves them, into zoo without a dataset: same likelihood, same text.

Every folder is built here: a random GPT2LMHeadModel (gelu_new, gelu, gelu_pytorch_tanh; another
LayerNorm epsilon; unscaled attention) and a byte-level BPE trained on a few lines, saved as
tokenizer.json or as GPT-2's vocab.json + merges.txt. Nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo import api
from zoo.interop import export_hf, import_hf

transformers = pytest.importorskip("transformers", reason="the hf extra (pip install 'zoo[hf]') is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOL = 1e-4  # log-likelihood per token, fp32, zoo against transformers
CORPUS = ("Whan that Aprille with his shoures soote\nThe droghte of March hath perced to the roote,\n"
          "And bathed every veyne in swich licour\nOf which vertu engendred is the flour;\n") * 15
TEXT = "The droghte of Aprille hath perced every veyne, and café <eos> flour!\n"  # unseen characters, a special's text


def gpt2_folder(path, *, vocab_files=False, **config):
    """A random GPT2LMHeadModel and a byte-level BPE with <|endoftext|> (id 0), saved as transformers does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if vocab_files:
        tok.model.save(str(path))  # vocab.json + merges.txt, as GPT-2 ships them
    else:
        tok.save(str(path / "tokenizer.json"))
    cfg = {"vocab_size": tok.get_vocab_size(), "n_positions": 64, "n_embd": 48, "n_layer": 2, "n_head": 3,
           "bos_token_id": 0, "eos_token_id": 0, **config}
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg))
    with torch.no_grad():  # larger weights than the init's, so that approximations would show
        for p in model.parameters():
            p.mul_(4.0)
    model.save_pretrained(path)
    return path, tok


def log_likelihood(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1, from logits (1, T, V)."""
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)
    return logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


CASES = {
    "gelu_new+tokenizer.json": ({"activation_function": "gelu_new"}, False),
    "gelu_new+vocab.json": ({"activation_function": "gelu_new"}, True),
    "gelu+vocab.json": ({"activation_function": "gelu"}, True),
    "gelu_pytorch_tanh+eps+unscaled": ({"activation_function": "gelu_pytorch_tanh", "layer_norm_epsilon": 1e-3,
                                        "scale_attn_weights": False}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_imported_gpt2_scores_and_writes_what_transformers_does(case, tmp_path):
    config, vocab_files = CASES[case]
    src, tok = gpt2_folder(tmp_path / "gpt2", vocab_files=vocab_files, **config)
    hf = transformers.GPT2LMHeadModel.from_pretrained(src).eval()
    run = import_hf(src, out=tmp_path / "run")  # no entry, no dataset
    lm = zoo.load(run)
    ids = tok.encode(TEXT).ids
    assert lm.tokenizers["text"].encode(TEXT) == ids  # the folder's own ids
    with torch.no_grad():
        ours = log_likelihood(lm.model(torch.tensor([ids])), ids)
        theirs = log_likelihood(hf(torch.tensor([ids])).logits, ids)
    assert float((ours - theirs).abs().max()) <= TOL
    assert abs(float(ours.sum() - theirs.sum())) / len(ours) <= TOL
    prompt = "The droghte"
    p = torch.tensor([tok.encode(prompt).ids])
    out = hf.generate(p, do_sample=False, max_new_tokens=24, suppress_tokens=[0], pad_token_id=0)  # zoo never
    expected = tok.decode(out[0, p.shape[1]:].tolist())                               # writes a special id
    assert lm.predict(prompt, temperature=0, max_new_tokens=24)["text"] == expected
    assert "".join(zoo.generate(run, prompt, max_new_tokens=24, temperature=0, device="cpu")) == expected


def test_export_of_an_imported_model_gives_back_the_folders_logits(tmp_path):
    src, tok = gpt2_folder(tmp_path / "gpt2", activation_function="gelu_new")
    run = import_hf(src, out=tmp_path / "run")
    back = export_hf(zoo.load(run), tmp_path / "back")
    original = transformers.GPT2LMHeadModel.from_pretrained(src).eval()
    again = transformers.AutoModelForCausalLM.from_pretrained(back).eval()
    cfg = json.loads((back / "config.json").read_text())
    assert cfg["activation_function"] == "gelu_new" and cfg["vocab_size"] == tok.get_vocab_size()
    assert cfg["eos_token_id"] == 0
    x = torch.tensor([tok.encode(TEXT).ids])
    with torch.no_grad():
        assert float((original(x).logits - again(x).logits).abs().max()) == 0.0
    assert transformers.AutoTokenizer.from_pretrained(back)(TEXT).input_ids == tok.encode(TEXT).ids


def test_a_folder_without_an_end_of_text_id_gets_zoos_specials_in_front_and_exports_back(tmp_path):
    src, tok = gpt2_folder(tmp_path / "gpt2", eos_token_id=None, bos_token_id=None)
    run = import_hf(src, out=tmp_path / "run")
    lm = zoo.load(run)
    ids = tok.encode(TEXT).ids
    assert lm.tokenizers["text"].encode(TEXT) == [i + 4 for i in ids]  # documented: every id + 4
    back = export_hf(lm, tmp_path / "back")
    original = transformers.GPT2LMHeadModel.from_pretrained(src).eval()
    again = transformers.AutoModelForCausalLM.from_pretrained(back).eval()
    with torch.no_grad():
        assert float((original(torch.tensor([ids])).logits - again(torch.tensor([ids])).logits).abs().max()) == 0.0


def test_an_import_without_a_dataset_predicts_serves_evaluates_and_fine_tunes(cli, tmp_path):
    pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")
    from starlette.testclient import TestClient

    from zoo.serve import Limits
    from zoo.serve.app import create_app
    from zoo.serve.models import load_models

    src, _ = gpt2_folder(tmp_path / "gpt2", activation_function="gelu_new")
    done = cli("import", "hf", str(src), "--out", str(tmp_path / "run"))
    assert done.exit_code == 0, done.output
    run = tmp_path / "run"
    done = cli("predict", str(run), "The droghte", "--temperature", "0", "--max-new-tokens", "8")
    assert done.exit_code == 0, done.output
    text = zoo.load(run).predict("The droghte", temperature=0, max_new_tokens=8)["text"]
    from zoo.runtime.untrusted import printable

    assert text and printable(text, keep="\n\t") in done.output  # a terminal sees control characters escaped
    with TestClient(create_app(load_models([f"lm={run}"], zoo.load), Limits()), base_url="http://127.0.0.1:8000") as client:
        resp = client.post("/api/models/lm/predict", json={"inputs": ["The droghte"], "max_new_tokens": 8,
                                                           "temperature": 0})
    assert resp.status_code == 200 and resp.json()["records"][0]["text"] == text
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    done = cli("eval", str(run), "--device", "cpu")
    assert done.exit_code == 1 and "dataset.files is empty" in done.output  # says what to give, no traceback
    files = f'dataset.files=["{corpus}"]'
    done = cli("eval", str(run), "--set", files, "--device", "cpu")
    assert done.exit_code == 0, done.output
    before = zoo.evaluate(run, device="cpu", dataset={"files": [str(corpus)]})["loss"]
    api.reset()
    zoo.train(resume=run, overrides={"dataset": {"files": [str(corpus)]},
                                     "train": {"epochs": 1, "steps_per_epoch": 8, "batch_size": 4,
                                               "progress": False, "threads": 1, "device": "cpu"}})
    assert zoo.evaluate(run, device="cpu")["loss"] < before  # the dataset is now the run's own
    with pytest.raises(zoo.ConfigError, match="only train"):  # after an epoch the data is fixed
        zoo.train(resume=run, overrides={"dataset": {"files": [str(corpus), str(corpus)]}})


def test_a_gpt_artifact_written_before_these_options_loads_and_computes_as_before(tmp_path):
    """An artifact whose config predates activation gelu_tanh, layer_norm_epsilon and scale_attn_weights."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    api.reset()
    zoo.train("text-gpt", {"dataset": {"files": [str(corpus)]}, "model": {"n_layer": 1, "n_head": 2, "n_embd": 16},
                           "task": {"block_size": 16, "eval_blocks": 4},
                           "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "progress": False,
                                     "threads": 1}}, out=tmp_path / "run")
    path = tmp_path / "run" / "model.safetensors"
    with safe_open(str(path), "pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    config = json.loads(meta["config"])
    for key in ("layer_norm_epsilon", "scale_attn_weights"):
        del config["model"][key]
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**meta, "config": json.dumps(config)})
    new, before = zoo.load(path), zoo.load(old)
    assert before.model.config.layer_norm_epsilon == 1e-5 and before.model.config.scale_attn_weights
    x = torch.tensor([new.tokenizers["text"].encode("Whan that April")])
    with torch.no_grad():
        assert torch.equal(before.model(x), new.model(x))
