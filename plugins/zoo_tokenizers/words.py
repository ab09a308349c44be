"""Byte-level BPE encoding by distinct words: the same ids as the ``tokenizers`` library, far fewer calls to it.

GPT-2's pipeline cuts text into words with one regular expression and merges bytes only inside a
word, so the ids of a text are the ids of its words, one after another. :class:`WordEncoder` splits
a text with that expression (the ``regex`` module, which knows ``\\p{L}``), encodes each word it has
not seen before with the library's batch encoding (on all cores), keeps every word's ids in a cache,
and gathers the text's ids from the cache with numpy. In running text most words are frequent, so
after the first megabytes nearly every word is a cache hit.

The result equals ``Tokenizer.encode`` only where both sides split alike. That is checked, not
assumed: the pipeline must be the plain byte-level one (no normalizer, the ByteLevel pre-tokenizer
with GPT-2's expression and no prefix space, no added tokens matched in the text: :func:`supported`),
and every character of a text must fall in the same class (letter, number, whitespace or other)
for the ``regex`` module as for the library, which :meth:`WordEncoder.encode` asks the library
about once per character it has not met yet. A text with a character they class apart is left
to the library (``encode`` returns None).
"""

from __future__ import annotations

import itertools
import threading
from itertools import repeat
from typing import Any

import numpy as np
import regex
import tokenizers as hf
from tokenizers import pre_tokenizers

# GPT-2's pattern, as the library's ByteLevel pre-tokenizer writes it (the contractions factored:
# 's|'t|'re|'ve|'m|'ll|'d match the same, and the factored form is faster)
SPLIT = regex.compile(r"'(?:[stmd]|re|ve|ll)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
CACHE_WORDS = 1 << 18  # the cache is emptied once it holds more words than this (a few tens of MB)
_PROBES = ("a{}", "1{}", ".{}")  # the library's split of these tells a letter, a number, whitespace, other apart


def supported(tok: hf.Tokenizer) -> bool:
    """Whether ``tok`` splits text into words exactly as :data:`SPLIT` does, so words encode independently."""
    pre = tok.pre_tokenizer
    if tok.normalizer is not None or not isinstance(pre, pre_tokenizers.ByteLevel):
        return False
    if pre.add_prefix_space or not pre.use_regex:
        return False
    # added tokens are matched in the text before it is split; specials are not, with encode_special_tokens
    added = tok.get_added_tokens_decoder().values()
    return all(t.special for t in added) and (tok.encode_special_tokens or not added)


class WordEncoder:
    """The ids of texts, word by word through a cache of each distinct word's ids (see the module's docstring)."""

    def __init__(self, tok: hf.Tokenizer, cache_words: int = CACHE_WORDS):
        self.tok, self.cache_words = tok, cache_words
        self._lock = threading.Lock()  # the cache and the classes are shared by every caller of this tokenizer
        self._alike: set[str] = set()  # characters the regex module and the library class alike
        self._apart: set[str] = set()  # ... and those they class apart
        self._classify({chr(c) for c in range(128)})
        self._ascii = len(self._alike) == 128
        self._clear()

    def _clear(self) -> None:
        self._index: dict[str, int] = {}  # word -> its row in the cache
        self._ids = np.zeros(0, np.uint32)  # the cached words' ids, one word after another
        self._starts = np.zeros(0, np.int64)  # where each row's ids start in _ids
        self._lens = np.zeros(0, np.int64)  # how many ids each row has

    def encode(self, text: str) -> np.ndarray | None:
        """The ids of ``text`` (uint32), equal to the library's; None when a character of it is classed apart."""
        words = SPLIT.findall(text)
        with self._lock:
            if not (text.isascii() and self._ascii) and not self._classify(set(text)):
                return None
            if not words:
                return np.zeros(0, np.uint32)
            if len(self._index) > self.cache_words:
                self._clear()
            rows = self._rows(words)  # (W,)
            lens = self._lens[rows]
            ends = np.cumsum(lens)
            # output position k holds _ids[its word's start + k - where the word's ids begin in the output]
            at = np.arange(ends[-1]) + np.repeat(self._starts[rows] - (ends - lens), lens)
            return self._ids[at]

    def _rows(self, words: list[str]) -> np.ndarray:
        """The cache row of every word; words not cached yet are encoded (each once) and added."""
        index = self._index
        rows = np.fromiter(map(index.get, words, repeat(-1)), np.int64, len(words))
        missing = np.flatnonzero(rows < 0).tolist()
        if missing:
            self._add(list(dict.fromkeys(map(words.__getitem__, missing))))  # in first-seen order
            rows[missing] = np.fromiter(map(index.__getitem__, map(words.__getitem__, missing)), np.int64, len(missing))
        return rows

    def _add(self, new: list[str]) -> None:
        ids = [e.ids for e in self.tok.encode_batch(new, add_special_tokens=False)]  # a word alone is one word
        self._append(new, np.fromiter(map(len, ids), np.int64, len(ids)),
                     np.fromiter(itertools.chain.from_iterable(ids), np.uint32))

    def _append(self, words: list[str], lens: np.ndarray, ids: np.ndarray) -> None:
        first = len(self._index)
        self._index.update(zip(words, range(first, first + len(words))))
        self._starts = np.concatenate([self._starts, len(self._ids) + np.cumsum(lens) - lens])
        self._lens = np.concatenate([self._lens, lens])
        self._ids = np.concatenate([self._ids, ids.astype(np.uint32, copy=False)])

    def cached(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The cache: its words in order, how many ids each has, and their ids one after another."""
        with self._lock:
            return list(self._index), self._lens.copy(), self._ids.copy()

    def warm(self, words: list[str], lens: np.ndarray, ids: np.ndarray) -> None:
        """Add what :meth:`cached` gave (of an encoder of the same pipeline) to this cache."""
        lens = np.asarray(lens, np.int64)
        if len(lens) != len(words) or int(lens.sum()) != len(ids):
            raise ValueError("a word cache whose words, lengths and ids do not match")
        with self._lock:
            known = np.fromiter((w in self._index for w in words), bool, len(words))
            keep = np.repeat(~known, lens)
            self._append([w for w, k in zip(words, known) if not k], lens[~known], np.asarray(ids)[keep])

    def _classify(self, chars: set[str]) -> bool:
        """Whether the regex module and the library class every one of ``chars`` alike (the library is asked
        once per character)."""
        new = chars - self._alike
        if not new:
            return True
        if new & self._apart:
            return False
        apart = {c for c in new if not self._same_split(c)}
        self._alike |= new - apart
        self._apart |= apart
        return not apart

    def _same_split(self, c: str) -> bool:
        """Whether both split ``a c``, ``1 c`` and ``. c`` alike: they differ for a letter, a number, whitespace
        and any other character, so a character the two class apart fails one of them."""
        pre = self.tok.pre_tokenizer
        for probe in (p.format(c) for p in _PROBES):
            try:
                theirs = [end for _, (_, end) in pre.pre_tokenize_str(probe)]
            except Exception:  # e.g. a lone surrogate, which the library cannot take: left to the library
                return False
            if theirs != np.cumsum([len(w) for w in SPLIT.findall(probe)]).tolist():
                return False
        return True


def encoder_for(tok: hf.Tokenizer) -> Any:
    """A :class:`WordEncoder` for ``tok``, or None when its pipeline is not the plain byte-level one."""
    return WordEncoder(tok) if supported(tok) else None
