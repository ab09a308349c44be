"""Text classification plugin: word tokenizer, IMDB and user-file datasets, rnn-classifier, classification task."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

import zoo
from zoo_text_classify.datasets import IMDB, IMDBConfig, TextClassificationConfig, TextClassificationFiles
from zoo_text_classify.model import NgramBag, RNNClassifier, RNNClassifierConfig
from zoo_text_classify.task import ClassificationTask
from zoo_text_classify.tokenizers import LabelTokenizer, WordConfig, WordTokenizer

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "examples" / "text_classification" / "reviews.csv"


# --- tokenizer ------------------------------------------------------------------------------------

def test_word_tokenizer_lowercases_drops_html_breaks_and_keeps_punctuation():
    tok = WordTokenizer()
    assert tok.words("Great<br /><br />FILM, didn't LIKE the well-made end!") == \
        ["great", "film", ",", "didn't", "like", "the", "well-made", "end", "!"]
    assert WordTokenizer(WordConfig(lowercase=False, strip_html=False)).words("A<br />b") == \
        ["A", "<", "br", "/", ">", "b"]


def test_word_tokenizer_min_freq_max_size_and_unknown_words():
    tok = WordTokenizer(WordConfig(min_freq=2, max_size=2))
    tok.fit(["good good good bad bad meh", "good bad ugly ugly"])
    assert tok.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert tok.itos[4:] == ["good", "bad"]  # ugly (2) is cut by max_size, meh (1) by min_freq
    assert tok.encode("Good ugly <UNK> meh") == [4, tok.unk_id, tok.unk_id, tok.unk_id]
    assert tok.decode(tok.encode("good ugly")) == "good <unk>"
    assert tok.encode(tok.decode(tok.encode("good ugly bad"))) == tok.encode("good ugly bad")


def test_word_tokenizer_stop_words_builtin_and_from_file_travel_in_the_state(tmp_path):
    tok = WordTokenizer(WordConfig(stopwords="english"))
    tok.fit(["the movie was not good"])
    assert tok.itos[4:] == sorted(["good", "movie", "not"], key=lambda w: w)  # negations are kept
    words = tmp_path / "stop.txt"
    words.write_text("# mine\nMovie\nfilm\n", encoding="utf-8")
    tok2 = WordTokenizer(WordConfig(stopwords=str(words)))
    tok2.fit(["the movie film rocks"])
    assert tok2.itos[4:] == ["rocks", "the"]
    clone = WordTokenizer(WordConfig(stopwords=str(tmp_path / "gone.txt")))  # file no longer needed
    clone.set_state(json.loads(json.dumps(tok2.get_state())))
    assert clone.encode("movie rocks") == tok2.encode("movie rocks") == [tok2.stoi["rocks"]]


def test_empty_vocabulary_after_filtering_is_a_data_error():
    tok = WordTokenizer(WordConfig(min_freq=3))
    with pytest.raises(zoo.DataError, match="vocabulary is empty after filtering.*min_freq=3"):
        tok.fit(["one two", "three"])
    with pytest.raises(zoo.DataError, match="vocabulary is empty"):
        WordTokenizer(WordConfig(stopwords="english")).fit(["the a an", "of"])


def test_label_tokenizer_sorts_classes_and_refuses_reserved_names():
    tok = LabelTokenizer()
    tok.fit(["pos", "neg", "pos"])
    assert tok.labels == ["neg", "pos"]
    with pytest.raises(zoo.DataError, match="reserved"):
        LabelTokenizer().fit(["<unk>", "a"])


# --- user files -----------------------------------------------------------------------------------

def _files(tmp_path, text: str, name: str = "data.csv", **cfg) -> TextClassificationFiles:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return TextClassificationFiles(TextClassificationConfig(train_file=str(path), **cfg))


def test_csv_missing_label_names_file_and_line(tmp_path):
    text = 'text,label\n"fine, really",pos\n"spans\ntwo lines",neg\nno label here,\n'
    with pytest.raises(zoo.DataError, match=r"data\.csv:5: missing 'label'"):
        _files(tmp_path, text).load("train")
    with pytest.raises(zoo.DataError, match=r"data\.csv:2: missing 'text'"):
        _files(tmp_path, "text,label\n,pos\n").load("train")
    with pytest.raises(zoo.DataError, match=r"data\.csv:3: missing 'label'"):
        _files(tmp_path, "text,label\na,pos\nshort row\n").load("train")


def test_csv_header_without_the_columns(tmp_path):
    with pytest.raises(zoo.DataError, match=r"data\.csv:1: no column 'text' in the header \(review, stars\).*text_column"):
        _files(tmp_path, "review,stars\nok,5\n").load("train")


def test_one_class_only_is_a_data_error(tmp_path):
    rows = "text,label\n" + "".join(f"text {i},pos\n" for i in range(10))
    with pytest.raises(zoo.DataError, match="one class only \\('pos' in all 9 training rows\\)"):
        _files(tmp_path, rows).load("train")


def test_non_utf8_file_names_file_and_line(tmp_path):
    data = "text,label\ngood,pos\n".encode() + "caf\xe9 bad,neg\n".encode("latin-1")
    with pytest.raises(zoo.DataError, match=r"data\.csv: not valid utf-8.*line 3.*dataset.encoding"):
        _files(tmp_path, data).load("train")
    latin = _files(tmp_path, data + "fine,pos\nawful,neg\n".encode(), encoding="latin-1", val_fraction=0.25)
    assert sorted(r["text"] for r in latin.load("train") + latin.load("val")) == ["awful", "café bad", "fine", "good"]


def test_jsonl_tsv_and_a_deterministic_validation_split(tmp_path):
    lines = [json.dumps({"body": f"text {i}", "y": i % 3}) for i in range(40)]
    ds = _files(tmp_path, "\n".join(lines) + "\n", "d.jsonl", text_column="body", label_column="y")
    train, val = ds.load("train"), ds.load("val")
    assert len(train) == 36 and len(val) == 4
    assert {r["label"] for r in train} == {"0", "1", "2"}
    assert not {r["text"] for r in train} & {r["text"] for r in val}
    again = _files(tmp_path, "\n".join(lines) + "\n", "d.jsonl", text_column="body", label_column="y")
    assert again.load("val") == val
    with pytest.raises(zoo.DataError, match=r"bad\.jsonl:2: missing 'label'"):
        _files(tmp_path, '{"text": "a", "label": "x"}\n{"text": "b"}\n', "bad.jsonl").load("train")
    tsv = _files(tmp_path, "label\ttext\npos\tgreat\nneg\tawful\npos\tfine\nneg\tdull\n", "d.tsv",
                 val_fraction=0.25)
    assert {r["text"] for r in tsv.load("train") + tsv.load("val")} == {"great", "awful", "fine", "dull"}


# --- IMDB -----------------------------------------------------------------------------------------

def _tar(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def _tiny_imdb(root: Path) -> dict[str, bytes]:
    members = {}
    for part in ("train", "test"):
        for label, rating in (("pos", 9), ("neg", 2)):
            for i in range(3):
                members[f"aclImdb/{part}/{label}/{i}_{rating}.txt"] = f"{part} {label} {i}<br />ok".encode()
    members["aclImdb/imdb.vocab"] = b"the\n"
    members["aclImdb/train/unsup/0_0.txt"] = b"no label"
    return members


def _imdb(root: Path, monkeypatch, **cfg) -> IMDB:
    tar = root / "imdb" / "aclImdb_v1.tar.gz"
    monkeypatch.setattr(IMDB, "sources", tuple(
        zoo.Source(s.filename, s.url, _sha(tar)) if s.filename == tar.name else s
        for s in IMDB.sources))
    monkeypatch.setattr(IMDB, "_cache", {})
    return IMDB(IMDBConfig(**cfg), data_dir=root)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_imdb_reads_the_official_tar_layout_without_unpacking(tmp_path, monkeypatch):
    _tar(tmp_path / "imdb" / "aclImdb_v1.tar.gz", _tiny_imdb(tmp_path))
    ds = _imdb(tmp_path, monkeypatch, val_size=2)
    train, val, test = ds.load("train"), ds.load("val"), ds.load("test")
    assert (len(train), len(val), len(test)) == (4, 2, 6)
    assert {r["id"] for r in train + val} == {f"train/{lab}/{i}_{r}.txt" for lab, r in (("pos", 9), ("neg", 2))
                                               for i in range(3)}
    assert test[0] == {"text": "test pos 0<br />ok", "label": "pos", "id": "test/pos/0_9.txt", "rating": 9}
    assert list(tmp_path.rglob("*.txt")) == []  # nothing was extracted


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "aclImdb/../../evil.txt"])
def test_imdb_refuses_a_tar_with_unsafe_member_names(tmp_path, monkeypatch, name):
    members = _tiny_imdb(tmp_path)
    members[name] = b"x"
    _tar(tmp_path / "imdb" / "aclImdb_v1.tar.gz", members)
    with pytest.raises(zoo.DataError, match="unsafe member"):
        _imdb(tmp_path, monkeypatch).load("train")


def test_imdb_refuses_a_tar_with_a_link_out_of_the_folder(tmp_path, monkeypatch):
    link = tarfile.TarInfo("aclImdb/train/pos/99_9.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _tar(tmp_path / "imdb" / "aclImdb_v1.tar.gz", _tiny_imdb(tmp_path), [link])
    with pytest.raises(zoo.DataError, match="unsafe member"):
        _imdb(tmp_path, monkeypatch).load("train")


def test_imdb_mirror_has_25000_reviews_per_split_and_a_fixed_val_split(data_dir_or_skip):
    ds = IMDB(data_dir=data_dir_or_skip)
    train, val, test = ds.load("train"), ds.load("val"), ds.load("test")
    assert (len(train), len(val), len(test)) == (22500, 2500, 25000)
    assert sum(r["label"] == "pos" for r in test) == 12500
    assert {r["id"] for r in val} == {r["id"] for r in IMDB(data_dir=data_dir_or_skip).load("val")}
    assert not {r["id"] for r in val} & {r["id"] for r in train}
    assert test[0]["id"] == "test/pos/0_10.txt"


# --- model: padding never reaches a real token --------------------------------------------------

@pytest.mark.parametrize("cell,bigrams", [("lstm", 0), ("gru", 0), ("gru", 17)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_an_examples_output(cell, bigrams, bidirectional):
    torch.manual_seed(0)
    cfg = RNNClassifierConfig(cell=cell, bidirectional=bidirectional, layers=2, hidden=6, emb_dim=5,
                              pooling="last+mean+max", bigrams=bigrams, trigrams=bigrams)
    model = RNNClassifier(cfg, vocab_size=30, n_classes=3).eval()
    if bigrams:  # (they start at zero)
        torch.nn.init.normal_(model.bigram.weight)
        torch.nn.init.normal_(model.trigram.weight)
    short = torch.tensor([[5, 6, 7]])
    alone = model(short, torch.tensor([3]))
    batch = torch.tensor([[5, 6, 7, 0, 0, 0, 0], [8, 9, 10, 11, 12, 13, 14]])
    in_batch = model(batch, torch.tensor([3, 7]))
    torch.testing.assert_close(in_batch[0], alone[0])
    garbage = batch.clone()
    garbage[0, 3:] = torch.tensor([20, 21, 22, 23])  # whatever sits in the padding is never read
    torch.testing.assert_close(model(garbage, torch.tensor([3, 7]))[0], alone[0])
    # the padded layout gives the same outputs as packed sequences, with the same weights
    model.config.packed = False
    torch.testing.assert_close(model(batch, torch.tensor([3, 7])), in_batch)


def test_bigram_embeddings_see_the_word_before():
    from zoo_text_classify.model import ngram_ids

    ids = torch.tensor([[5, 6, 7, 0], [6, 7, 5, 6]])
    b = ngram_ids(ids, 0, 1000, 2)
    assert b.shape == ids.shape and int(b.max()) < 1000
    assert b[0, 1] == b[1, 3] != b[1, 0]  # (5, 6) twice; (pad, 6) at the start is another pair
    assert b[0, 2] == b[1, 1]  # (6, 7)
    torch.manual_seed(0)
    model = RNNClassifier(RNNClassifierConfig(hidden=4, emb_dim=3, bigrams=50), vocab_size=10, n_classes=2)
    assert float(model.bigram.weight.detach().abs().sum()) == 0.0  # starts as the model without them
    loss = model(ids, torch.tensor([3, 4])).sum()
    loss.backward()
    assert model.bigram.weight.grad[b[1]].abs().sum() > 0  # and learns
    with pytest.raises(ValueError, match="bigrams"):
        RNNClassifierConfig(bigrams=-1).validate()


def test_trigram_embeddings_see_the_two_words_before():
    from zoo_text_classify.model import ngram_ids

    ids = torch.tensor([[5, 6, 7, 0], [9, 6, 7, 5], [5, 6, 7, 8]])
    t = ngram_ids(ids, 0, 10_000, 3)
    assert t[0, 2] == t[2, 2] != t[1, 2]  # (5, 6, 7) twice; (9, 6, 7) differs only two words back
    assert t[0, 0] != t[0, 1] != t[1, 1]  # (pad, pad, 5), (pad, 5, 6), (pad, 9, 6)
    torch.manual_seed(0)
    model = RNNClassifier(RNNClassifierConfig(hidden=4, emb_dim=3, trigrams=50), vocab_size=10, n_classes=2)
    assert model.bigram is None and float(model.trigram.weight.detach().abs().sum()) == 0.0
    model(ids, torch.tensor([3, 4, 4])).sum().backward()
    assert model.trigram.weight.grad[t[1, 3] % 50].abs().sum() > 0
    with pytest.raises(ValueError, match="trigrams"):
        RNNClassifierConfig(trigrams=-1).validate()
    with pytest.raises(ValueError, match="2 or 3 words"):
        ngram_ids(ids, 0, 50, 4)


def test_init_embedding_from_a_glove_file_and_from_gensim(tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("good 1 2 3 4\nbad -1 -2 -3 -4\n", encoding="utf-8")
    tokens = ["<pad>", "<unk>", "<bos>", "<eos>", "good", "bad", "meh"]
    model = RNNClassifier(RNNClassifierConfig(emb_dim=4, vectors=str(glove)), vocab_size=7, n_classes=2)
    model.init_embedding(tokens, lambda: pytest.fail("sentences are only needed for gensim"))
    w = model.embedding.weight
    assert w[4].tolist() == [1, 2, 3, 4] and w[5].tolist() == [-1, -2, -3, -4]
    assert w[0].abs().sum() == 0  # pad
    gensim = RNNClassifier(RNNClassifierConfig(emb_dim=4, vectors="gensim", gensim_epochs=1), vocab_size=7,
                           n_classes=2)
    before = gensim.embedding.weight.clone()
    gensim.init_embedding(tokens, lambda: [["good", "bad", "meh"]] * 5)
    assert not torch.equal(before[4:], gensim.embedding.weight[4:])
    with pytest.raises(zoo.ConfigError, match="50 dimensions|4 dimensions"):
        RNNClassifier(RNNClassifierConfig(emb_dim=3, vectors=str(glove)), vocab_size=7,
                      n_classes=2).init_embedding(tokens, list)


# --- model: an ensemble of members ------------------------------------------------------------------

def _ensemble(members: int = 3, **cfg) -> RNNClassifier:
    torch.manual_seed(0)
    config = RNNClassifierConfig(hidden=5, emb_dim=4, bidirectional=True, pooling="max+mean", members=members, **cfg)
    return RNNClassifier(config, vocab_size=20, n_classes=3)


def test_an_ensemble_averages_its_members_probabilities():
    model = _ensemble().eval()
    ids, lengths = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]]), torch.tensor([3, 4])
    each = model(ids, lengths, each=True)
    assert each.shape == (3, 2, 3)
    own = [member(ids, lengths) for member in model.members]  # each member is a one-network classifier
    for m in range(3):
        torch.testing.assert_close(each[m], own[m])
    assert not torch.allclose(own[0], own[1])  # initialised independently
    mean_prob = torch.stack([o.softmax(-1) for o in own]).mean(0)
    torch.testing.assert_close(model(ids, lengths).exp(), mean_prob)
    one = RNNClassifier(RNNClassifierConfig(hidden=5, emb_dim=4), vocab_size=20, n_classes=3).eval()
    assert "embedding.weight" in one.state_dict() and one(ids, lengths, each=True).shape == (1, 2, 3)
    assert {k.split(".")[1] for k in model.state_dict()} == {"0", "1", "2"}
    groups = model.param_groups()  # by part, across the members (train.freeze names parts)
    assert set(groups) == set(model.members[0].param_groups()) and {"embedding", "rnn", "head"} <= set(groups)
    assert len(groups["embedding"]) == 3


def test_an_ensembles_members_learn_independently():
    """The training loss is the mean of the members' own losses, so one member's gradient does not depend on the others."""
    words, labels = WordTokenizer(), LabelTokenizer()
    words.fit(["good fine great", "bad awful poor"])
    labels.fit(["neg", "pos", "meh"])
    task = ClassificationTask(None, {"text": words, "labels": labels})
    model = _ensemble(members=2, dropout=0.0)
    batch = {"ids": torch.tensor([[4, 5, 6], [7, 8, 0]]), "lengths": torch.tensor([3, 2]),
             "labels": torch.tensor([1, 0])}
    task.loss(model, batch).backward()
    together = [p.grad.clone() for p in model.members[0].parameters()]
    model.zero_grad()
    alone = torch.nn.functional.cross_entropy(model.members[0](batch["ids"], batch["lengths"]), batch["labels"]) / 2
    alone.backward()
    for a, b in zip(together, (p.grad for p in model.members[0].parameters())):
        torch.testing.assert_close(a, b)


def test_an_ensembles_members_start_from_the_same_pretrained_vectors(tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("good 1 2 3 4\nbad -1 -2 -3 -4\n", encoding="utf-8")
    tokens = ["<pad>", "<unk>", "<bos>", "<eos>", "good", "bad", "meh"] + [f"w{i}" for i in range(13)]
    model = _ensemble(members=2, vectors=str(glove))
    model.init_embedding(tokens, lambda: pytest.fail("sentences are only needed for gensim"))
    for member in model.members:
        assert member.embedding.weight[4].tolist() == [1, 2, 3, 4]
    torch.testing.assert_close(model.members[0].embedding.weight, model.members[1].embedding.weight)
    with pytest.raises(zoo.ConfigError, match="members"):
        zoo.build_config(RNNClassifierConfig, {"members": 0}, "model")


def _bag_reference(bag: NgramBag, row: list[int]) -> torch.Tensor:
    """Logits of one unpadded text, from sets of its words, pairs and triples (hashed as ngram_ids does)."""
    V, H = bag.vocab_size, bag.buckets
    feats = set(row)
    feats |= {V + (row[i - 1] * 1_000_003 + row[i]) % H for i in range(1, len(row))}
    feats |= {V + H + (row[i - 2] * 1_000_003 ** 2 + row[i - 1] * 1_000_003 + row[i]) % H for i in range(2, len(row))}
    return bag.bias + 0.5 * sum(bag.weight.weight[f] for f in feats)  # half: see NgramBag


def test_the_ngram_bag_counts_each_distinct_word_pair_and_triple_once():
    torch.manual_seed(0)
    bag = NgramBag(vocab_size=12, buckets=7, n_classes=3, pad_id=0)
    assert float(bag.weight.weight.detach().abs().sum()) == 0  # starts as the model without it
    with torch.no_grad():
        bag.weight.weight.normal_()
        bag.bias.normal_()
    rows = [[5, 6, 5, 6, 5, 6], [4, 4, 4], [7], [9, 10, 11, 9, 10]]  # repeats, a one-word text
    T = max(map(len, rows)) + 2  # and padding after every text
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    lengths = torch.tensor([len(r) for r in rows])
    got = bag(ids, lengths)
    for i, row in enumerate(rows):
        torch.testing.assert_close(got[i], _bag_reference(bag, row))
    torch.testing.assert_close(bag(ids[:, :6], lengths), got)  # the padding's length changes nothing


def test_an_ensemble_with_a_bag_averages_it_in_and_fits_it_on_its_own_loss():
    model = _ensemble(members=2, bag=16, dropout=0.0).eval()
    ids, lengths = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]]), torch.tensor([3, 4])
    with torch.no_grad():
        model.bag.weight.weight.normal_()
    each = model(ids, lengths, each=True)
    assert model.ensemble_size == 3 and each.shape == (3, 2, 3)
    torch.testing.assert_close(each[2], model.bag(ids, lengths))
    torch.testing.assert_close(model(ids, lengths).exp(), each.softmax(-1).mean(0))
    assert model.param_groups()["bag"] == list(model.bag.parameters())
    one = _ensemble(members=1, bag=16, dropout=0.0)  # one network and the bag: an ensemble of two
    assert one.ensemble_size == 2 and one(ids, lengths, each=True).shape == (2, 2, 3)
    words, labels = WordTokenizer(), LabelTokenizer()
    words.fit(["good fine great", "bad awful poor"])
    labels.fit(["neg", "pos", "meh"])
    task = ClassificationTask(None, {"text": words, "labels": labels})
    batch = {"ids": ids, "lengths": lengths, "labels": torch.tensor([1, 0])}
    task.loss(one, batch).backward()
    together = one.bag.weight.weight.grad.clone()
    one.zero_grad()
    (torch.nn.functional.cross_entropy(one.bag(ids, lengths), batch["labels"]) / 2).backward()
    torch.testing.assert_close(together, one.bag.weight.weight.grad)
    with pytest.raises(zoo.ConfigError, match="bag"):
        zoo.build_config(RNNClassifierConfig, {"bag": -1}, "model")
    for members in (1, 2):  # the bag is built last: the networks start as they would without it
        with_bag, without = _ensemble(members=members, bag=16).state_dict(), _ensemble(members=members).state_dict()
        assert {k for k in with_bag if not k.startswith("bag.")} == set(without)
        for key, value in without.items():
            torch.testing.assert_close(with_bag[key], value)


# --- task metrics ---------------------------------------------------------------------------------

class _Fixed(torch.nn.Module):
    """Predicts class ``answers[i]`` for the example whose first id is ``i``."""

    def __init__(self, answers: list[int], k: int):
        super().__init__()
        self.answers, self.k = answers, k

    def forward(self, ids, lengths):
        out = torch.full((len(ids), self.k), -5.0)
        out[torch.arange(len(ids)), torch.tensor([self.answers[int(i) - 4] for i in ids[:, 0]])] = 5.0
        return out


def test_classification_metrics_per_class_and_confusion():
    words, labels = WordTokenizer(), LabelTokenizer()
    texts = [f"w{i}" for i in range(6)]
    words.fit(texts)
    labels.fit(["a", "b", "c"])
    task = ClassificationTask(None, {"text": words, "labels": labels})
    gold = ["a", "a", "b", "b", "c", "zzz"]  # zzz: never seen in training
    enc = task.encode([{"text": t, "label": g} for t, g in zip(texts, gold)])
    model = _Fixed([words.stoi[t] - 4 for t in texts], 3)
    model.answers = {words.stoi[t] - 4: p for t, p in zip(texts, [0, 1, 1, 1, 2, 0])}
    model.answers = [model.answers[i] for i in range(6)]
    sums: dict[str, float] = {}
    for batch in task.batches(enc, 4, shuffle=False, seed=0):
        for k, v in task.eval_batch(model, batch).items():
            sums[k] = sums.get(k, 0.0) + v
    m = task.summarize(sums)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["unknown_labels"] == 1
    assert task.confusion(sums) == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert m["precision/a"] == pytest.approx(0.5) and m["recall/a"] == pytest.approx(0.5)  # zzz -> a is a false a
    assert m["precision/b"] == pytest.approx(2 / 3) and m["recall/b"] == 1.0 and m["f1/c"] == 1.0
    assert m["confusion/a/b"] == 1.0 and m["confusion/b/b"] == 2.0 and m["confusion/b/a"] == 0.0
    records: list[dict] = []
    from zoo.training.evaluation import evaluate

    again = evaluate(model, task, enc, 4, torch.device("cpu"), outputs=records)
    assert again["accuracy"] == pytest.approx(m["accuracy"])
    assert [r["index"] for r in records] == list(range(6))  # the split's order, whatever the batching
    assert [r["predicted"] for r in records] == ["a", "b", "b", "b", "c", "a"]
    assert [r["label"] for r in records] == ["a", "a", "b", "b", "c", "?"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in records)


# --- end to end through the CLI on a user's CSV ------------------------------------------------------

def test_train_and_eval_a_users_csv_through_the_cli(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    res = cli("train", "text-rnn", "--out", str(out), "--set", f"dataset.train_file={REVIEWS}",
              "--set", f"dataset.test_file={REVIEWS}", "--set", "model.hidden=8", "--set", "model.emb_dim=8",
              "--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.threads=1",
              "--set", "train.progress=false")
    assert res.exit_code == 0, res.output
    assert "test: accuracy=" in res.output and "f1/positive=" in res.output
    assert (out / "outputs.test.jsonl").is_file()  # zoo train writes the test predictions too
    res = cli("eval", str(out), "--out", str(tmp_path / "ev"))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "ev" / "outputs.test.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and set(rows[0]) == {"index", "label", "predicted", "probabilities"}
    assert [r["index"] for r in rows] == list(range(24)) and set(rows[0]["probabilities"]) == {"negative", "positive"}
    metrics = json.loads((tmp_path / "ev" / "metrics.test.json").read_text().splitlines()[0])
    assert metrics["accuracy"] == pytest.approx(sum(r["label"] == r["predicted"] for r in rows) / 24)
    cm = {k: v for k, v in metrics.items() if k.startswith("confusion/")}
    assert set(cm) == {f"confusion/{g}/{p}" for g in ("negative", "positive") for p in ("negative", "positive")}
    assert sum(cm.values()) == 24


def test_an_ensemble_trains_saves_and_predicts_through_the_cli(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    res = cli("train", "text-rnn", "--out", str(out), "--set", f"dataset.train_file={REVIEWS}",
              "--set", "model.hidden=8", "--set", "model.emb_dim=8", "--set", "model.members=2",
              "--set", "model.bag=256", "--set", "train.epochs=1", "--set", "train.batch_size=4",
              "--set", "train.threads=1", "--set", "train.progress=false")
    assert res.exit_code == 0, res.output
    loaded = zoo.load(out / "model.safetensors")
    assert loaded.model.config.members == 2 and len(loaded.model.members) == 2
    assert loaded.model.ensemble_size == 3 and loaded.model.bag.buckets == 256
    assert float(loaded.model.bag.weight.weight.detach().abs().sum()) > 0  # the bag was trained, not left at zero
    res = cli("predict", str(out), "a great film", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.output.strip().splitlines()[-1])
    assert sum(p["probability"] for p in row["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert row["label"] in {"negative", "positive"}


def test_cli_reports_bad_csv_with_exit_1_and_no_traceback(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,pos\nbad,\n", encoding="utf-8")
    res = cli("train", "text-rnn", "--out", str(tmp_path / "r"), "--set", f"dataset.train_file={bad}",
              "--set", "train.threads=1")
    assert res.exit_code == 1
    assert "bad.csv:3: missing 'label'" in res.output and "Traceback" not in res.output


def test_jsonl_lines_end_at_newline_only(tmp_path):
    # JSON strings may hold U+0085, U+2028, U+001C raw (IMDB's training reviews hold U+0085); str.splitlines
    # would cut the record there. A CRLF file reads the same.
    odd = ["caf\u00e9\u0085 next", "a\u2028b", "x\u001cy", "plain"]
    lines = [json.dumps({"text": t, "label": "pos" if i % 2 else "neg"}, ensure_ascii=False) for i, t in enumerate(odd * 3)]
    for sep in ("\n", "\r\n"):
        ds = _files(tmp_path, sep.join(lines) + sep, "odd.jsonl", val_fraction=0.25)
        assert sorted(r["text"] for r in ds.load("train") + ds.load("val")) == sorted(odd * 3)
