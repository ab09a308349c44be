"""ONNX export of classifiers, taggers and seq2seq encoders: onnxruntime gives zoo's answers, also without zoo."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import zoo
from zoo import api
from zoo.errors import ZooError
from zoo.interop import describe, export_onnx

pytest.importorskip("onnx", reason="the onnx extra (pip install 'zoo[onnx]') is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'zoo[onnx]') is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5  # fp32, onnxruntime against zoo
REVIEWS = str(ROOT / "examples" / "text_classification" / "reviews.csv")
CONLL = str(ROOT / "plugins" / "zoo_tagging" / "example.conll")
TEXTS = ["A warm, funny film!", "Dull<br />DULL.", "zzz qqq unknown", "Loved it " * 30, "great",
         "one two three four five six seven eight", "!!!"]  # 1 token, exactly max_len, cut head+tail, unknowns
SENTENCES = [["The", "cat", "sat", "."], "A", "Extraordinarilylongword x", " ".join(["word"] * 15),
             "Sales rose 42 % in 1999 ."]  # one word, a word past max_word_chars, pieces past max_len, digits
QUICK = {"progress": False, "threads": 1}


def train(entry, out, overrides):
    api.reset()
    zoo.train(entry, zoo.config.merge(overrides, {"train": QUICK}), out=out)
    return out


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):  # text-rnn with imdb-rnn's hashed word pairs and triples and its n-gram bag
    return train("text-rnn", tmp_path_factory.mktemp("cls") / "run", {
        "dataset": {"train_file": REVIEWS, "val_fraction": 0.25}, "tokenizer": {"text": {"min_freq": 1}},
        "model": {"hidden": 8, "emb_dim": 8, "bigrams": 1024, "trigrams": 1024, "bag": 256},
        "task": {"max_len": 8, "truncate": "head+tail"}, "train": {"epochs": 1, "batch_size": 4}})


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):  # pos-transformer-char's architecture on the plugin's example file
    return train("conll-tagger", tmp_path_factory.mktemp("tag") / "run", {
        "dataset": {"train_file": CONLL, "val_fraction": 0.25, "label_column": 1},
        "model": {"n_layer": 1, "n_head": 2, "d_model": 32, "char_dim": 8, "char_channels": 16, "rel_pos": 4},
        "task": {"max_len": 6, "max_word_chars": 6}, "train": {"epochs": 1, "batch_size": 4}})


def exported(run, tmp_path, name="model.onnx"):
    lm = zoo.load(run)
    path = export_onnx(lm, tmp_path / name)
    spec = importlib.util.spec_from_file_location("zoo_onnx_preprocess_test", tmp_path / "zoo_onnx_preprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pre = module.Preprocessor(path.with_suffix(".json"))
    return lm, pre, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_classifier(lm, pre, session):
    feeds = pre.classification(TEXTS)
    for i, text in enumerate(TEXTS):  # the same ids zoo reads
        ids = lm.task.text_ids(text)[0].tolist()
        assert feeds["ids"][i, : feeds["lengths"][i]].tolist() == ids and len(ids) == feeds["lengths"][i]
    probs = session.run(["probabilities"], feeds)[0]
    with torch.no_grad():
        want = torch.softmax(lm.model(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"])), -1)
    assert float(abs(torch.from_numpy(probs) - want).max()) < TOL
    records = lm.predict(TEXTS)
    assert [r["label"] for r in records] == [pre.labels[k] for k in probs.argmax(1)]
    for text in TEXTS:  # alone: a batch without padding, and for "great" a batch one token long
        feeds = pre.classification([text])
        alone = session.run(["probabilities"], feeds)[0]
        with torch.no_grad():
            want = torch.softmax(lm.model(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"])), -1)
        assert float(abs(torch.from_numpy(alone) - want).max()) < TOL


def test_classifier_with_hashed_ngrams_gives_zoo_probabilities(classifier, tmp_path):
    lm, pre, session = exported(classifier, tmp_path)
    assert lm.model.config.bigrams and lm.model.config.trigrams  # computed inside the graph
    check_classifier(lm, pre, session)
    side = json.loads((tmp_path / "model.json").read_text())
    assert side["labels"] == lm.task.labels and side["family"] == "classification"


def test_packed_bidirectional_lstm_classifier_gives_zoo_probabilities(tmp_path):
    run = train("text-rnn", tmp_path / "run", {
        "dataset": {"train_file": REVIEWS, "val_fraction": 0.25}, "tokenizer": {"text": {"min_freq": 1}},
        "model": {"cell": "lstm", "packed": True, "layers": 2, "pooling": "last+mean+max", "hidden": 8, "emb_dim": 8},
        "task": {"max_len": 8}, "train": {"epochs": 1, "batch_size": 4}})
    check_classifier(*exported(run, tmp_path / "onnx"))


def test_tagger_gives_zoo_tags(tagger, tmp_path):
    lm, pre, session = exported(tagger, tmp_path)
    feeds, counts = pre.tagging(SENTENCES)
    assert counts == [1, 1, 1, 3, 2]  # 15 and 7 words in pieces of max_len 6
    logits, tags = session.run(["logits", "tags"], feeds)
    words = [s.split() if isinstance(s, str) else s for s in SENTENCES]
    enc = lm.task.encode_sentences(words, [[-100] * len(w) for w in words])
    batch = lm.task._batch(enc, torch.arange(len(enc["lengths"])))  # zoo's own batch of the same sentences
    assert torch.equal(batch["words"], torch.from_numpy(feeds["words"]))
    with torch.no_grad():
        want = lm.task.logits(lm.model, batch)
    real = batch["words"] != 0
    assert float(abs(torch.from_numpy(logits) - want)[real].max()) < TOL
    assert pre.tag_labels(tags, counts, SENTENCES) == [r["tags"] for r in lm.predict(SENTENCES, batch_size=64)]


def test_seq2seq_encoder_gives_zoo_states(tmp_path):
    run = train("subseq-gru", tmp_path / "run", {
        "dataset": {"train_size": 256, "val_size": 64, "test_size": 64},
        "model": {"emb_dim": 8, "hidden": 16, "layers": 2, "bidirectional_encoder": True},
        "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64}})
    lm, pre, session = exported(run, tmp_path / "onnx")
    feeds = pre.seq2seq(["2 3 7 1 9 4 4 0 2 8", "1 1 5", "0", "9 9 9 9 9 9 9 9 9 9"])
    outputs, hidden = session.run(["outputs", "hidden"], feeds)
    with torch.no_grad():
        want_out, want_hidden, _ = lm.model.encode(torch.from_numpy(feeds["src"]), torch.from_numpy(feeds["src_lengths"]))
    assert float(abs(torch.from_numpy(outputs) - want_out).max()) < TOL
    assert float(abs(torch.from_numpy(hidden) - want_hidden).max()) < TOL


def test_the_documented_snippet_runs_without_zoo_or_torch(classifier, tagger, tmp_path):
    for run, name in ((classifier, "reviews.onnx"), (tagger, "tagger.onnx")):
        export_onnx(zoo.load(run), tmp_path / name)
    script = textwrap.dedent("""
        import json, sys
        class NoZoo:  # zoo and torch must not be needed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("zoo", "torch"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, NoZoo())
        import onnxruntime as ort
        from zoo_onnx_preprocess import Preprocessor
        pre = Preprocessor("reviews.json")
        session = ort.InferenceSession("reviews.onnx")
        probs = session.run(["probabilities"], pre.classification(sys.argv[1:]))[0]
        tagging = Preprocessor("tagger.json")
        feeds, counts = tagging.tagging(["The cat sat ."])
        tags = ort.InferenceSession("tagger.onnx").run(["tags"], feeds)[0]
        print(json.dumps({"labels": [pre.labels[i] for i in probs.argmax(1)],
                          "tags": tagging.tag_labels(tags, counts, ["The cat sat ."])}))
    """)
    done = subprocess.run([sys.executable, "-c", script, *TEXTS[:3]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["labels"] == [r["label"] for r in zoo.load(classifier).predict(TEXTS[:3])]
    assert got["tags"] == [zoo.load(tagger).predict(["The cat sat ."])[0]["tags"]]


def test_export_refuses_what_it_cannot_write(classifier, tmp_path):
    lm = zoo.load(classifier)
    with pytest.raises(ZooError, match="ending in .onnx"):
        export_onnx(lm, tmp_path / "model.bin")
    export_onnx(lm, tmp_path / "model.onnx")
    with pytest.raises(ZooError, match="force=True"):
        export_onnx(lm, tmp_path / "model.onnx")
    export_onnx(lm, tmp_path / "model.onnx", force=True)
    lm.metadata["task"] = "lm:lm"
    with pytest.raises(ZooError, match="--format hf"):
        export_onnx(lm, tmp_path / "gpt.onnx")
    assert not (tmp_path / "gpt.onnx").exists()


def test_zoo_info_describes_an_onnx_export(classifier, tmp_path):
    from zoo.interop.commands import export_other

    assert export_other(classifier, tmp_path / "model.onnx", "onnx") == tmp_path / "model.onnx"  # zoo export --format
    lines = describe(tmp_path / "model.onnx")
    assert "exported by zoo" in lines[1] and "classification" in lines[1]
    assert any(line.startswith("labels: ") for line in lines)
    assert lines[-1].startswith("zoo import: not possible")
    (tmp_path / "model.json").unlink()
    assert "no zoo sidecar" in describe(tmp_path / "model.onnx")[1]
    assert describe(tmp_path / "zoo_onnx_preprocess.py") is None


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["imdb-rnn", "pos-transformer-char"])
def test_shipped_entries_on_real_data(entry, data_dir_or_skip, tmp_path):
    tiny = zoo.get_registry().get("entry", entry).data["tiny"]
    run = train(entry, tmp_path / "run", tiny)
    lm, pre, session = exported(run, tmp_path / "onnx")
    if entry == "imdb-rnn":
        feeds = pre.classification(TEXTS)
        probs = session.run(["probabilities"], feeds)[0]
        want = [[p["probability"] for p in sorted(r["probabilities"], key=lambda p: lm.task.labels.index(p["label"]))]
                for r in lm.predict(TEXTS)]
        assert float(abs(torch.tensor(probs) - torch.tensor(want)).max()) < 1e-5  # predict rounds to 6 digits
    else:
        feeds, counts = pre.tagging(SENTENCES)
        tags = session.run(["tags"], feeds)[0]
        assert pre.tag_labels(tags, counts, SENTENCES) == [r["tags"] for r in lm.predict(SENTENCES, batch_size=64)]
