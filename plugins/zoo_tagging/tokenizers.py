"""Word and label vocabularies for tagging. A text is a sentence's words (or labels) joined by spaces.

Words and labels never hold whitespace: the CoNLL format splits lines on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

import zoo
from zoo import DataError, Range, VocabTokenizer, by_frequency


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
        self.set_vocab(by_frequency(counts, min_freq=self.config.min_freq, max_size=self.config.max_size,
                                    exclude=self.SPECIALS))

    def encode(self, text: str) -> list[int]:
        unk, stoi, n = self.unk_id, self.stoi, len(self.SPECIALS)
        return [i if (i := stoi.get(w, unk)) >= n else unk for w in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        n, unk = len(self.SPECIALS), self.unk_id
        return self.join([self.itos[i] for i in ids if i == unk or n <= i < len(self.itos)])


class TagTokenizer(zoo.LabelTokenizer):
    """The label vocabulary: one id per label seen in training, most frequent first, after the specials.

    A text is a sentence's labels joined by spaces. A label never seen in training encodes
    to <unk>; the tagging task counts those (``unknown_labels``) instead of failing.
    """

    order = "frequency"
    name = "conll-tags"

    def split(self, text: str) -> list[str]:
        return text.split()
