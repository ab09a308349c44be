"""The tagging plugin: CoNLL data, word and label vocabularies, the tagging task, the Transformer tagger."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo import config
from zoo_tagging.dataset import CoNLL2000, CoNLL2000Config, CoNLLFiles, parse_conll, read_conll
from zoo_tagging.model import TransformerTagger, TransformerTaggerConfig
from zoo_tagging.task import PAD, TaggingTask, is_bio, spans
from zoo_tagging.tokenizers import TagTokenizer, WordTokenizer
from zoo_tokenizers.char import CharTokenizer

from conftest import ROOT, data_dir

EXAMPLE = ROOT / "plugins" / "zoo_tagging" / "example.conll"

TRAIN = [
    {"tokens": ["The", "cat", "sat", "."], "tags": ["DT", "NN", "VBD", "."]},
    {"tokens": ["A", "dog", "sat", "on", "the", "mat", "."], "tags": ["DT", "NN", "VBD", "IN", "DT", "NN", "."]},
    {"tokens": ["Dogs", "bark", "."], "tags": ["NNS", "VBP", "."]},
]


def make_task(train=TRAIN, **task_cfg) -> TaggingTask:
    task = TaggingTask(config.build(TaggingTask.Config, task_cfg, "task"),
                       {"words": WordTokenizer(), "tags": TagTokenizer(), "chars": CharTokenizer()})
    task.fit_tokenizers(train)
    return task


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class Oracle(torch.nn.Module):
    """A stand-in model: the gold class on real tokens (or ``wrong`` ones), a wrong class on padding."""

    def __init__(self, tags: torch.Tensor, n_tags: int, wrong: bool = False):
        super().__init__()
        self.tags, self.n_tags, self.wrong = tags, n_tags, wrong

    def forward(self, words, chars, char_index):
        gold = self.tags.clamp(min=0)
        pred = torch.where(self.tags == PAD, 1, (gold + int(self.wrong)) % self.n_tags)
        return torch.nn.functional.one_hot(pred, self.n_tags).float() * 10  # (B, T, K)


def oracle_sums(task: TaggingTask, examples, wrong: bool = False) -> dict[str, float]:
    enc = task.encode(examples)
    sums: dict[str, float] = {}
    for batch in task.batches(enc, 2, shuffle=False, seed=0):
        for k, v in task.eval_batch(Oracle(batch["tags"], len(task.labels), wrong), batch).items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return sums


# --- CoNLL-2000 (real data under ZOO_DATA_DIR) ----------------------------------------------------

@pytest.fixture
def conll_dir():
    root = data_dir()
    if root is None or not (root / "conll2000" / "train.txt").is_file():
        pytest.skip("ZOO_DATA_DIR is not set or holds no conll2000/train.txt")
    return root


def test_conll2000_has_the_published_counts(conll_dir):
    ds = CoNLL2000(data_dir=conll_dir)
    assert ds.splits == ("train", "test")
    train, test = ds.load("train"), ds.load("test")
    assert (len(train), len(test)) == (8_936, 2_012)
    assert sum(len(s["tokens"]) for s in train) == 211_727
    assert sum(len(s["tokens"]) for s in test) == 47_377
    assert train[0]["tokens"][:3] == ["Confidence", "in", "the"] and train[0]["tags"][:3] == ["NN", "IN", "DT"]
    assert len({t for s in train for t in s["tags"]}) == 44  # POS tags


def test_conll2000_chunk_column_and_val_split(conll_dir):
    chunk = CoNLL2000(config.build(CoNLL2000.Config, {"label": "chunk", "val_sentences": 1000}, "dataset"),
                      data_dir=conll_dir)
    assert chunk.splits == ("train", "val", "test")
    train, val = chunk.load("train"), chunk.load("val")
    assert (len(train), len(val)) == (7_936, 1_000)
    assert train[0]["tags"][:3] == ["B-NP", "B-PP", "B-NP"]
    assert len({t for s in train + val for t in s["tags"]}) == 22
    assert is_bio(sorted({t for s in train for t in s["tags"]}))
    with pytest.raises(zoo.ConfigError, match="dataset.label"):
        config.build(CoNLL2000.Config, {"label": "ner"}, "dataset")


def test_conll2000_without_a_data_dir_fetches_and_unzips_the_official_gz(conll_dir, tmp_path, monkeypatch):
    sources = []
    for s in CoNLL2000.sources:  # the official URLs serve .gz files; stand-ins on disk, no network
        gz = tmp_path / f"{s.filename}.gz"
        gz.write_bytes(gzip.compress((conll_dir / "conll2000" / s.filename).read_bytes()))
        sources.append(dataclasses.replace(s, url=gz.as_uri()))
    monkeypatch.setattr(CoNLL2000, "sources", tuple(sources))
    monkeypatch.delenv("ZOO_DATA_DIR")  # no data dir at all: the download cache
    ds = CoNLL2000(data_dir=None)
    assert len(ds.load("test")) == 2_012
    assert (tmp_path / "cache" / "conll2000" / "test.txt").is_file()  # conftest's ZOO_CACHE_DIR


# --- reading CoNLL files --------------------------------------------------------------------------

def test_a_line_with_the_wrong_number_of_columns_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conll", "The DT B-NP\ncat NN I-NP\n\nDogs NNS\nbark VBP B-VP\n")
    with pytest.raises(zoo.DataError, match=r"bad\.conll, line 4: expected 3 columns \(as on line 1\), found 2"):
        read_conll(path)


def test_a_file_without_sentences_is_an_error(tmp_path):
    for name, text in (("empty.conll", ""), ("blank.conll", "\n \n\t\n")):
        with pytest.raises(zoo.DataError, match=rf"{name}: no sentences"):
            read_conll(write(tmp_path / name, text))
    ds = CoNLLFiles(config.build(CoNLLFiles.Config, {"train_file": str(tmp_path / "empty.conll")}, "dataset"))
    with pytest.raises(zoo.DataError, match="no sentences"):
        ds.load("train")


def test_parsing_blank_lines_docstart_tabs_and_a_missing_final_blank_line():
    text = "-DOCSTART- -X- O\n\nEU\tNNP\tB-ORG\nrejects VBZ O\n\n\n\nPeter NNP B-PER\r\nBlackburn NNP I-PER"
    sents = parse_conll(text, "x.conll")
    assert sents == [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]},
                     {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}]
    assert parse_conll(text, "x.conll", label_column=1)[0]["tags"] == ["NNP", "VBZ"]
    with pytest.raises(zoo.DataError, match=r"x\.conll, line 3: dataset.label_column=3, but the file has 3 columns"):
        parse_conll(text, "x.conll", label_column=3)


def test_user_conll_files_with_column_choice(tmp_path):
    rows = "1 The the DT B-NP\n2 cat cat NN I-NP\n\n1 Dogs dog NNS B-NP\n2 bark bark VBP B-VP\n\n"
    train = write(tmp_path / "train.conll", rows * 5)
    test = write(tmp_path / "test.conll", rows)

    def load(split, **values):
        return CoNLLFiles(config.build(CoNLLFiles.Config, values, "dataset")).load(split)

    pos = load("train", train_file=str(train), word_column=1, label_column=3, val_fraction=0.0)
    assert len(pos) == 10 and pos[0] == {"tokens": ["The", "cat"], "tags": ["DT", "NN"]}
    lemma = load("test", train_file=str(train), test_file=str(test), word_column=2, label_column=-1)
    assert lemma[1] == {"tokens": ["dog", "bark"], "tags": ["B-NP", "B-VP"]}
    ds = CoNLLFiles(config.build(CoNLLFiles.Config, {"train_file": str(train), "val_fraction": 0.2}, "dataset"))
    assert ds.splits == ("train", "val") and (len(ds.load("train")), len(ds.load("val"))) == (8, 2)
    with_val = CoNLLFiles(config.build(CoNLLFiles.Config, {"train_file": str(train), "val_file": str(test),
                                                           "test_file": str(test)}, "dataset"))
    assert with_val.splits == ("train", "val", "test") and len(with_val.load("train")) == 10
    with pytest.raises(zoo.ConfigError, match="train_file is empty"):
        config.build(CoNLLFiles.Config, {}, "dataset")
    with pytest.raises(zoo.DataError, match=r"missing\.conll: no such file"):
        load("train", train_file=str(tmp_path / "missing.conll"))


# --- vocabularies ---------------------------------------------------------------------------------

def test_word_tokenizer_min_freq_lowercase_digits_and_unknown_words():
    tok = WordTokenizer(config.build(WordTokenizer.Config, {"min_freq": 2, "lowercase": True,
                                                           "digits_to_zero": True}, "tokenizer"))
    tok.fit(["The cat saw 12 cats", "the dog saw 34 dogs"])
    assert tok.itos[4:] == ["00", "saw", "the"]  # frequency, then code point; cat/dog seen once
    ids = tok.encode("THE zebra saw 99 <pad>")
    assert ids == [tok.stoi["the"], tok.unk_id, tok.stoi["saw"], tok.stoi["00"], tok.unk_id]
    assert tok.decode(ids) == "the <unk> saw 00 <unk>" and tok.encode(tok.decode(ids)) == ids
    clone = WordTokenizer(tok.config)
    clone.set_state(json.loads(json.dumps(tok.get_state())))
    assert clone.encode("the zebra") == tok.encode("the zebra")


def test_tag_tokenizer_is_a_label_vocabulary():
    tok = TagTokenizer()
    tok.fit(["DT NN VBD", "NN NN ."])
    assert tok.labels == ["NN", ".", "DT", "VBD"]
    assert tok.encode("NN XX") == [4, tok.unk_id]
    with pytest.raises(zoo.DataError, match="reserved"):
        TagTokenizer().fit(["NN <pad>"])


# --- the task -------------------------------------------------------------------------------------

def test_accuracy_counts_real_tokens_only():
    task = make_task()
    sums = oracle_sums(task, TRAIN)  # batches of 2 sentences of different lengths: padding in every batch
    metrics = task.summarize(sums)
    assert metrics["tokens"] == 14 and metrics["accuracy"] == 1.0 and metrics["macro_f1"] == 1.0
    wrong = task.summarize(oracle_sums(task, TRAIN, wrong=True))
    assert wrong["tokens"] == 14 and wrong["accuracy"] == 0.0
    rows = {r["label"]: r for r in task.class_table(sums)}
    assert rows["DT"]["support"] == 3 and rows["NN"]["recall"] == 1.0
    assert sum(r["support"] for r in rows.values()) == 14


def test_labels_never_seen_in_training_are_counted_not_fatal(caplog):
    task = make_task()
    test = [{"tokens": ["Wow", ",", "the", "cat", "sat"], "tags": ["UH", ",", "DT", "NN", "VBD"]}]
    with caplog.at_level(logging.WARNING):
        enc = task.encode(test)
    assert enc["unknown"] == {"UH": 1, ",": 1}
    assert "2 tokens carry 2 labels never seen in training" in caplog.text
    metrics = task.summarize(oracle_sums(task, test))
    assert metrics["unknown_labels"] == 2 and metrics["tokens"] == 5
    assert metrics["accuracy"] == pytest.approx(3 / 5)  # the model cannot produce them: they are errors
    assert math.isfinite(metrics["loss"])


def test_long_sentences_are_cut_into_pieces_and_every_token_is_tagged():
    task = make_task(max_len=3)
    enc = task.encode(TRAIN)
    assert enc["lengths"].tolist() == [3, 1, 3, 3, 1, 3]
    assert task.summarize(oracle_sums(task, TRAIN))["tokens"] == 14


def test_bio_spans_as_conlleval_reads_them():
    assert spans(["B-NP", "I-NP", "O", "B-VP", "I-VP", "I-VP"]) == {("NP", 0, 2), ("VP", 3, 6)}
    assert spans(["I-NP", "I-NP", "B-NP", "O", "I-PP"]) == {("NP", 0, 2), ("NP", 2, 3), ("PP", 4, 5)}
    assert spans(["B-NP", "I-VP", "I-VP"]) == {("NP", 0, 1), ("VP", 1, 3)}
    assert spans(["O", "O"]) == set()
    assert is_bio(["B-NP", "I-NP", "O"]) and not is_bio(["NN", "IN", "O"]) and not is_bio(["O"])


def test_span_f1_on_hand_made_predictions():
    train = [{"tokens": ["the", "cat", "sat", "down"], "tags": ["B-NP", "I-NP", "B-VP", "B-ADVP"]}]
    task = make_task(train)
    assert task.span_f1 and not make_task().span_f1
    enc = task.encode(train)
    batch = next(task.batches(enc, 1, shuffle=False, seed=0))
    labels = task.labels

    class Fixed(torch.nn.Module):
        def __init__(self, pred):
            super().__init__()
            self.pred = torch.tensor([[labels.index(p) for p in pred]])

        def forward(self, words, chars, char_index):
            return torch.nn.functional.one_hot(self.pred, len(labels)).float()

    # gold chunks: NP(0,2) VP(2,3) ADVP(3,4); predicted: NP(0,1) NP(1,2) VP(2,3) ADVP(3,4)
    sums = task.eval_batch(Fixed(["B-NP", "B-NP", "B-VP", "B-ADVP"]), batch)
    m = task.summarize(sums)
    assert (sums["span_correct"], sums["span_found"], sums["span_gold"]) == (2, 4, 3)
    assert m["span_precision"] == pytest.approx(0.5) and m["span_recall"] == pytest.approx(2 / 3)
    assert m["span_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["accuracy"] == pytest.approx(3 / 4)


def test_batches_are_bucketed_and_follow_the_seed():
    examples = [{"tokens": ["w"] * n, "tags": ["NN"] * n} for n in range(1, 41)]
    task = make_task(examples)
    enc = task.encode(examples)
    first = [b["index"].tolist() for b in task.batches(enc, 4, shuffle=True, seed=1)]
    assert first == [b["index"].tolist() for b in task.batches(enc, 4, shuffle=True, seed=1)]
    assert first != [b["index"].tolist() for b in task.batches(enc, 4, shuffle=True, seed=2)]
    assert sorted(i for b in first for i in b) == list(range(40))  # every sentence once
    assert all(max(b) - min(b) == 3 for b in first)  # sorted pools: lengths of a batch are neighbours


# --- the model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, {"char_features": True, "rel_pos": 2}])
def test_padding_does_not_change_the_logits_of_real_tokens(extra):
    torch.manual_seed(0)
    task = make_task()
    cfg = config.build(TransformerTagger.Config, {"n_layer": 2, "n_head": 2, "d_model": 16, "char_dim": 8,
                                                  "char_channels": 8, **extra}, "model")
    model = TransformerTagger(cfg, **task.model_sizes()).eval()
    short = TRAIN[2]  # 3 tokens; padded to 7 next to TRAIN[1]
    alone = next(task.batches(task.encode([short]), 8, shuffle=False, seed=0))
    padded = next(task.batches(task.encode([TRAIN[1], short]), 8, shuffle=False, seed=0))
    row = padded["index"].tolist().index(1)
    assert padded["words"].shape[1] == 7 and (padded["words"][row, 3:] == 0).all()
    with torch.no_grad():
        a = task.logits(model, alone)[0]  # (3, K)
        b = task.logits(model, padded)[row, :3]
    assert torch.allclose(a, b, atol=1e-5)


def test_model_config_is_checked_and_logits_have_the_task_shape():
    task = make_task()
    with pytest.raises(zoo.ConfigError, match="multiple of n_head"):
        config.build(TransformerTagger.Config, {"d_model": 30, "n_head": 4}, "model")
    model = TransformerTagger(TransformerTagger.Config(d_model=16, n_head=2, char_features=True), **task.model_sizes())
    batch = next(task.batches(task.encode(TRAIN), 3, shuffle=True, seed=0))
    model.train()
    logits = task.logits(model, batch)
    assert logits.shape == (3, batch["words"].shape[1], len(task.labels))
    loss = task.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.chars.conv.weight.grad is not None


# --- end to end -----------------------------------------------------------------------------------

TINY_MODEL = {"n_layer": 1, "n_head": 2, "d_model": 32, "char_features": True, "char_dim": 8, "char_channels": 16,
              "rel_pos": 4}


class TinyEntries:
    """A fake plugin holding an entry, so these tests do not depend on registry.toml's entries."""

    @zoo.hookimpl
    def zoo_register_entries(self, register):
        register("tiny-tagger", {
            "summary": "tagging test entry", "model": "transformer-tagger", "task": "tagging", "dataset": "conll",
            "tokenizer": {"words": "conll-words", "tags": "conll-tags", "chars": "char"},
            "config": {"model": TINY_MODEL, "train": {"epochs": 3, "batch_size": 4, "threads": 1, "progress": False},
                       "optim": {"lr": 3e-3}},
        })


