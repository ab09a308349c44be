"""The Trainer on a tiny subseq-gru: run folder, reproducibility, resume, early stopping, schedules, freezing."""

from __future__ import annotations

import json
import math
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import api
from zoo.build.prepare import build as build_run
from zoo.config import build, load_toml, merge
from zoo.errors import ConfigError, RunDirError
from zoo.config.train import OptimConfig, TrainConfig
from zoo.store.checkpoint import load_checkpoint
from zoo.training.optim import lr_factor
from zoo.training.trainer import Trainer

from conftest import TINY_SUBSEQ

# Smaller than TINY_SUBSEQ (8 batches an epoch) and on one thread: on a busy 2-core machine torch's
# default two threads make a tiny run 20x slower.
SMALL = merge(TINY_SUBSEQ, {
    "dataset": {"train_size": 256, "val_size": 64, "test_size": 64},
    "model": {"emb_dim": 8, "hidden": 16, "dropout": 0.1},  # dropout: training draws random numbers
    "train": {"batch_size": 32, "eval_batch_size": 64, "threads": 1, "early_stopping": "val_loss"},
})
BATCHES = 256 // 32


def small(**sections) -> dict:
    return merge(SMALL, sections)


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A straight 2-epoch run, seed 0 (read-only for the tests that use it)."""
    out = tmp_path_factory.mktemp("train") / "run2"
    result = zoo.train("subseq-gru", SMALL, out=out)
    return result


# --- the run folder ------------------------------------------------------------------------------

def test_run_folder_holds_config_metrics_plot_model_and_card(run2):
    d = run2.run_dir
    for name in ("config.toml", "metrics.jsonl", "loss.png", "model.safetensors", "README.md", "metrics.json",
                 "checkpoint.safetensors", "tokenizers.json"):
        assert (d / name).is_file(), name
    assert run2.artifact == d / "model.safetensors"
    assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (d / "README.md").read_text()
    assert "seq2seq:subseq-gru" in card and "exact_match" in card and "seq2seq:gru-seq2seq" in card
    # config.toml is the fully resolved config: it resolves to exactly what was trained
    cfg = api.resolve(load_toml(d / "config.toml"))
    assert cfg.data == zoo.resolve_entry("subseq-gru", SMALL).data
    assert cfg.data["model"]["hidden"] == 16 and cfg.data["model"]["attention"] == "dot"
    metrics = json.loads((d / "metrics.json").read_text())
    assert set(metrics) == {"train", "val", "test"} and metrics == json.loads(json.dumps(run2.metrics))
    assert 0.0 <= metrics["test"]["exact_match"] <= 1.0


def test_metrics_jsonl_has_one_line_per_epoch(run2):
    lines = (run2.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [BATCHES, 2 * BATCHES]
    for r in records:
        assert math.isfinite(r["train_loss"]) and r["train_loss"] > 0
        for key in ("val_loss", "val_exact_match", "val_token_accuracy", "val_perplexity"):
            assert key in r and math.isfinite(r[key]), key
    assert records[1]["train_loss"] < records[0]["train_loss"]  # it learns


def test_run_leaves_no_temporary_files(run2):
    names = sorted(p.name for p in run2.run_dir.iterdir())
    assert ".zoo-run" in names  # the marker that says zoo wrote this folder (tests/test_user_files.py)
    assert not [n for n in names if n.endswith((".tmp", ".part")) or (n.startswith(".") and n != ".zoo-run")], names


def test_checkpoint_loads_without_pickle(run2, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    ckpt = load_checkpoint(run2.run_dir / "checkpoint.safetensors")
    assert ckpt["trainer"]["epoch"] == 2 and ckpt["trainer"]["step"] == 2 * BATCHES
    assert set(ckpt["model"]) == set(weights(run2.artifact))
    assert ckpt["optimizer"]["state"] and ckpt["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert [r["epoch"] for r in ckpt["history"]] == [1, 2]


def test_model_and_run_are_not_checkpoints(run2):
    with pytest.raises(RunDirError, match="not a zoo checkpoint"):
        load_checkpoint(run2.artifact)


# --- reproducibility ------------------------------------------------------------------------------

def test_same_seed_gives_identical_weights(run2, tmp_path):
    again = zoo.train("subseq-gru", SMALL, out=tmp_path / "again")
    assert_same_weights(weights(run2.artifact), weights(again.artifact))
    assert [r["train_loss"] for r in history(run2.run_dir)] == [r["train_loss"] for r in history(again.run_dir)]
    assert again.metrics["test"] == run2.metrics["test"]


def test_different_seed_gives_different_weights(run2, tmp_path):
    other = zoo.train("subseq-gru", small(train={"seed": 1, "epochs": 1}), out=tmp_path / "seed1")
    a, b = weights(run2.artifact), weights(other.artifact)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)


# --- resume ---------------------------------------------------------------------------------------

def test_resume_continues_to_the_same_weights_as_a_straight_run(run2, tmp_path):
    d = tmp_path / "resumed"
    first = zoo.train("subseq-gru", small(train={"epochs": 1}), out=d)
    assert first.metrics["train"]["epochs"] == 1
    result = zoo.train(None, {"train": {"epochs": 2}}, resume=d)
    assert result.run_dir == d
    assert result.metrics["train"]["epochs"] == 2 and result.metrics["train"]["steps"] == 2 * BATCHES
    # the last weights, the best weights, the history and the test metrics all match the straight run
    assert_same_weights(load_checkpoint(run2.run_dir / "checkpoint.safetensors")["model"],
                        load_checkpoint(d / "checkpoint.safetensors")["model"])
    assert_same_weights(weights(run2.artifact), weights(result.artifact))
    straight, resumed = history(run2.run_dir), history(d)
    for key in ("epoch", "step", "train_loss", "val_loss", "val_exact_match", "lr"):
        assert [r[key] for r in resumed] == [r[key] for r in straight], key
    assert result.metrics["test"] == run2.metrics["test"]
    assert load_toml(d / "config.toml")["train"]["epochs"] == 2


def test_resume_may_change_only_train_settings(run2, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(run2.run_dir, d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ConfigError, match="only train"):
        zoo.train(None, {"model": {"hidden": 8}}, resume=d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_resume_needs_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="nothing to resume"):
        zoo.train(None, {}, resume=tmp_path / "empty")


# --- stopping ---------------------------------------------------------------------------------------

def test_early_stopping_when_the_metric_cannot_improve(tmp_path):
    result = zoo.train("subseq-gru", small(train={"epochs": 6, "patience": 1, "min_delta": 1e-3},
                                           optim={"lr": 1e-9}), out=tmp_path / "es")
    t = result.metrics["train"]
    assert t["epochs"] == 2
    assert "early stopping" in t["stopped"] and "val_loss" in t["stopped"]
    assert t["best_epoch"] == 1
    assert len(history(result.run_dir)) == 2


def test_max_steps_stops_training(tmp_path):
    result = zoo.train("subseq-gru", small(train={"epochs": 5, "max_steps": 3}), out=tmp_path / "ms")
    t = result.metrics["train"]
    assert t["steps"] == 3 and t["epochs"] == 1
    assert "max_steps=3" in t["stopped"]
    assert [r["step"] for r in history(result.run_dir)] == [3]


def test_resume_with_a_larger_step_budget_continues(tmp_path):
    out = tmp_path / "ms"
    zoo.train("subseq-gru", small(train={"epochs": 5, "max_steps": 3}), out=out)
    same = zoo.train(None, {"train": {"max_steps": 3}}, resume=out)  # budget already spent: nothing more
    assert same.metrics["train"]["steps"] == 3
    more = zoo.train(None, {"train": {"max_steps": 9}}, resume=out)
    assert more.metrics["train"]["steps"] == 9 and "max_steps=9" in more.metrics["train"]["stopped"]
    assert [r["step"] for r in history(out)] == [3, 9]


# --- the Trainer on its own ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pieces():
    """Resolved config and encoded splits of SMALL, shared by the Trainer tests."""
    resolved = zoo.resolve_entry("subseq-gru", SMALL)
    built = build_run(resolved, None, None, ("train", "val"))
    return resolved, built


def new_model(pieces, seed: int = 0):
    resolved, built = pieces
    torch.manual_seed(seed)
    return resolved.cls("model")(resolved.configs["model"], **built.task.model_sizes())


def fit(pieces, train: dict | None = None, optim: dict | None = None, val: bool = False, on_epoch=None):
    resolved, built = pieces
    model = new_model(pieces)
    tcfg = build(TrainConfig, merge(SMALL["train"], train or {}), "train")
    ocfg = build(OptimConfig, optim or {}, "optim")
    trainer = Trainer(model, built.task, tcfg, ocfg, on_epoch=on_epoch)
    summary = trainer.fit(built.splits["train"], built.splits["val"] if val else None)
    return trainer, summary


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_freeze_schedule_keeps_a_group_fixed_for_its_epochs(pieces):
    initial = snapshot(new_model(pieces))
    after: dict[int, dict[str, torch.Tensor]] = {}
    holder = {}

    def on_epoch(record):
        after[record["epoch"]] = snapshot(holder["trainer"].model)

    resolved, built = pieces
    model = new_model(pieces)
    tcfg = build(TrainConfig, merge(SMALL["train"], {"freeze": {"encoder": 1}, "epochs": 2}), "train")
    holder["trainer"] = Trainer(model, built.task, tcfg, build(OptimConfig, {}, "optim"), on_epoch=on_epoch)
    holder["trainer"].fit(built.splits["train"], None)

    enc = [k for k in initial if k.startswith("encoder.")]
    dec = [k for k in initial if k.startswith("decoder.")]
    assert enc and dec
    assert all(torch.equal(after[1][k], initial[k]) for k in enc)  # frozen in epoch 1
    assert all(not torch.equal(after[1][k], initial[k]) for k in dec if not k.endswith("embed.weight"))
    assert any(not torch.equal(after[2][k], after[1][k]) for k in enc)  # trains from epoch 2
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_freeze_group_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        zoo.train("subseq-gru", small(train={"freeze": {"encodr": 1}}), out=tmp_path / "f")
    msg = str(err.value)
    assert "train.freeze.encodr" in msg and "decoder" in msg and "encoder" in msg


def test_config_error_found_by_the_trainer_leaves_no_half_run(tmp_path):
    out = tmp_path / "f"
    with pytest.raises(ConfigError):
        zoo.train("subseq-gru", small(train={"freeze": {"encodr": 1}, "epochs": 1}), out=out)
    result = zoo.train("subseq-gru", small(train={"freeze": {"encoder": 1}, "epochs": 1}), out=out)
    assert result.artifact.is_file()


def test_unknown_early_stopping_metric_is_a_config_error(pieces):
    resolved, built = pieces
    tcfg = build(TrainConfig, merge(SMALL["train"], {"early_stopping": "val_bleu"}), "train")
    with pytest.raises(ConfigError, match="val_bleu.*val_loss.*val_exact_match"):
        Trainer(new_model(pieces), built.task, tcfg, OptimConfig())


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_every_optimizer_trains(pieces, name):
    expected = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
                "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    initial = snapshot(new_model(pieces))
    trainer, summary = fit(pieces, {"epochs": 1, "steps_per_epoch": 2}, {"name": name, "lr": 0.05, "momentum": 0.5
                                                                        if name in ("sgd", "rmsprop") else 0.0})
    assert type(trainer.optimizer) is expected
    assert summary["steps"] == 2 and summary["stopped"] == "completed"
    assert math.isfinite(trainer.history[0]["train_loss"])
    final = snapshot(trainer.model)
    assert any(not torch.equal(final[k], initial[k]) for k in initial)
    assert all(torch.isfinite(v).all() for v in final.values())


def test_cosine_schedule_with_warmup():
    cfg = OptimConfig(lr=1.0, schedule="cosine", warmup_steps=4, min_lr=0.1)
    total = 14
    assert [lr_factor(cfg, s, total) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(cfg, 4, total) == pytest.approx(1.0)  # warm-up done: the top of the cosine
    assert lr_factor(cfg, 9, total) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down
    assert lr_factor(cfg, 14, total) == pytest.approx(0.1)  # ends at min_lr
    values = [lr_factor(cfg, s, total) for s in range(4, 15)]
    assert values == sorted(values, reverse=True)
    linear = OptimConfig(lr=2.0, schedule="linear", min_lr=0.0)
    assert lr_factor(linear, 5, 10) == pytest.approx(0.5)
    assert lr_factor(OptimConfig(), 123, 1000) == 1.0  # constant


def test_schedule_drives_the_optimizer_lr(pieces):
    trainer, _ = fit(pieces, {"epochs": 2}, {"lr": 0.01, "schedule": "cosine", "warmup_steps": 2, "min_lr": 0.001})
    total = 2 * BATCHES
    cfg = trainer.optim_cfg
    for record in trainer.history:  # the lr of the last step of each epoch
        assert record["lr"] == pytest.approx(0.01 * lr_factor(cfg, record["step"] - 1, total))
    assert trainer.history[-1]["lr"] < 0.002


def test_gradient_accumulation_halves_the_optimizer_steps(pieces):
    one, s1 = fit(pieces, {"epochs": 1, "grad_accum": 1})
    two, s2 = fit(pieces, {"epochs": 1, "grad_accum": 2})
    assert s1["steps"] == BATCHES and s2["steps"] == BATCHES // 2
    assert [r["step"] for r in two.history] == [BATCHES // 2]
    assert any(not torch.equal(a, b) for a, b in zip(one.model.parameters(), two.model.parameters()))


def test_gradient_accumulation_with_a_partial_last_group(pieces):
    resolved, built = pieces
    tcfg = build(TrainConfig, merge(SMALL["train"], {"epochs": 1, "grad_accum": 3}), "train")  # 8 batches
    trainer = Trainer(new_model(pieces), built.task, tcfg, OptimConfig())
    summary = trainer.fit(built.splits["train"], None)
    assert summary["steps"] == math.ceil(BATCHES / 3) == trainer._total_steps(BATCHES)
    assert all(p.grad is None for p in trainer.model.parameters())  # nothing carried over


def test_length_batches_cover_every_example_once_and_bucket_by_length():
    import torch

    lengths = torch.tensor([5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 10])
    for kwargs in ({}, {"shuffle_inside": True}, {"bucket": False}):
        a = zoo.length_batches(lengths, 3, shuffle=True, seed=1, pool_batches=2, **kwargs)
        b = zoo.length_batches(lengths, 3, shuffle=True, seed=1, pool_batches=2, **kwargs)
        assert [x.tolist() for x in a] == [x.tolist() for x in b]  # seeded
        assert sorted(i for x in a for i in x.tolist()) == list(range(11))
    bucketed = zoo.length_batches(lengths, 3, shuffle=True, seed=1, pool_batches=2)
    assert all(len(x) == 3 for x in bucketed[:-2]) and len(bucketed[-1]) < 3  # short batches last
    spreads = [int(lengths[x].max() - lengths[x].min()) for x in bucketed]
    assert max(spreads) < 9  # rows of one batch come from one sorted pool
    evaluation = zoo.length_batches(lengths, 4, shuffle=False, seed=0)
    assert [lengths[x].tolist() for x in evaluation] == [[1, 2, 3, 3], [4, 5, 6, 7], [8, 9, 10]]


def test_bf16_on_a_cpu_without_bf16_instructions_warns_and_falls_back_to_float32(monkeypatch, caplog):
    from zoo.runtime import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="zoo.runtime.device"):
        assert device.autocast_dtype("bf16", cpu) is None  # falls back to float32
    assert "float32 instead" in caplog.text and "train.amp=off" in caplog.text
    caplog.clear()
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    with caplog.at_level("WARNING", logger="zoo.runtime.device"):
        assert device.autocast_dtype("bf16", cpu) == torch.bfloat16
        assert device.autocast_dtype("auto", cpu) is None  # auto stays float32 on a CPU
    assert caplog.text == ""


# --- weight average (train.ema) -------------------------------------------------------------------

def test_weight_average_follows_the_documented_update():
    from zoo.training.ema import WeightAverage
    lin = torch.nn.Linear(3, 2)
    lin.register_buffer("count", torch.tensor(7))  # integer buffers are not averaged
    avg = WeightAverage(lin, 0.9)
    expect = {k: v.detach().clone() for k, v in lin.state_dict().items() if v.is_floating_point()}
    assert set(avg.shadow) == {"weight", "bias"}
    for step in (1, 2, 3, 50):
        with torch.no_grad():
            lin.weight.add_(1.0)
            lin.bias.mul_(-2.0)
        d = min(0.9, (1 + step) / (10 + step))
        assert d == avg.rate(step)
        for k in expect:
            expect[k] = d * expect[k] + (1 - d) * lin.state_dict()[k]
        avg.update(step)
        for k in expect:
            torch.testing.assert_close(avg.shadow[k], expect[k])
    live = snapshot(lin)
    with avg.applied(lin):
        assert torch.equal(lin.weight, avg.shadow["weight"]) and not torch.equal(lin.weight, live["weight"])
    assert_same_weights(snapshot(lin), live)  # the live weights are back


def test_ema_run_validates_and_saves_the_average(tmp_path):
    out = tmp_path / "ema"
    result = zoo.train("subseq-gru", small(train={"ema": 0.9, "early_stopping": "val_loss"}), out=out)
    ckpt = load_checkpoint(out / "checkpoint.safetensors")
    saved = weights(result.artifact)
    best_epoch = result.metrics["train"]["best_epoch"]
    assert ckpt["ema"] and set(ckpt["ema"]) <= set(saved)
    # the saved model is the best validated average; the checkpoint's live weights differ from it
    if best_epoch == result.metrics["train"]["epochs"]:
        assert_same_weights({k: saved[k] for k in ckpt["ema"]}, ckpt["ema"])
    assert any(not torch.equal(ckpt["model"][k], saved[k]) for k in ckpt["ema"])
    # the validation loss recorded is the average's: re-evaluating the saved model gives it back
    evaluated = zoo.evaluate(result.artifact, split="val")
    best = min(history(out), key=lambda r: r["val_loss"])
    assert evaluated["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_ema_resume_continues_to_the_same_weights_as_a_straight_run(tmp_path):
    config = small(train={"ema": 0.9})
    straight = zoo.train("subseq-gru", config, out=tmp_path / "straight")
    d = tmp_path / "resumed"
    zoo.train("subseq-gru", merge(config, {"train": {"epochs": 1}}), out=d)
    resumed = zoo.train(None, {"train": {"epochs": 2}}, resume=d)
    a, b = load_checkpoint(straight.run_dir / "checkpoint.safetensors"), load_checkpoint(d / "checkpoint.safetensors")
    assert_same_weights(a["ema"], b["ema"])
    assert_same_weights(weights(straight.artifact), weights(resumed.artifact))


def test_ema_without_validation_leaves_the_average_in_the_model(pieces):
    trainer, _ = fit(pieces, train={"ema": 0.5, "epochs": 1})
    assert_same_weights({k: v for k, v in snapshot(trainer.model).items() if k in trainer.ema.shadow},
                        trainer.ema.state_dict())


def test_ema_decay_outside_0_1_is_a_config_error():
    with pytest.raises(ConfigError, match="train.ema"):
        build(TrainConfig, {"ema": 1.0}, "train")


def test_ema_switched_on_at_resume_starts_from_the_resumed_weights(tmp_path):
    d = tmp_path / "late"
    zoo.train("subseq-gru", small(train={"epochs": 1}), out=d)
    assert not load_checkpoint(d / "checkpoint.safetensors")["ema"]
    zoo.train(None, {"train": {"epochs": 2, "ema": 0.9}}, resume=d)
    ckpt = load_checkpoint(d / "checkpoint.safetensors")
    assert ckpt["ema"] and any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["ema"])
