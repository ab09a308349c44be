"""The prepared-data cache for tagging, seq2py and classification on a user's own files (issue 28): the encoded
splits read back bit for bit, a changed file or encoding setting prepares again, runs with and without the cache
train alike, and ``zoo eval`` of a run whose training file is gone reads its test file directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo import api
from zoo.sdk.prepared import MANIFEST, PreparedCache
from zoo.build.prepare import build as build_run

from conftest import ROOT

FILES = {  # entry -> (its example file, the dataset settings its tiny runs use)
    "conll-tagger": (ROOT / "plugins" / "zoo_tagging" / "example.conll", {"val_fraction": 0.25, "label_column": 1}),
    "seq2py-pairs": (ROOT / "plugins" / "zoo_seq2py" / "example.jsonl", {"val_fraction": 0.2, "test_fraction": 0.2}),
    "text-rnn": (ROOT / "examples" / "text_classification" / "reviews.csv", {"val_fraction": 0.25}),
}
ROWS = {  # entry -> one more training example in its file's format
    "conll-tagger": "\nDogs NNS B-NP\nrun VBP B-VP\n. . O\n",
    "seq2py-pairs": '{"src": "add 9 to `z`", "tgt": "z + 9"}\n',
    "text-rnn": '99,"One more review, and a good one.",positive\n',
}
QUICK = {"threads": 1, "progress": False}


def user_file(tmp_path: Path, entry: str) -> Path:
    src = FILES[entry][0]
    return Path(shutil.copy(src, tmp_path / src.name))


def overrides(entry: str, path: Path, **more) -> dict:
    return zoo.config.merge({"dataset": {"train_file": str(path), **FILES[entry][1]}}, more)


def built(entry: str, more: dict, data_dir=None):
    api.reset()
    return build_run(zoo.resolve_entry(entry, more), data_dir, None, ("train", "val", "test"))


def entries() -> dict[str, float]:
    """key -> creation time of every complete entry."""
    return {e.key: e.manifest["created"] for e in PreparedCache().entries() if e.manifest}


def assert_same(a, b, where: str = "") -> None:
    """Equal bit for bit: tensors of one dtype and value, lists and dicts alike in order and type."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


# --- the helpers every task's layout uses ----------------------------------------------------------

def test_ragged_rows_and_json_documents_read_back_as_written(tmp_path):
    rows = [[3, 1, 4], [], [1], [5, 9, 2, 6]]
    padded = zoo.pad_rows(rows, -100)

    def prepare(out):
        out.put_ragged("ids", rows, zoo.int_dtype(9))
        out.put_ragged("tags", padded, zoo.int_dtype(9, -100), lengths=[3, 0, 1, 4])  # the padding dropped
        out.put_json("keys", [7, "a/b.txt", {"slots": {"var_0": "x"}}])

    entry = PreparedCache(tmp_path).get_or_create("k" * 32, prepare, {"split": "train"})
    assert entry.array("ids").dtype == np.uint8 and entry.array("tags").dtype == np.int8
    assert len(entry.ragged("ids")) == 4 and entry.ragged("ids").lengths.tolist() == [3, 0, 1, 4]
    assert torch.equal(zoo.pad_ragged(entry.ragged("ids"), 0), zoo.pad_rows(rows, 0))
    assert torch.equal(zoo.pad_ragged(entry.ragged("tags"), -100), padded)
    assert [r.tolist() for r in zoo.ragged_rows(entry.ragged("ids"))] == rows
    assert entry.json("keys") == [7, "a/b.txt", {"slots": {"var_0": "x"}}]
    assert (zoo.int_dtype(255), zoo.int_dtype(256), zoo.int_dtype(2**16), zoo.int_dtype(1, -1)) == \
        ("uint8", "uint16", "uint32", "int8")
    with pytest.raises(ValueError, match="do not fit uint8"):  # never a silent wrap-around
        PreparedCache(tmp_path).get_or_create("j" * 32, lambda out: out.put_ragged("ids", [[256]], "uint8"), {})


# --- read back bit for bit, and a second prepare hits -------------------------------------------------

@pytest.mark.parametrize("entry", sorted(FILES))
def test_a_users_files_are_prepared_once_and_read_back_as_encoded(tmp_path, entry):
    more = overrides(entry, user_file(tmp_path, entry))
    if entry == "conll-tagger":  # the auxiliary label rows too (PAD where a sentence has none)
        more = zoo.config.merge(more, {"task": {"aux_labels": ["NN", "DT"]}})
    first = built(entry, more)
    prepared = entries()
    assert len(prepared) == 1 + len(first.splits)  # the tokenizers and every split
    again = built(entry, more)
    assert entries() == prepared  # all read from the cache
    assert again.tokenizers.keys() == first.tokenizers.keys()
    for role, tok in again.tokenizers.items():
        assert tok.get_state() == first.tokenizers[role].get_state()
    for split, encoded in again.splits.items():
        assert_same(again.task.encode(again.dataset.load(split)), encoded, f"{entry}:{split}")


@pytest.mark.parametrize("entry, limit", [("chunk-transformer", 60), ("seq2py", 40)])  # imdb: test_prepared.py
def test_shipped_datasets_read_back_as_encoded(data_dir_or_skip, entry, limit):
    more = {"dataset": {"limit": limit}}
    built(entry, more, data_dir_or_skip)
    prepared = entries()
    again = built(entry, more, data_dir_or_skip)
    assert entries() == prepared
    if entry == "chunk-transformer":
        assert "aux" in again.splits["train"]  # the POS column as a second target
    for split, encoded in again.splits.items():
        assert_same(again.task.encode(again.dataset.load(split)), encoded, f"{entry}:{split}")


