"""The public helpers plugins build on (zoo.__all__): vocabularies, metrics, padding, files, downloads."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

import zoo


# --- vocabularies ------------------------------------------------------------------------------------

def test_by_frequency_orders_filters_and_cuts():
    counts = Counter({"b": 3, "a": 3, "c": 1, "<pad>": 9, "d": 2})
    assert zoo.by_frequency(counts) == ["<pad>", "a", "b", "d", "c"]  # ties in code-point order
    assert zoo.by_frequency(counts, min_freq=2, exclude={"<pad>"}) == ["a", "b", "d"]
    assert zoo.by_frequency(counts, min_freq=2, max_size=2, exclude={"<pad>"}) == ["a", "b"]


def test_label_tokenizer_sorted_or_by_frequency_and_refusals():
    tok = zoo.LabelTokenizer()
    tok.fit(["pos", "neg", "pos"])
    assert tok.labels == ["neg", "pos"] and tok.encode("pos") == [5] and tok.encode("meh") == [tok.unk_id]

    class Tags(zoo.LabelTokenizer):
        order = "frequency"
        name = "my-tags"

        def split(self, text):
            return text.split()

    tags = Tags()
    tags.fit(["NN DT NN", "VB NN"])
    assert tags.labels == ["NN", "DT", "VB"]
    with pytest.raises(zoo.DataError, match="my-tags tokenizer: the label '<unk>' is a reserved token name"):
        tags.fit(["NN <unk>"])
    with pytest.raises(zoo.DataError, match="labels tokenizer: no labels to fit on"):
        zoo.LabelTokenizer().fit([])


# --- metrics -------------------------------------------------------------------------------------------

def test_confusion_matrix_counts_unseen_gold_labels_in_a_last_row():
    pred = torch.tensor([0, 1, 1, 0, 2])
    gold = torch.tensor([0, 1, -1, 1, 2])
    cm = zoo.confusion_matrix(pred, gold, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]]
    tp, fp, fn = zoo.class_counts(cm)
    assert (tp, fp, fn) == ([1, 1, 1], [1, 1, 0], [0, 1, 0])  # the unseen label counts against class 1
    rows = zoo.class_scores(["a", "b", "c"], tp, fp, fn)
    assert rows[1] == {"label": "b", "support": 2, "predicted": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert zoo.macro_f1(rows) == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    with pytest.raises(ValueError, match="3 predictions for 2 gold labels"):
        zoo.confusion_matrix(pred[:3], gold[:2], 3)


def test_precision_recall_f1_is_zero_where_undefined():
    assert zoo.precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)
    assert zoo.precision_recall_f1(2, 2, 0) == (0.5, 1.0, pytest.approx(2 / 3))
    assert zoo.macro_f1([{"support": 0, "predicted": 0, "f1": 0.0}]) == 0.0


# --- padding -------------------------------------------------------------------------------------------

def test_pad_rows_pads_lists_and_tensors_to_the_longest_or_a_width():
    assert zoo.pad_rows([[1, 2, 3], [4]], 0).tolist() == [[1, 2, 3], [4, 0, 0]]
    assert zoo.pad_rows([torch.tensor([5]), torch.tensor([], dtype=torch.long)], -100).tolist() == [[5], [-100]]
    assert zoo.pad_rows([[], []], 7).tolist() == [[7], [7]]  # always at least one column
    assert zoo.pad_rows([[1]], 0, width=3).tolist() == [[1, 0, 0]]
    assert zoo.pad_rows([], 0, width=2).shape == (0, 2)
    assert zoo.pad_rows([[1]], 0).dtype == torch.long
    with pytest.raises(ValueError, match="more than width=1"):
        zoo.pad_rows([[1, 2]], 0, width=1)


# --- a user's own files ----------------------------------------------------------------------------------

def test_local_path_looks_in_the_working_directory_then_the_data_dir(tmp_path, monkeypatch):
    here, data = tmp_path / "here", tmp_path / "data"
    (here / "mine").mkdir(parents=True)
    (data / "corpus").mkdir(parents=True)
    (here / "mine" / "a.txt").write_text("here")
    (data / "corpus" / "b.txt").write_text("data")
    (data / "mine").mkdir()
    (data / "mine" / "a.txt").write_text("shadowed")
    monkeypatch.chdir(here)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    assert zoo.local_path("mine/a.txt", data) == Path("mine/a.txt")  # the working directory first, as given
    assert zoo.local_path("mine/a.txt", data).read_text() == "here"
    assert zoo.local_path("corpus/b.txt", data) == data / "corpus" / "b.txt"
    assert zoo.local_path("corpus", data, kind="folder") == data / "corpus"
    monkeypatch.setenv("ZOO_DATA_DIR", str(data))  # no data_dir given: ZOO_DATA_DIR
    assert zoo.local_path("corpus/b.txt") == data / "corpus" / "b.txt"
    assert zoo.local_path(str(data / "corpus" / "b.txt")) == data / "corpus" / "b.txt"
    with pytest.raises(zoo.DataError, match=rf"dataset.folder=corpus: no such file in {here} or {data}"):
        zoo.local_path("corpus", key="dataset.folder", kind="file")
    with pytest.raises(zoo.DataError, match=r"/nope.txt: no such file or folder; give an absolute path"):
        zoo.local_path(tmp_path / "nope.txt")


def test_rnn_classifier_vectors_are_found_through_the_runs_data_dir(tmp_path, monkeypatch):
    """--data-dir reaches init_embedding through Task.data_dir: ZOO_DATA_DIR is not needed."""
    from zoo_text_classify.model import RNNClassifier
    from zoo_text_classify.task import ClassificationTask
    from zoo_text_classify.tokenizers import LabelTokenizer, WordTokenizer

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vecs.txt").write_text("good 1 2 3 4\nfilm 5 6 7 8\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    task = ClassificationTask(None, {"text": WordTokenizer(), "labels": LabelTokenizer()})
    examples = [{"text": "good film", "label": "pos"}, {"text": "bad", "label": "neg"}]
    task.fit_tokenizers(examples)
    cfg = zoo.build_config(RNNClassifier.Config, {"emb_dim": 4, "hidden": 4, "vectors": "vecs.txt"}, "model")
    model = RNNClassifier(cfg, **task.model_sizes())
    with pytest.raises(zoo.DataError, match="model.vectors=vecs.txt: no such file"):
        task.init_model(model, task.encode(examples))
    task.data_dir = tmp_path / "data"
    task.init_model(model, task.encode(examples))
    good = task.tokenizers["text"].stoi["good"]
    assert model.embedding.weight[good].tolist() == [1.0, 2.0, 3.0, 4.0]


# --- official files: download, decompress, verify ----------------------------------------------------------

def test_download_gunzips_verifies_and_leaves_nothing_on_failure(tmp_path):
    payload = b"word\tTAG\n" * 100
    gz = tmp_path / "file.txt.gz"
    gz.write_bytes(gzip.compress(payload))
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "file.txt"
    assert zoo.download(gz.as_uri(), dest, good, decompress="gzip") == dest
    assert dest.read_bytes() == payload and zoo.sha256_file(dest) == good
    other = tmp_path / "cache" / "other.txt"
    with pytest.raises(zoo.DataError, match="does not match the expected"):
        zoo.download(gz.as_uri(), other, "0" * 64, decompress="gzip")
    with pytest.raises(zoo.DataError, match=r"cannot download .*missing\.gz.*download and gunzip it by hand"):
        zoo.download((tmp_path / "missing.gz").as_uri(), other, decompress="gzip")
    assert not other.exists() and os.listdir(other.parent) == ["file.txt"]  # no partial files


def test_a_dataset_source_served_gzipped_lands_unzipped_in_the_cache(tmp_path, monkeypatch):
    payload = b"hello\n"
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(payload))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)

    class Tiny(zoo.Dataset):
        folder = "tiny"
        sources = (zoo.Source("x.txt", gz.as_uri(), hashlib.sha256(payload).hexdigest(), decompress="gzip"),)

        def load(self, split):
            return [{"text": self.file("x.txt").read_text()}]

    assert Tiny().load("train") == [{"text": "hello\n"}]
    assert (tmp_path / "cache" / "tiny" / "x.txt").read_bytes() == payload  # conftest's ZOO_CACHE_DIR


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "sub" / "best.toml"
    zoo.atomic_write(path, "a = 1\n")
    zoo.atomic_write(path, b"a = 2\n")
    assert path.read_text() == "a = 2\n" and os.listdir(path.parent) == ["best.toml"]
    with pytest.raises(RuntimeError), zoo.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "a = 2\n" and os.listdir(path.parent) == ["best.toml"]


def test_config_helpers_merge_parse_build_and_toml(tmp_path):
    sets = zoo.parse_sets(["model.hidden=64", "optim.betas=[0.9, 0.95]", "train.device=cpu"])
    assert sets == {"model": {"hidden": 64}, "optim": {"betas": [0.9, 0.95]}, "train": {"device": "cpu"}}
    assert zoo.merge_config({"model": {"hidden": 32, "layers": 2}}, sets)["model"] == {"hidden": 64, "layers": 2}
    cfg = zoo.build_config(zoo.OptimConfig, sets["optim"], "optim")
    assert cfg.betas == (0.9, 0.95)
    with pytest.raises(zoo.ConfigError, match="optim.lr must be > 0"):
        zoo.build_config(zoo.OptimConfig, {"lr": 0}, "optim")
    (tmp_path / "c.toml").write_text(zoo.dumps_toml({**sets, "train": {"max_steps": None}}))
    assert zoo.load_toml(tmp_path / "c.toml")["train"] == {"max_steps": "none"}  # TOML has no null
