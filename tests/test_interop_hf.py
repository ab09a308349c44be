"""zoo GPT <-> Hugging Face transformers GPT-2 folders: same logits, same greedy text, clear refusals."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo import api
from zoo.errors import ConfigError, ZooError
from zoo.interop import describe, export_hf, import_hf

transformers = pytest.importorskip("transformers", reason="the hf extra (pip install 'zoo[hf]') is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOL = 1e-4  # fp32 logits, zoo against transformers
CORPUS = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
          "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 20
PROBE = "To be, or not: the slings <eos> of café\n"  # an unseen character, a special's spelling, a newline


def train_gpt(out, corpus, **more):
    api.reset()
    cfg = {"dataset": {"files": [str(corpus)]}, "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.0},
           "task": {"block_size": 32, "eval_blocks": 4},
           "train": {"epochs": 1, "steps_per_epoch": 15, "batch_size": 8, "eval_batch_size": 16, "threads": 1,
                     "progress": False},
           "optim": {"lr": 3e-3, "warmup_steps": 0}}
    zoo.train("text-gpt", zoo.config.merge(cfg, more), out=out)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def char_run(corpus, tmp_path_factory):
    return train_gpt(tmp_path_factory.mktemp("char") / "run", corpus)


@pytest.fixture(scope="module")
def bpe_run(corpus, tmp_path_factory):  # every option GPT-2 has another way of saying: bias, relu, mlp width
    return train_gpt(tmp_path_factory.mktemp("bpe") / "run", corpus, tokenizer={"name": "bpe", "vocab_size": 300},
                     model={"bias": False, "activation": "relu", "mlp_ratio": 2})


def hf_load(folder):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


def max_diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("run_name", ["char_run", "bpe_run"])
def test_exported_gpt_gives_zoo_logits_ids_and_greedy_text_in_transformers(run_name, request, tmp_path):
    lm = zoo.load(request.getfixturevalue(run_name))
    folder = export_hf(lm, tmp_path / "hf")
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "README.md"} <= {p.name for p in folder.iterdir()}
    model, tok = hf_load(folder)
    zoo_tok = lm.tokenizers["text"]
    ids = zoo_tok.encode(PROBE)
    assert tok(PROBE).input_ids == ids  # the same ids, also for "<eos>" written in the text
    assert tok.decode(ids, skip_special_tokens=True) == zoo_tok.decode(ids)
    x = torch.tensor([ids[:32], ids[-32:]])
    with torch.no_grad():
        assert max_diff(model(x).logits, lm.model(x)) < TOL
    prompt = "To be, or"
    greedy = "".join(lm.task.generate(lm.model, prompt, max_new_tokens=20, temperature=0))
    p = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(p, do_sample=False, max_new_tokens=20)
    assert tok.decode(out[0, p.shape[1]:], skip_special_tokens=True) == greedy
    card = (folder / "README.md").read_text()
    assert "lm:text-gpt" in card and "zoo_version" in card


def test_a_model_card_and_configs_say_what_gpt2_runs(bpe_run, tmp_path):
    folder = export_hf(zoo.load(bpe_run), tmp_path / "hf")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["activation_function"] == "relu" and cfg["n_inner"] == 64 and cfg["model_type"] == "gpt2"
    gen = json.loads((folder / "generation_config.json").read_text())
    assert gen["suppress_tokens"] == [0, 1, 2, 3]  # zoo generate never produces the specials either
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        assert tuple(fh.get_tensor("transformer.h.0.mlp.c_fc.weight").shape) == (32, 64)  # Conv1D: (in, out)
        assert float(fh.get_tensor("transformer.h.0.attn.c_attn.bias").abs().max()) == 0.0  # bias = false


def test_export_refuses_what_gpt2_cannot_express(char_run, tmp_path):
    lm = zoo.load(char_run)
    lm.resolved.data["model"]["activation"] = "swish"
    with pytest.raises(ZooError, match="model.activation = 'swish'"):
        export_hf(lm, tmp_path / "a")
    lm = zoo.load(char_run)
    lm.resolved.data["model"]["rotary"] = True
    with pytest.raises(ZooError, match="model.rotary"):
        export_hf(lm, tmp_path / "b")
    lm = zoo.load(char_run)
    lm.model.lm_head.weight = torch.nn.Parameter(lm.model.lm_head.weight.detach().clone())
    with pytest.raises(ZooError, match="not tied"):
        export_hf(lm, tmp_path / "c")
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_export_leaves_a_folder_alone_unless_forced(char_run, tmp_path):
    lm = zoo.load(char_run)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ZooError, match="not empty"):
        export_hf(lm, tmp_path / "mine")
    with pytest.raises(ZooError, match="no config.json"):
        export_hf(lm, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    export_hf(lm, tmp_path / "hf")
    export_hf(lm, tmp_path / "hf", force=True)
    assert (tmp_path / "hf" / "config.json").is_file()


# --- import ---------------------------------------------------------------------------------------

def gpt2_folder(path, corpus, *, slow_tokenizer=False, **config):
    """A tiny random GPT2LMHeadModel and a byte-level BPE with GPT-2's id layout, saved locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path.mkdir(parents=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([str(corpus)], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if slow_tokenizer:
        tok.model.save(str(path))  # vocab.json + merges.txt, as GPT-2 ships them
    else:
        tok.save(str(path / "tokenizer.json"))
    cfg = {"vocab_size": tok.get_vocab_size(), "n_positions": 48, "n_embd": 32, "n_layer": 2, "n_head": 2,
           "activation_function": "gelu", "bos_token_id": 0, "eos_token_id": 0}
    cfg.update(config)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg)).save_pretrained(path)
    return path, tok


