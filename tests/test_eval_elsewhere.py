"""zoo eval points an artifact's dataset at other files of the same kind (--set dataset.KEY=VALUE)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo import errors

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "examples" / "text_classification" / "reviews.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("elsewhere") / "run"
    tiny = {"dataset": {"train_file": str(REVIEWS), "val_fraction": 0.25}, "model": {"hidden": 8, "emb_dim": 8},
            "tokenizer": {"text": {"min_freq": 1}}, "train": {"epochs": 1, "batch_size": 4, "progress": False}}
    zoo.train("text-rnn", tiny, out=out)
    return out


def test_eval_on_a_test_file_of_the_users(cli, run, tmp_path):
    other = tmp_path / "other.csv"
    lines = REVIEWS.read_text(encoding="utf-8").splitlines()
    other.write_text("\n".join(lines[:7]) + "\n", encoding="utf-8")  # the header and six reviews
    result = cli("eval", str(run), "--set", f"dataset.test_file={json.dumps(str(other))}", "--json",
                 "--out", str(tmp_path / "eval"))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["examples"] == 6
    records = (tmp_path / "eval" / "outputs.test.jsonl").read_text().splitlines()
    assert len(records) == 6
    direct = zoo.evaluate(run, "test", device="cpu", dataset={"test_file": str(other)})
    assert direct["examples"] == 6 and direct["accuracy"] == metrics["accuracy"]


def test_without_a_test_file_the_val_split_is_the_default(cli, run):
    assert zoo.api.default_split(run) == "val"


def test_eval_may_change_only_the_dataset(cli, run):
    result = cli("eval", str(run), "--set", "model.hidden=4")
    assert result.exit_code == 2 and "dataset.KEY=VALUE or task.KEY=VALUE only" in result.output


def test_an_unknown_dataset_key_is_named(run):
    with pytest.raises(errors.ConfigError, match="dataset.nosuch"):
        zoo.evaluate(run, "val", device="cpu", dataset={"nosuch": 1})
