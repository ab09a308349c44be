"""benchmarks/anchors.py (issue 20): every row names a registered entry, and its baseline and ablation
overrides are settings that entry accepts, so a benchmark run cannot fail on a typo after an hour."""

from __future__ import annotations

import sys

import pytest
import torch

import zoo
from zoo import config

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import anchors  # benchmarks/ is no package: found through sys.path

CASES = [(entry, label, sets) for entry, spec in anchors.ROWS.items()
         for label, sets in [("shipped", {}), ("baseline", spec["baseline"]), *spec["ablations"].items()]]


@pytest.mark.parametrize("entry,label,sets", CASES, ids=[f"{e}:{lab}" for e, lab, _ in CASES])
def test_every_row_resolves(entry, label, sets):
    overrides = config.parse_sets(anchors.flags(sets)[1::2])
    resolved = zoo.resolve_entry(entry, overrides)
    for key, value in sets.items():
        section, name = key.split(".", 1)
        assert getattr(resolved.configs[section], name) == value, (entry, label, key)


def test_rows_state_a_target_a_budget_and_how_validation_chose():
    for entry, spec in anchors.ROWS.items():
        assert 0 < spec["target"] <= 1 and 0 < spec["budget_s"] <= 1200, entry
        assert spec["anchor"] and "validation" in spec["val_by"], entry


def test_summary_needs_three_seeds_the_target_the_budget_and_a_quiet_machine():
    spec = anchors.ROWS["pos-transformer-char"]
    rows = [{"seed": s, "train_s": 300.0, "test_accuracy": a, "val_accuracy": 0.98}
            for s, a in enumerate([0.980, 0.979, 0.981])]
    assert anchors.summary(spec, rows, loaded=False)["met"]
    assert anchors.summary(spec, rows[:2], loaded=False)["met"] is False  # two seeds are not enough
    assert anchors.summary(spec, rows, loaded=True)["met"] is False
    slow = [*rows[:2], {**rows[2], "train_s": spec["budget_s"] + 1}]
    assert anchors.summary(spec, slow, loaded=False)["met"] is False
    low = [{**r, "test_accuracy": 0.97} for r in rows]
    s = anchors.summary(spec, low, loaded=False)
    assert s["met"] is False and s["mean"] == pytest.approx(0.97) and s["min"] == pytest.approx(0.97)


def test_every_benchmark_an_entry_names_exists_and_its_card_says_so():
    from pathlib import Path

    from zoo.store.card import model_card

    named = {}
    for spec in zoo.get_registry().specs("entry"):
        ref = spec.data.get("reference", {})
        if "benchmark" in ref:
            script = ref["benchmark"].split()[1]
            assert (ROOT / script).is_file(), (spec.id, script)
            if script.endswith("anchors.py"):
                assert ref["benchmark"].split()[2] == spec.name and spec.name in anchors.ROWS, spec.id
            named[spec.name] = ref
    assert set(anchors.ROWS) | {"shakespeare-char-gpt"} == set(named)  # the five rows of issue 20
    card = model_card(zoo.resolve_entry("chunk-transformer"), {"test": {"span_f1": 0.9}}, Path("model.safetensors"))
    assert f"Next anchor: {named['chunk-transformer']['anchor']}." in card
    assert "`python benchmarks/anchors.py chunk-transformer --seeds 0 1 2`" in card


def test_every_readout_is_a_task_setting_of_its_entry():
    readouts = [(entry, task) for entry, spec in anchors.ROWS.items() for task in spec["readouts"].values()]
    assert readouts  # chunk-transformer's decoding
    for entry, task in readouts:
        task = {k: v for k, v in task.items() if k != "weights"}
        resolved = zoo.resolve_entry(entry, {"task": task})
        assert all(getattr(resolved.configs["task"], k) == v for k, v in task.items()), entry


