"""The char and byte-level BPE tokenizers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zoo
from zoo import config
from zoo_tokenizers.bpe import BPETokenizer, even_sample
from zoo_tokenizers.char import CharTokenizer

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]

# A small corpus with some structure to merge, and a little of everything else.
CORPUS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n",
    "the quick brown fox jumps over the lazy dog; " * 20,
    "Unicode: café naïve 東京 😀 and tabs\tand\r\nwindows lines\n",
]

# Text that is hard for a tokenizer: specials' literal text, emoji (with ZWJ and
# skin tone), CJK, combining marks, control characters, odd whitespace.
TRICKY = ["<pad>", "<unk>", "<bos>", "<eos>", "<eos><eos>", "<", ">", "👩‍👩‍👧", "👍🏽", "東京", "한국어",
          "e\u0301", "\u0300", "\x00", "\r\n", "\u2028", "\ufeff", " ", "  ", "\t", "'s", "Ā"]
texts = st.lists(st.one_of(st.text(), st.sampled_from(TRICKY)), max_size=8).map("".join)


# --- char -----------------------------------------------------------------------------------------

def test_char_vocab_is_specials_then_sorted_characters():
    tok = CharTokenizer()
    tok.fit(iter(["hello", "world"]))
    assert tok.itos == SPECIALS + sorted(set("helloworld"))
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.vocab_size == 4 + len(set("helloworld"))


def test_char_round_trip_and_unseen_characters_are_unk():
    tok = CharTokenizer()
    tok.fit(["To be, or not to be:\nthat is the question. <eos>"])
    text = "not to be <eos>\n"
    ids = tok.encode(text)
    assert len(ids) == len(text) and tok.unk_id not in ids
    assert tok.eos_id not in ids  # the text "<eos>" is five characters, not the special
    assert tok.decode(ids) == text
    ids = tok.encode("bez!")
    assert ids[2] == tok.unk_id and ids[3] == tok.unk_id  # 'z' and '!' never seen
    assert tok.decode(ids) == "be"  # <unk> decodes to nothing
    assert tok.unknown_chars("zebra!? zz!") == ["z", "!", "?"]
    assert tok.unknown_chars("to be") == []


def test_char_state_round_trip():
    tok = CharTokenizer()
    tok.fit(CORPUS)
    clone = CharTokenizer()
    clone.set_state(json.loads(json.dumps(tok.get_state())))
    assert clone.itos == tok.itos
    assert clone.encode(CORPUS[3]) == tok.encode(CORPUS[3])


@pytest.mark.parametrize("texts", [[], [""], ["", ""]])
def test_char_fit_on_no_text_is_a_data_error(texts):
    with pytest.raises(zoo.DataError, match="no text"):
        CharTokenizer().fit(texts)


# --- bpe ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    tok = BPETokenizer(config.build(BPETokenizer.Config, {"vocab_size": 300}, "tokenizer.text"))
    tok.fit(iter(CORPUS))  # an iterator: fit must not need a list
    return tok


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_bpe_round_trip_is_exact_and_never_unk(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    # no special id, <unk> included, ever comes out of encode, whatever the text holds
    assert all(4 <= i < bpe.vocab_size for i in ids)


@pytest.mark.parametrize("text", ["<eos>", "a<pad>b", "<bos>x<eos>", "<unk>"])
def test_bpe_specials_literal_text_is_plain_text(bpe, text):
    ids = bpe.encode(text)
    assert not set(ids) & {0, 1, 2, 3}
    assert bpe.decode(ids) == text


def test_bpe_decode_skips_special_ids(bpe):
    ids = bpe.encode("hear me speak")
    assert bpe.decode([bpe.bos_id, *ids, bpe.eos_id, bpe.pad_id, bpe.pad_id]) == "hear me speak"


def test_bpe_specials_and_vocab_size(bpe):
    assert (bpe.pad_id, bpe.unk_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2, 3)
    assert [bpe.tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3]
    assert 260 < bpe.vocab_size <= 300  # 4 specials + 256 bytes + some merges, within the budget
    assert len(bpe.encode("the quick brown fox")) < len("the quick brown fox")  # merges were learned


def test_bpe_state_is_json_and_round_trips(bpe):
    state = json.loads(json.dumps(bpe.get_state()))
    clone = BPETokenizer(bpe.config)
    clone.set_state(state)
    assert clone.vocab_size == bpe.vocab_size
    for text in [*CORPUS, "<eos> still text after loading", "😀 東京"]:
        assert clone.encode(text) == bpe.encode(text)
        assert clone.decode(clone.encode(text)) == text


def test_bpe_set_state_checks_the_specials(bpe):
    broken = json.loads(bpe.get_state()["tokenizer_json"])
    for token in broken["added_tokens"]:
        if token["content"] == "<eos>":
            token["content"] = "<end>"
    with pytest.raises(zoo.ZooError, match="<eos>=3"):
        BPETokenizer().set_state({"tokenizer_json": json.dumps(broken)})
    with pytest.raises(zoo.ZooError, match="tokenizer_json"):
        BPETokenizer().set_state({"itos": ["<pad>"]})
    with pytest.raises(zoo.ZooError, match="not a valid"):
        BPETokenizer().set_state({"tokenizer_json": "{not json"})


def test_bpe_vocab_size_below_bytes_plus_specials_is_a_config_error():
    with pytest.raises(zoo.ConfigError, match=r"tokenizer\.text.*vocab_size must be at least 260"):
        config.build(BPETokenizer.Config, {"vocab_size": 100}, "tokenizer.text")
    assert config.build(BPETokenizer.Config, {"vocab_size": 260}, "tokenizer.text").vocab_size == 260


def test_bpe_unfitted_and_empty_fit_are_clear_errors():
    with pytest.raises(zoo.ZooError, match="not fitted"):
        BPETokenizer().encode("x")
    with pytest.raises(zoo.DataError, match="no text"):
        BPETokenizer().fit(iter([]))


# --- bpe at scale: fitting on an even sample, encoding by distinct words, worker processes ---------------

def numbered(n: int, width: int = 100) -> list[str]:
    """``n`` pieces of text, each naming its own number (so a sample shows where it came from)."""
    return [f"piece {i:06d} " + "x" * (width - 14) + "\n" for i in range(n)]


def test_even_sample_is_everything_when_it_fits_and_otherwise_evenly_spread_and_deterministic():
    pieces = numbered(1000)
    assert even_sample(iter(pieces), 100 * 1000) == pieces  # all of it: small corpora fit as before
    sample = even_sample(iter(pieces), 100 * 50)
    assert sample == even_sample(iter(pieces), 100 * 50)
    assert 45 <= len(sample) <= 55  # about the characters asked for, whole pieces
    where = [int(p.split()[1]) for p in sample]
    gaps = [b - a for a, b in zip(where, where[1:])]
    assert where == sorted(where) and max(gaps) - min(gaps) <= 16  # even strides ...
    assert where[0] < 40 and where[-1] > 960  # ... from the first pieces to the last
    # the same spread whatever the corpus size: ten times the text, about the same sample
    assert 45 <= len(even_sample(iter(numbered(10_000)), 100 * 50)) <= 55


def test_bpe_fit_sample_learns_from_the_sample_alone_and_a_small_corpus_is_fitted_whole():
    big = numbered(400, 2000)  # 800k characters
    small = BPETokenizer(config.build(BPETokenizer.Config, {"vocab_size": 300, "fit_sample": 40_000}, "t"))
    small.fit(iter(big))
    direct = BPETokenizer(config.build(BPETokenizer.Config, {"vocab_size": 300, "fit_sample": None}, "t"))
    from zoo import split_text

    direct.fit(even_sample((p for t in big for p in split_text(t, 1 << 14)), 40_000))
    assert small.get_state() == direct.get_state()
    # the default (10M characters) leaves a corpus of this size as it was: fitted on all of it
    default, whole = BPETokenizer(BPETokenizer.Config(vocab_size=300)), BPETokenizer(
        BPETokenizer.Config(vocab_size=300, fit_sample=None))
    default.fit(iter(CORPUS))
    whole.fit(iter(CORPUS))
    assert default.get_state() == whole.get_state()
    with pytest.raises(zoo.ConfigError, match="fit_sample"):
        config.build(BPETokenizer.Config, {"fit_sample": 0}, "tokenizer.text")


def test_gpt_lm_on_tiny_shakespeare_is_fitted_on_all_of_it(data_dir_or_skip):
    from zoo_text.datasets import TinyShakespeare

    text = TinyShakespeare(data_dir=data_dir_or_skip).text()
    default = BPETokenizer(BPETokenizer.Config(vocab_size=1024))
    default.fit(zoo.whitespace_cuts([text]))
    whole = BPETokenizer(BPETokenizer.Config(vocab_size=1024, fit_sample=None))
    whole.fit(zoo.whitespace_cuts([text]))
    assert default.get_state() == whole.get_state()


REAL = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.  \n"
        "  Indented line,\twith a tab and   spaces.\r\nCRLF line; café, naïve — “quotes” 東京 🙂 don't I'll\n\n\n"
        "Numbers 1,234.5 and ½ ² Ⅻ; 'quoted' \"double\" <eos> <pad> x\x1c.\x1f\u2028\u3000\u00a0end ")


@pytest.fixture(scope="module")
def rich() -> BPETokenizer:
    """Merges of whitespace runs, newlines, contractions and words with their space: a wrong split shows."""
    tok = BPETokenizer(BPETokenizer.Config(vocab_size=700))
    tok.fit([REAL * 40, *CORPUS * 10])
    return tok


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.one_of(st.text(), st.sampled_from(TRICKY + REAL.split(" ") + ["  ", "\n\n", " \n "])),
                     max_size=12).map("".join))
def test_bpe_encode_batch_by_distinct_words_equals_encode(rich, text):
    ids = rich.encode_batch([text, text + " " + text])
    assert list(map(int, ids[0])) == rich.encode(text)
    assert list(map(int, ids[1])) == rich.encode(text + " " + text)


def test_bpe_encode_batch_equals_encode_on_real_text(rich, data_dir_or_skip):
    from zoo_text.datasets import TinyShakespeare

    text = TinyShakespeare(data_dir=data_dir_or_skip).text()[:300_000]
    shakespeare = BPETokenizer(BPETokenizer.Config(vocab_size=1024))
    shakespeare.fit([text])
    texts = [REAL, "", " ", "\n", "\n\n  ", REAL * 20, text, text[1000:1500], REAL + text[:3000]]
    for tok in (rich, shakespeare):
        for got, want in zip(tok.encode_batch(texts), map(tok.encode, texts)):
            assert list(map(int, got)) == want
        assert tok._word_encoder() is not None  # by distinct words, not the library's fallback


def test_bpe_words_classed_apart_or_an_unusual_pipeline_fall_back_to_the_library(bpe, monkeypatch):
    from tokenizers import pre_tokenizers

    from zoo_tokenizers import words

    clone = BPETokenizer(bpe.config)
    clone.set_state(bpe.get_state())
    enc = clone._word_encoder()
    monkeypatch.setattr(words.WordEncoder, "_same_split", lambda self, c: c != "é")
    enc._alike.discard("é")
    assert enc.encode("café") is None  # a character the two splitters might class apart: left to the library
    assert list(map(int, clone.encode_batch(["café au lait"])[0])) == clone.encode("café au lait")
    clone.tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # words would get a space each
    assert words.encoder_for(clone.tok) is None


def test_bpe_word_cache_emptied_when_full_gives_the_same_ids(bpe):
    from zoo_tokenizers.words import WordEncoder

    enc = WordEncoder(bpe.tok, cache_words=5)
    for text in [*CORPUS, REAL, *CORPUS]:
        assert list(map(int, enc.encode(text))) == bpe.encode(text)
    assert len(enc._index) < 60
    # a cache handed to another encoder (as to the worker processes) gives it the same words and ids
    other = WordEncoder(bpe.tok)
    other.encode(CORPUS[0])
    other.warm(*enc.cached())
    assert set(enc._index) <= set(other._index)
    for text in [*CORPUS, REAL]:
        assert list(map(int, other.encode(text))) == bpe.encode(text)


def test_bpe_encode_stream_on_worker_processes_equals_encode_batch(bpe, monkeypatch, caplog):
    import zoo_tokenizers.parallel as parallel

    texts = [REAL * 3, *CORPUS, "", REAL[::-1], *CORPUS] * 3
    want = [list(map(int, ids)) for ids in bpe.encode_batch(texts)]
    monkeypatch.setattr(parallel, "ALONE_CHARS", 500)
    with caplog.at_level("INFO", "zoo_tokenizers.parallel"):
        got = [list(map(int, ids)) for ids in parallel.encode_stream(bpe, texts, 4, workers=2)]
    assert got == want and "on 2 worker processes" in caplog.text
    monkeypatch.setattr(parallel.sys, "executable", "/nonexistent/python")  # workers cannot start: this process
    got = [list(map(int, ids)) for ids in parallel.encode_stream(bpe, texts, 4, workers=2)]
    assert got == want and "cannot be started" in caplog.text