# --- misses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", sorted(FILES))
def test_a_changed_user_file_prepares_again(tmp_path, entry):
    path = user_file(tmp_path, entry)
    first = built(entry, overrides(entry, path))
    examples = sum(len(first.dataset.load(s)) for s in first.splits)
    prepared = entries()
    with open(path, "a", encoding="utf-8") as fh:  # the same name, other contents
        fh.write(ROWS[entry])
    again = built(entry, overrides(entry, path))
    now = entries()
    assert set(prepared) < set(now) and len(now) == 2 * len(prepared)  # everything again, the old kept
    rows = "meta" if entry == "seq2py-pairs" else "lengths"  # one per example (sentences are short)
    assert sum(len(again.splits[s][rows]) for s in again.splits) == examples + 1  # the new one read


@pytest.mark.parametrize("entry, changes, same", [
    ("conll-tagger", {"max_len": 4}, {"label_smoothing": 0.1, "decode": "bio"}),
    ("seq2py-pairs", {"max_src_len": 3}, {"beam": 3, "vectors_epochs": 2, "rename_slots": 0.5}),
    ("text-rnn", {"max_len": 5}, {"label_smoothing": 0.1, "bucket": False}),
])
def test_an_encoding_setting_prepares_again_and_a_training_setting_does_not(tmp_path, entry, changes, same):
    path = user_file(tmp_path, entry)
    built(entry, overrides(entry, path))
    prepared = entries()
    built(entry, overrides(entry, path, task=same))
    assert entries() == prepared
    again = built(entry, overrides(entry, path, task=changes))
    assert len(entries()) == 2 * len(prepared)
    for split, encoded in again.splits.items():
        assert_same(again.task.encode(again.dataset.load(split)), encoded, f"{entry}:{split}")


def test_a_damaged_json_document_is_prepared_again(tmp_path, caplog):
    path = user_file(tmp_path, "text-rnn")
    built("text-rnn", overrides("text-rnn", path))
    entry = next(e for e in PreparedCache().entries() if e.manifest["label"]["split"] == "train")
    keys = entry.folder / "keys.json"
    keys.write_text(keys.read_text().replace("1", "7", 1))
    again = built("text-rnn", overrides("text-rnn", path))
    assert "damaged" in caplog.text
    assert again.splits["train"]["keys"] == again.task.encode(again.dataset.load("train"))["keys"]
    assert json.loads((entry.folder / MANIFEST).read_text())["files"]["keys.json"]


# --- runs with and without the cache ----------------------------------------------------------------

TINY_RUNS = {
    "conll-tagger": {"model": {"n_layer": 1, "n_head": 2, "d_model": 16, "char_dim": 4, "char_channels": 8,
                               "rel_pos": 2},
                     "train": {"epochs": 1, "batch_size": 8, **QUICK}},
    "seq2py-pairs": {"model": {"d_model": 16, "n_head": 2, "d_ff": 32, "enc_layers": 1, "dec_layers": 1},
                     "task": {"beam": 1, "max_decode_len": 6, "vectors_epochs": 1},
                     "train": {"epochs": 1, "batch_size": 8, "freeze": {}, **QUICK}},
}


@pytest.mark.parametrize("entry", sorted(TINY_RUNS))
def test_runs_with_and_without_the_cache_give_the_same_losses_and_metrics(tmp_path, entry):
    cfg = zoo.config.merge(overrides(entry, user_file(tmp_path, entry)), TINY_RUNS[entry])
    runs = {}
    for name, extra in (("miss", {}), ("hit", {}), ("off", {"train": {"cache": False}})):
        api.reset()
        runs[name] = zoo.train(entry, zoo.config.merge(cfg, extra), out=tmp_path / name)
    history = {k: (r.run_dir / "metrics.jsonl").read_text().splitlines() for k, r in runs.items()}
    for name in ("hit", "off"):
        assert [json.loads(h)["train_loss"] for h in history[name]] == \
            [json.loads(h)["train_loss"] for h in history["miss"]]
        assert runs[name].metrics["val"] == runs["miss"].metrics["val"]
        assert runs[name].metrics.get("test") == runs["miss"].metrics.get("test")
    if entry == "seq2py-pairs":  # word vectors trained on the cached split: the same on every run
        vectors = {k: (r.run_dir / "vectors.txt").read_bytes() for k, r in runs.items()}
        assert vectors["hit"] == vectors["miss"] == vectors["off"]


# --- zoo eval when the run's training file is gone ----------------------------------------------------

def test_eval_of_a_run_whose_training_file_is_gone_reads_the_test_file_directly(cli, tmp_path):
    train = user_file(tmp_path, "text-rnn")
    test = tmp_path / "test.csv"
    test.write_text("\n".join(train.read_text(encoding="utf-8").splitlines()[:9]) + "\n", encoding="utf-8")
    cfg = zoo.config.merge(overrides("text-rnn", train), {
        "dataset": {"test_file": str(test)}, "model": {"hidden": 8, "emb_dim": 8},
        "tokenizer": {"text": {"min_freq": 1}}, "train": {"epochs": 1, "batch_size": 4, **QUICK}})
    run = zoo.train("text-rnn", cfg, out=tmp_path / "run")
    train.unlink()
    result = cli("eval", str(run.run_dir), "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["examples"] == 8 and metrics["accuracy"] == run.metrics["test"]["accuracy"]
    val = cli("eval", str(run.run_dir), "--split", "val")  # carved from the training file: it says so
    assert val.exit_code == 1 and "Traceback" not in val.output
    assert [line for line in val.output.splitlines() if line.startswith("Error: ")] == \
        [line for line in val.output.splitlines() if "dataset.train_file=" in line]