def test_live_readout_evaluates_the_last_epochs_weights_not_the_average(tmp_path):
    from safetensors.torch import load_file

    from zoo.store.checkpoint import load_checkpoint

    from conftest import TINY_SUBSEQ

    run = zoo.train("subseq-gru", config.merge(TINY_SUBSEQ, {"train": {"ema": 0.9, "threads": 1}}), out=tmp_path / "r")
    live = anchors.live_artifact(run.run_dir)
    saved, copied = load_file(str(run.artifact)), load_file(str(live))
    ckpt = load_checkpoint(run.run_dir / "checkpoint.safetensors")
    assert copied.keys() == saved.keys()
    assert all(torch.equal(copied[k], ckpt["model"][k]) for k in copied)
    assert any(not torch.equal(copied[k], saved[k]) for k in copied)  # the average differs from the live weights
    assert zoo.load(live).metadata == zoo.load(run.artifact).metadata
    m = zoo.evaluate(live, "val", device="cpu")
    assert m["loss"] != zoo.evaluate(run.artifact, "val", device="cpu")["loss"]


def test_results_are_saved_after_every_run_and_keep_other_entries(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(anchors, "RESULTS", tmp_path)
    (tmp_path / "anchors.json").write_text(json.dumps({"imdb-rnn": {"rows": ["kept"]}}))
    spec = anchors.ROWS["pos-transformer-char"]
    first = [{"row": "shipped", "seed": 0, "train_s": 250.0, "test_accuracy": 0.977, "val_accuracy": 0.98}]
    anchors.save("pos-transformer-char", spec, first, complete=False)
    saved = json.loads((tmp_path / "anchors.json").read_text())
    assert saved["imdb-rnn"] == {"rows": ["kept"]}
    assert saved["pos-transformer-char"]["complete"] is False and saved["pos-transformer-char"]["rows"] == first
    both = [*first, {**first[0], "seed": 1, "test_accuracy": 0.979}]
    anchors.save("pos-transformer-char", spec, both, complete=True)
    row = json.loads((tmp_path / "anchors.json").read_text())["pos-transformer-char"]
    assert row["complete"] and row["summary"]["mean"] == pytest.approx(0.978) and row["summary"]["met"] is False
    assert not list(tmp_path.glob("*.tmp"))


def test_rerank_grid_reads_each_weight_as_zoo_eval_does(tmp_path, data_dir_or_skip):
    """The seq2py row's reranked figures: the grid decodes once and reads every weight; zoo eval at one
    weight gives the same BLEU, and weight 0 is the beam alone."""
    tiny = {"train": {"threads": 1, "progress": False}}
    fwd = zoo.train("seq2py", config.merge(zoo.get_registry().get("entry", "seq2py").data["tiny"], tiny),
                    out=tmp_path / "fwd")
    rev_sets = zoo.get_registry().get("entry", "seq2py-reverse").data["tiny"]
    zoo.train("seq2py-reverse", config.merge(rev_sets, tiny), out=tmp_path / "rev")
    grid = anchors.rerank_grid(fwd.run_dir, tmp_path / "rev", [0.0, 2.0])
    for w in (0.0, 2.0):
        task = {"reranker": str(tmp_path / "rev"), "rerank_weight": w}
        for split in ("val", "test"):
            assert grid[w][f"{split}_bleu"] == pytest.approx(
                zoo.evaluate(fwd.run_dir, split, device="cpu", task=task)["bleu"], abs=1e-9), (w, split)
    assert grid[0.0]["test_bleu"] == pytest.approx(zoo.evaluate(fwd.run_dir, "test", device="cpu")["bleu"], abs=1e-9)


def test_rerank_grid_script_chooses_on_validation_per_run_and_shared():
    import rerank_grid

    g1 = {0.0: {"val_bleu": 0.30, "test_bleu": 0.20}, 1.0: {"val_bleu": 0.32, "test_bleu": 0.10}}
    g2 = {0.0: {"val_bleu": 0.35, "test_bleu": 0.40}, 1.0: {"val_bleu": 0.34, "test_bleu": 0.90}}
    chosen = rerank_grid.choose([g1, g2], [0.0, 1.0])
    assert chosen["per_run"] == {"weights": [1.0, 0.0], "test_bleu": [0.10, 0.40]}  # test never chooses
    assert chosen["shared"] == {"weight": 1.0, "test_bleu": [0.10, 0.90]}  # mean val 0.33 against 0.325
    tie = {0.0: {"val_bleu": 0.3, "test_bleu": 0.1}, 1.0: {"val_bleu": 0.3, "test_bleu": 0.2}}
    assert rerank_grid.choose([tie], [0.0, 1.0])["shared"]["weight"] == 0.0  # a tie: the smaller weight