def test_tiny_end_to_end_train_eval_report(use_plugins, tmp_path):
    use_plugins(("tagtest", TinyEntries()))
    test = write(tmp_path / "test.conll", "The DT\ncat NN\nyawned VBD\n. .\n\nHey UH\n! .\n")
    overrides = {"dataset": {"train_file": str(EXAMPLE), "test_file": str(test), "label_column": 1,
                             "val_fraction": 0.25}}
    result = zoo.train("tiny-tagger", overrides, out=tmp_path / "run")
    test_metrics = result.metrics["test"]
    assert test_metrics["tokens"] == 6 and test_metrics["unknown_labels"] == 1  # UH is not in the example file
    assert {"accuracy", "loss", "macro_f1"} <= set(result.metrics["val"])
    assert "span_f1" not in test_metrics  # POS tags are not chunks
    again = zoo.evaluate(result.artifact, device="cpu")
    for key, value in test_metrics.items():
        assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    from zoo_tagging.report import report

    rep = report(result.artifact)
    assert rep.metrics["accuracy"] == pytest.approx(test_metrics["accuracy"])
    assert sum(r["support"] for r in rep.rows) == 5 and rep.unknown == {"UH": 1}
    assert sum(map(sum, rep.confusion)) == 6 and "label" in rep.table(3)
    png = rep.plot_confusion(tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_end_to_end_chunks_report_span_f1(use_plugins, tmp_path):
    use_plugins(("tagtest", TinyEntries()))
    result = zoo.train("tiny-tagger", {"dataset": {"train_file": str(EXAMPLE), "val_fraction": 0.25}},
                       out=tmp_path / "run")
    val = result.metrics["val"]
    assert 0.0 <= val["span_f1"] <= 1.0 and "test" not in result.metrics
    loaded = zoo.load(result.artifact)
    assert loaded.task.labels[0] in ("B-NP", "I-NP")  # the label vocabulary travels in the artifact
    # the same weights read out with BIO-constrained decoding: from the library and from zoo eval
    strict = zoo.evaluate(result.artifact, "val", device="cpu", task={"decode": "bio"})
    assert zoo.load(result.artifact, task={"decode": "bio"}).task.config.decode == "bio"
    assert strict["tokens"] == val["tokens"] and 0.0 <= strict["span_f1"] <= 1.0
    from click.testing import CliRunner

    from zoo.cli import build_cli

    runner = CliRunner()
    ok = runner.invoke(build_cli(), ["eval", str(result.artifact), "--set", "task.decode=bio", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout[ok.stdout.index("{"):])["span_f1"] == pytest.approx(strict["span_f1"])
    bad = runner.invoke(build_cli(), ["eval", str(result.artifact), "--set", "task.decode=beam"])
    assert bad.exit_code in (1, 2) and "decode" in bad.output and "Traceback" not in bad.output
    with pytest.raises(zoo.ZooError, match="nosuch"):
        zoo.evaluate(result.artifact, "val", device="cpu", task={"nosuch": 1})


def test_tiny_conll2000_end_to_end(use_plugins, conll_dir, tmp_path):
    use_plugins(("tagtest", TinyEntries()))
    overrides = {"dataset": {"name": "conll2000", "limit": 300},
                 "train": {"epochs": 1}}
    result = zoo.train("tiny-tagger", overrides, out=tmp_path / "run", data_dir=conll_dir)
    assert result.metrics["test"]["tokens"] == sum(len(s["tokens"]) for s in
                                                  CoNLL2000(data_dir=conll_dir).load("test")[:300])
    assert 0.0 < result.metrics["test"]["accuracy"] <= 1.0


def test_bio_viterbi_finds_the_best_valid_sequence_by_brute_force():
    import itertools

    from zoo_tagging.decode import bio_transitions, viterbi_bio

    labels = ["O", "B-NP", "I-NP", "B-VP", "I-VP"]
    allowed, start = bio_transitions(tuple(labels))
    assert not start[2] and not start[4] and start[0] and start[1]
    assert allowed[1, 2] and allowed[2, 2] and not allowed[0, 2] and not allowed[3, 2] and allowed[4, 0]

    def valid(seq):
        return start[seq[0]] and all(allowed[a, b] for a, b in zip(seq, seq[1:]))

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, len(labels), generator=gen) * 3
    lengths = torch.tensor([4, 3, 1, 4, 2, 4])
    got = viterbi_bio(logits, lengths, labels)
    logp = torch.log_softmax(logits, -1)
    for row in range(6):
        n = int(lengths[row])
        best = max((seq for seq in itertools.product(range(len(labels)), repeat=n) if valid(seq)),
                   key=lambda seq: sum(float(logp[row, i, c]) for i, c in enumerate(seq)))
        assert got[row, :n].tolist() == list(best)
        assert got[row, n:].tolist() == [0] * (4 - n)
    # where the argmax is already valid, nothing changes
    clean = torch.nn.functional.one_hot(torch.tensor([[1, 2, 0, 3]]), len(labels)).float() * 5
    assert viterbi_bio(clean, torch.tensor([4]), labels).tolist() == [[1, 2, 0, 3]]


def test_bio_decoding_removes_the_chunk_an_orphan_inside_tag_would_start():
    train = [{"tokens": ["the", "cat", "sat", "down"], "tags": ["B-NP", "I-NP", "B-VP", "O"]},
             {"tokens": ["has", "gone"], "tags": ["B-VP", "I-VP"]}]
    task, strict = make_task(train), make_task(train, decode="bio")
    labels = task.labels
    enc = task.encode(train[:1])
    batch = next(task.batches(enc, 1, shuffle=False, seed=0))

    class Scores(torch.nn.Module):  # token 1 prefers I-VP (invalid after B-NP), I-NP a close second
        def forward(self, words, chars, char_index):
            out = torch.full((1, 4, len(labels)), -5.0)
            for i, (lab, score) in enumerate([("B-NP", 5), ("I-VP", 2), ("B-VP", 5), ("O", 5)]):
                out[0, i, labels.index(lab)] = score
            out[0, 1, labels.index("I-NP")] = 1.5
            return out

    loose, tight = task.summarize(task.eval_batch(Scores(), batch)), strict.summarize(strict.eval_batch(Scores(), batch))
    assert loose["span_f1"] < 1.0 and tight["span_f1"] == pytest.approx(1.0)


def test_an_auxiliary_label_set_trains_a_second_head_and_leaves_the_main_outputs_alone(tmp_path):
    train = [{"tokens": ["the", "cat", "sat"], "tags": ["B-NP", "I-NP", "B-VP"], "aux_tags": ["DT", "NN", "VBD"]},
             {"tokens": ["dogs", "bark"], "tags": ["B-NP", "B-VP"], "aux_tags": ["NNS", "XX"]}]  # XX: not listed
    task = make_task(train, aux_labels=["DT", "NN", "NNS", "VBD", "VBP"], aux_weight=0.5)
    assert task.model_sizes()["n_aux"] == 5 and "n_aux" not in make_task(train).model_sizes()
    assert "n_aux" not in make_task(train, aux_labels=["DT"], aux_weight=0.0).model_sizes()  # no loss, no head
    enc = task.encode(train)
    assert enc["aux"][1, :2].tolist() == [2, PAD]  # an aux label outside task.aux_labels takes no part
    batch = next(task.batches(enc, 2, shuffle=False, seed=0))
    torch.manual_seed(0)
    model = TransformerTagger(TransformerTaggerConfig(**{**TINY_MODEL, "aux_layer": 1}), **task.model_sizes())
    model.eval()  # no dropout: the same inputs give the same outputs
    logits, aux = model(batch["words"], batch["chars"], batch["char_index"], aux=True)
    assert aux.shape == (*batch["words"].shape, 5)
    assert torch.equal(logits, model(batch["words"], batch["chars"], batch["char_index"]))
    main_only = make_task(train)
    main_enc = main_only.encode(train)
    main_batch = next(main_only.batches(main_enc, 2, shuffle=False, seed=0))
    expected = main_only.loss(model, main_batch) + 0.5 * torch.nn.functional.cross_entropy(
        aux.flatten(0, 1), batch["aux"].flatten(), ignore_index=PAD)
    assert task.loss(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad()
    task.loss(model, batch).backward()
    assert model.aux_head.weight.grad.abs().sum() > 0
    # examples without aux_tags (a user's file, the test split) add nothing to the loss
    plain = [{k: v for k, v in ex.items() if k != "aux_tags"} for ex in train]
    plain_batch = next(task.batches(task.encode(plain), 2, shuffle=False, seed=0))
    assert task.loss(model, plain_batch).item() == pytest.approx(main_only.loss(model, main_batch).item(), rel=1e-5)
    with pytest.raises(zoo.DataError, match="sentence 0 has 3 tokens but 2 aux_tags"):
        task.encode([{**train[0], "aux_tags": ["DT", "NN"]}])
    with pytest.raises(ValueError, match="aux_layer"):
        TransformerTaggerConfig(n_layer=2, aux_layer=3).validate()


def test_aux_feed_lets_the_later_blocks_read_the_auxiliary_heads_predicted_distribution():
    train = [{"tokens": ["the", "cat", "sat"], "tags": ["B-NP", "I-NP", "B-VP"], "aux_tags": ["DT", "NN", "VBD"]}]
    task = make_task(train, aux_labels=["DT", "NN", "VBD"], aux_weight=0.5)
    batch = next(task.batches(task.encode(train), 1, shuffle=False, seed=0))
    args = (batch["words"], batch["chars"], batch["char_index"])
    torch.manual_seed(0)
    fed = TransformerTagger(TransformerTaggerConfig(**{**TINY_MODEL, "aux_layer": 1, "aux_feed": True}),
                            **task.model_sizes()).eval()
    logits, aux = fed(*args, aux=True)
    assert torch.equal(logits, fed(*args))  # the feed runs with or without aux=True
    with torch.no_grad():  # the main head depends on the projection of the aux distribution
        fed.aux_proj.weight.mul_(3.0)
    assert not torch.allclose(logits, fed(*args))
    fed.zero_grad()
    task.loss(fed, batch).backward()
    assert fed.aux_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="aux_feed needs an auxiliary head"):
        TransformerTagger(TransformerTaggerConfig(**{**TINY_MODEL, "aux_feed": True}), **make_task(train).model_sizes())


def test_conll2000_gives_the_other_column_as_aux_tags(conll_dir):
    chunks = CoNLL2000(CoNLL2000Config(label="chunk", aux_label="pos", limit=5), data_dir=conll_dir).load("train")
    pos = CoNLL2000(CoNLL2000Config(label="pos", limit=5), data_dir=conll_dir).load("train")
    assert [ex["aux_tags"] for ex in chunks] == [ex["tags"] for ex in pos]
    assert chunks[0]["tags"][0].startswith(("B-", "I-", "O"))


# --- an ensemble of taggers (model.members) ---------------------------------------------------------

def test_members_are_independent_taggers_fitted_on_their_own_losses_and_averaged_in_probability():
    train = [{"tokens": ["the", "cat", "sat"], "tags": ["B-NP", "I-NP", "B-VP"], "aux_tags": ["DT", "NN", "VBD"]},
             {"tokens": ["dogs", "bark"], "tags": ["B-NP", "B-VP"], "aux_tags": ["NNS", "VBP"]}]
    task = make_task(train, aux_labels=["DT", "NN", "NNS", "VBD", "VBP"], aux_weight=0.5)
    batch = next(task.batches(task.encode(train), 2, shuffle=False, seed=0))
    torch.manual_seed(0)
    single = TransformerTagger(TransformerTaggerConfig(**TINY_MODEL), **task.model_sizes())
    model = TransformerTagger(TransformerTaggerConfig(**TINY_MODEL, members=3), **task.model_sizes()).eval()
    assert zoo.ensemble_size(model) == 3 and zoo.ensemble_size(single) == 1
    assert not any(k.startswith("members.") for k in single.state_dict())  # one member: the layout of before
    assert {k.split(".")[1] for k in model.state_dict()} == {"0", "1", "2"}
    args = (batch["words"], batch["chars"], batch["char_index"])
    each = model(*args, each=True)
    assert each.shape == (3, *batch["words"].shape, len(task.labels))
    assert not torch.equal(each[0], each[1])  # initialised on their own
    for i, member in enumerate(model.members):
        assert torch.equal(each[i], member(*args))
    probs = each.float().softmax(-1).mean(0)
    assert torch.allclose(model(*args).exp(), probs, atol=1e-6)
    # the loss: the mean of the members' own losses (main and auxiliary), not the loss of the averaged output
    own = torch.stack([task.loss(member, batch) for member in model.members]).mean()
    assert task.loss(model, batch).item() == pytest.approx(own.item(), rel=1e-5)
    logits, aux = model(*args, aux=True, each=True)
    assert logits.shape[0] == aux.shape[0] == 3 and aux.shape[-1] == 5
    model.zero_grad()
    task.loss(model, batch).backward()
    assert all(m.head.weight.grad.abs().sum() > 0 for m in model.members)
    groups = model.param_groups()
    assert set(groups) == set(single.param_groups()) and len(groups["head"]) == 3 * len(single.param_groups()["head"])


def test_an_ensemble_tagger_trains_saves_and_evaluates_the_same_after_loading(use_plugins, tmp_path):
    use_plugins(("tagtest", TinyEntries()))
    result = zoo.train("tiny-tagger", {"dataset": {"train_file": str(EXAMPLE), "val_fraction": 0.25},
                                       "model": {"members": 2}, "train": {"epochs": 1}}, out=tmp_path / "run")
    loaded = zoo.load(result.artifact, device="cpu")
    assert zoo.ensemble_size(loaded.model) == 2
    again = zoo.evaluate(result.artifact, device="cpu", split="val")
    for key, value in result.metrics["val"].items():
        if key not in {"eval_time", "eval_examples"}:
            assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
