"""The lm task and `zoo generate`, on a user's own text files (the `text-gpt` entry)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import zoo
from zoo import api
from zoo.build.prepare import build as build_run

CORPUS = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
          "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n") * 20


def tiny(files, **more):
    cfg = {
        "dataset": {"files": [str(f) for f in files]},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
        "task": {"block_size": 16},
        "train": {"epochs": 2, "steps_per_epoch": 20, "batch_size": 8, "eval_batch_size": 64, "threads": 1,
                  "progress": False},
        "optim": {"lr": 3e-3, "warmup_steps": 0},
    }
    return zoo.config.merge(cfg, more)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lm_run(corpus, tmp_path_factory):
    api.reset()
    out = tmp_path_factory.mktemp("lm") / "run"
    zoo.train("text-gpt", tiny([corpus]), out=out)
    api.reset()
    return out


def test_lm_run_learns_and_reports_lm_metrics(lm_run):
    metrics = json.loads((lm_run / "metrics.json").read_text())
    val = metrics["val"]
    assert set(val) == {"loss", "perplexity", "bits_per_byte", "bits_per_token"}
    assert val["perplexity"] == pytest.approx(math.exp(val["loss"]))
    # characters of this corpus are ASCII: one byte per token, so bits per byte == bits per token
    assert val["bits_per_byte"] == pytest.approx(val["bits_per_token"], rel=1e-6)
    first = json.loads((lm_run / "metrics.jsonl").read_text().splitlines()[0])
    vocab = zoo.load(lm_run).tokenizers["text"].vocab_size
    assert first["train_loss"] < math.log(vocab)  # it learned something within the first epoch


def test_validation_blocks_are_fixed_and_training_blocks_follow_the_seed(corpus):
    resolved = zoo.resolve_entry("text-gpt", tiny([corpus]))
    built = build_run(resolved, None, None, ("train", "val"))
    task, val = built.task, built.splits["val"]
    a = [b["x"] for b in task.batches(val, 4, shuffle=False, seed=1)]
    b = [b["x"] for b in task.batches(val, 4, shuffle=False, seed=2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    x = torch.cat(a)
    assert x.shape[1] == 16 and x.shape[0] == (len(val["ids"]) - 1) // 16  # every non-overlapping block
    batch = next(task.batches(built.splits["train"], 4, shuffle=True, seed=5))
    assert torch.equal(batch["x"][:, 1:], batch["y"][:, :-1])  # targets are the inputs shifted by one
    again = next(task.batches(built.splits["train"], 4, shuffle=True, seed=5))
    other = next(task.batches(built.splits["train"], 4, shuffle=True, seed=6))
    assert torch.equal(batch["x"], again["x"]) and not torch.equal(batch["x"], other["x"])


def test_a_split_shorter_than_a_block_is_a_clear_error(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("tiny text", encoding="utf-8")
    with pytest.raises(zoo.DataError, match="fewer than one block"):
        zoo.train("text-gpt", tiny([small]), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing was written


def test_generate_streams_repeatably_with_a_seed(cli, lm_run):
    args = ["generate", str(lm_run / "model.safetensors"), "--prompt", "To be", "--max-new-tokens", "40",
            "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--device", "cpu"]
    a, b = cli(*args), cli(*args)
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout and a.stdout.startswith("To be")
    assert len(a.stdout[:-1]) == len("To be") + 40  # char model: one character per token
    greedy = cli("generate", str(lm_run), "--prompt", "To be", "--max-new-tokens", "10", "--temperature", "0")
    assert greedy.exit_code == 0
    pieces = list(zoo.generate(lm_run, "To be", max_new_tokens=10, temperature=0.0, device="cpu"))
    assert len(pieces) == 10 and "To be" + "".join(pieces) + "\n" == greedy.stdout


def test_generate_beyond_the_context_and_without_the_cache(cli, lm_run):
    for extra in ([], ["--no-cache"]):
        result = cli("generate", str(lm_run), "--prompt", "Or", "--max-new-tokens", "60", "--seed", "1", *extra)
        assert result.exit_code == 0, result.output
        assert len(result.stdout[:-1]) == 2 + 60  # 60 > block_size 16: the window slides


def test_generate_warns_about_characters_never_seen(cli, lm_run):
    result = cli("generate", str(lm_run), "--prompt", "Zebra€", "--max-new-tokens", "3", "--seed", "0")
    assert result.exit_code == 0
    assert "never saw" in result.stderr and "€" in result.stderr


def test_generate_with_a_model_that_does_not_generate_text(cli, tiny_run):
    result = cli("generate", str(tiny_run), "--prompt", "1 2")
    assert result.exit_code == 1
    assert "does not generate text" in result.output and "Traceback" not in result.output


def test_bad_generate_options_are_usage_errors(cli, lm_run):
    assert cli("generate", str(lm_run), "--max-new-tokens", "-1").exit_code == 2
    assert cli("generate", str(lm_run), "--temperature", "-0.5").exit_code == 2
    assert cli("generate", str(lm_run), "--top-k", "0").exit_code == 2
