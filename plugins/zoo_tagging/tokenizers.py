"""Word and label vocabularies for tagging. A text is a sentence's words (or labels) joined by spaces.

Words and labels never hold whitespace: the CoNLL format splits lines on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from zoo import DataError, VocabTokenizer
from zoo.config import Range


def _by_frequency(counts: Counter) -> list[str]:
    """Most frequent first; ties in code-point order, so the same data always gives the same ids."""
    return sorted(counts, key=lambda t: (-counts[t], t))


@dataclass
class WordConfig:
    min_freq: Annotated[int, Range(1)] = 1  # words seen fewer times in training read as <unk>
    lowercase: bool = False  # fold case first (POS tags depend on case: NNP; char features still see it)
    digits_to_zero: bool = False  # read every digit as 0, so unseen numbers share the ids of seen ones
    max_size: Annotated[int, Range(1, note="none: every word")] | None = None  # keep only the most frequent words


class WordTokenizer(VocabTokenizer):
    """One id per (normalised) word seen at least ``min_freq`` times while fitting, most frequent first.

    Any other word, and a word that spells a special token such as ``<pad>``, is <unk>.
    :meth:`decode` writes <unk> as ``<unk>`` (which encodes back to it), so that a
    sentence keeps its length.
    """

    Config = WordConfig

    def normalize(self, word: str) -> str:
        if self.config.lowercase:
            word = word.lower()
        if self.config.digits_to_zero:
            word = "".join("0" if c.isdigit() else c for c in word)
        return word

    def split(self, text: str) -> list[str]:
        return [self.normalize(w) for w in text.split()]

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def fit(self, texts: Iterable[str]) -> None:
        counts = Counter(w for text in texts for w in self.split(text))
        if not counts:
            raise DataError("conll-words tokenizer: no words to fit on (the training split is empty)")
        words = [w for w in _by_frequency(counts) if counts[w] >= self.config.min_freq and w not in self.SPECIALS]
        self.set_vocab(words[: self.config.max_size])

    def encode(self, text: str) -> list[int]:
        unk, stoi, n = self.unk_id, self.stoi, len(self.SPECIALS)
        return [i if (i := stoi.get(w, unk)) >= n else unk for w in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        n, unk = len(self.SPECIALS), self.unk_id
        return self.join([self.itos[i] for i in ids if i == unk or n <= i < len(self.itos)])


class TagTokenizer(VocabTokenizer):
    """The label vocabulary: one id per label seen in training, most frequent first, after the specials.

    A label never seen in training encodes to <unk>; the tagging task counts those
    (``unknown_labels``) instead of failing.
    """

    def split(self, text: str) -> list[str]:
        return text.split()

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def fit(self, texts: Iterable[str]) -> None:
        counts = Counter(t for text in texts for t in text.split())
        clash = sorted(set(counts) & set(self.SPECIALS))
        if clash:
            raise DataError(f"conll-tags tokenizer: the label {clash[0]!r} is a reserved token name; rename it")
        if not counts:
            raise DataError("conll-tags tokenizer: no labels to fit on (the training split is empty)")
        self.set_vocab(_by_frequency(counts))

    @property
    def labels(self) -> list[str]:
        """The labels, in class order: class ``k`` is id ``k + 4``."""
        return self.itos[len(self.SPECIALS):]