def as_original_gpt2(src):
    """Rewrite the weights as OpenAI's GPT-2 checkpoints hold them: no ``transformer.`` prefix, mask buffers."""
    from safetensors.torch import load_file, save_file

    tensors = {k.removeprefix("transformer."): v for k, v in load_file(src / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = torch.ones(1, 1, 4, 4)  # old causal-mask buffers, not weights
    save_file(tensors, str(src / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("original", [False, True], ids=["tokenizer.json", "vocab.json+merges.txt"])
def test_imported_gpt2_gives_the_same_logits_and_runs_in_zoo(original, corpus, tmp_path):
    src, tok = gpt2_folder(tmp_path / "gpt2", corpus, slow_tokenizer=original)
    hf = transformers.GPT2LMHeadModel.from_pretrained(src).eval()
    if original:
        as_original_gpt2(src)
    assert describe(src)[-1].startswith("zoo import: possible")
    run = import_hf(src, "text-gpt", tmp_path / "run", overrides={"dataset": {"files": [str(corpus)]}})
    lm = zoo.load(run)
    ids = tok.encode(PROBE).ids
    assert lm.tokenizers["text"].encode(PROBE) == ids  # the folder's ids; its end-of-text id serves as the specials
    assert lm.tokenizers["text"].eos_id == 0 and lm.model.lm_head.out_features == tok.get_vocab_size()
    with torch.no_grad():
        assert max_diff(lm.model(torch.tensor([ids])), hf(torch.tensor([ids])).logits) < TOL
    metrics = zoo.evaluate(run, device="cpu")
    assert metrics["loss"] > 0
    assert "".join(zoo.generate(run, "To be", max_new_tokens=5, temperature=0, device="cpu"))


def test_an_imported_run_fine_tunes_with_resume(corpus, tmp_path):
    src, _ = gpt2_folder(tmp_path / "gpt2", corpus)
    run = import_hf(src, "text-gpt", tmp_path / "run", overrides={"dataset": {"files": [str(corpus)]},
                                                                  "task": {"block_size": 16}})
    before = zoo.evaluate(run, device="cpu")["loss"]
    api.reset()
    zoo.train(resume=run, overrides={"train": {"epochs": 1, "steps_per_epoch": 10, "batch_size": 8,
                                               "progress": False, "threads": 1}})
    assert zoo.evaluate(run, device="cpu")["loss"] < before


def test_export_then_import_is_the_same_model(bpe_run, corpus, tmp_path):
    lm = zoo.load(bpe_run)
    folder = export_hf(lm, tmp_path / "hf")
    run = import_hf(folder, "text-gpt", tmp_path / "run", overrides={"dataset": {"files": [str(corpus)]}})
    back = zoo.load(run)
    assert back.tokenizers["text"].encode(PROBE) == lm.tokenizers["text"].encode(PROBE)  # no ids moved
    assert back.model.config.activation == "relu" and back.model.config.mlp_ratio == 2
    x = torch.tensor([lm.tokenizers["text"].encode(PROBE)[:32]])
    with torch.no_grad():
        assert max_diff(back.model(x), lm.model(x)) == 0.0


def config_only_folder(path, corpus, **config):
    src, _ = gpt2_folder(path, corpus)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(config)
    (src / "config.json").write_text(json.dumps(cfg))
    return src


@pytest.mark.parametrize("config, message", [
    ({"activation_function": "silu"}, "activation_function='silu'"),
    ({"n_inner": 48}, "n_inner=48 is not a multiple"),
    ({"layer_norm_epsilon": "tiny"}, "layer_norm_epsilon='tiny'"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "not 'gpt2'"),
])
def test_import_refuses_what_zoo_gpt_cannot_compute(config, message, corpus, tmp_path):
    src = config_only_folder(tmp_path / "gpt2", corpus, **config)
    with pytest.raises(ZooError, match=message):
        import_hf(src, "text-gpt", tmp_path / "run", overrides={"dataset": {"files": [str(corpus)]}})
    assert not (tmp_path / "run").exists()
    assert describe(src)[-1].startswith("zoo import: not possible")


def test_import_reports_sizes_that_do_not_fit(corpus, tmp_path):
    src, _ = gpt2_folder(tmp_path / "gpt2", corpus)
    data = {"dataset": {"files": [str(corpus)]}}
    with pytest.raises(ConfigError, match="model.n_embd=64 does not fit .* n_embd=32"):
        import_hf(src, "text-gpt", tmp_path / "r", overrides={**data, "model": {"n_embd": 64}})
    with pytest.raises(ConfigError, match="task.block_size=64 does not fit: .* 48 positions"):
        import_hf(src, "text-gpt", tmp_path / "r", overrides={**data, "task": {"block_size": 64}})
    with pytest.raises(ZooError, match="trains classify:rnn-classifier .* GPT language-model entry"):
        import_hf(src, "text-rnn", tmp_path / "r", overrides={"dataset": {"train_file": str(corpus)}})
    (src / "model.safetensors").rename(src / "pytorch_model.bin")
    with pytest.raises(ZooError, match="never unpickles"):
        import_hf(src, "text-gpt", tmp_path / "r", overrides=data)
    assert not (tmp_path / "r").exists()


def test_import_never_replaces_a_run_unless_forced(corpus, tmp_path):
    src, _ = gpt2_folder(tmp_path / "gpt2", corpus)
    data = {"dataset": {"files": [str(corpus)]}}
    import_hf(src, "text-gpt", tmp_path / "run", overrides=data)
    with pytest.raises(ZooError, match="already holds a run"):
        import_hf(src, "text-gpt", tmp_path / "run", overrides=data)
    import_hf(src, "text-gpt", tmp_path / "run", overrides=data, force=True)
    assert (tmp_path / "run" / ".zoo-run").is_file()  # a run folder zoo wrote (zoo.store.rundir.MARKER)


def test_the_cli_commands_import_and_export(bpe_run, corpus, tmp_path):
    from click.testing import CliRunner

    from zoo.cli.common import ZooGroup
    from zoo.interop.commands import export_other, import_cmd

    folder = export_other(bpe_run, tmp_path / "hf", "hf")
    group = ZooGroup(name="zoo")
    group.add_command(import_cmd)
    files = f'dataset.files=["{corpus}"]'
    done = CliRunner().invoke(group, ["import", "hf", str(folder), "--out", str(tmp_path / "run"), "--set", files])
    assert done.exit_code == 0, done.output
    assert zoo.load(tmp_path / "run").metadata["imported_from"] == str(folder.resolve())
    done = CliRunner().invoke(group, ["import", "hf", str(folder), "--out", str(tmp_path / "r2"), "--set", files,
                                      "--set", "model.n_layer=3"])
    assert done.exit_code == 2 and "model.n_layer=3 does not fit" in done.output  # a usage error, no traceback
    done = CliRunner().invoke(group, ["import", "hf", str(tmp_path / "none"), "--out", str(tmp_path / "r3")])
    assert done.exit_code == 1 and "no such folder" in done.output
