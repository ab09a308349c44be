"""Word and label vocabularies for text classification."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import zoo
from zoo import DataError, Range, VocabTokenizer, by_frequency, read_text

# "<unk>" (so decoded text encodes back to the same ids), a word (letters/digits, with inner
# apostrophes or hyphens: "don't", "well-made") or one punctuation mark ("!" and "?" carry sentiment).
WORD_RE = re.compile(r"<unk>|[^\W_]+(?:['’-][^\W_]+)*|[^\w\s]")
HTML_BREAK_RE = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)  # "<br />", "<br>", "<BR/>"

# Function words that carry no sentiment. Negations ("not", "no", "nor") and words such
# as "very" / "too" are kept on purpose: they change what a review says.
ENGLISH_STOP_WORDS = frozenset("""
a an the and or but if of at by for with about into through during before after above below to from in on
is are was were be been being am have has had having do does did doing i me my myself we our ours ourselves
you your yours yourself yourselves he him his himself she her hers herself it its itself they them their
theirs themselves what which who whom this that these those then there here when where why how all any both
each few more most other some such own same so than s t can will just should now
""".split())


@dataclass
class WordConfig:
    lowercase: bool = True
    strip_html: bool = True  # read HTML line breaks (IMDB's "<br /><br />") as spaces
    min_freq: Annotated[int, Range(1)] = 1  # words seen fewer times in training read as <unk>
    # keep only the most frequent words (specials not counted)
    max_size: Annotated[int, Range(1, note="none: every word")] | None = None
    stopwords: str | None = None  # "english" (a built-in list of function words) or a file, one word per line


class WordTokenizer(VocabTokenizer):
    """Regex words, most frequent first after ``<pad> <unk> <bos> <eos>``; other words are ``<unk>``.

    The stop-word list is read when fitting and kept in the state, so a model loaded
    elsewhere tokenizes exactly as it did in training.
    """

    Config = WordConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.stop: frozenset[str] = frozenset()

    def words(self, text: str) -> list[str]:
        """The words of ``text`` before the vocabulary is applied (stop words removed)."""
        if self.config.strip_html:
            text = HTML_BREAK_RE.sub(" ", text)
        if self.config.lowercase:
            text = text.lower()
        stop = self.stop
        return [w for w in WORD_RE.findall(text) if w not in stop]

    def split(self, text: str) -> list[str]:
        return self.words(text)

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def load_stopwords(self) -> frozenset[str]:
        name = self.config.stopwords
        if not name:
            return frozenset()
        if name == "english":
            return ENGLISH_STOP_WORDS
        path = Path(name)
        if not path.is_file():
            raise DataError(f"tokenizer.stopwords: {path}: no such file; give 'english' or a file with one word "
                            "per line")
        words = [w.strip() for w in read_text(path).splitlines() if w.strip() and not w.startswith("#")]
        return frozenset(w.lower() for w in words) if self.config.lowercase else frozenset(words)

    def fit(self, texts: Iterable[str]) -> None:
        self.stop = self.load_stopwords()
        counts: Counter[str] = Counter()
        n = 0
        for text in texts:
            counts.update(self.words(text))
            n += 1
        if n == 0:
            raise DataError("word tokenizer: no texts to fit on (the training split is empty)")
        kept = by_frequency(counts, min_freq=self.config.min_freq, max_size=self.config.max_size, exclude=self.SPECIALS)
        if not kept:
            raise DataError(
                f"word tokenizer: the vocabulary is empty after filtering ({len(counts)} distinct words in "
                f"{n} training texts, none seen min_freq={self.config.min_freq} times or more outside the stop "
                "words); lower tokenizer.min_freq, drop tokenizer.stopwords or give more training text")
        self.set_vocab(kept)

    def encode(self, text: str) -> list[int]:
        unk, stoi, n = self.unk_id, self.stoi, len(self.SPECIALS)
        return [i if (i := stoi.get(w, unk)) >= n else unk for w in self.words(text)]

    def decode(self, ids: Sequence[int]) -> str:
        n, unk = len(self.SPECIALS), self.unk_id
        return self.join([self.itos[i] for i in ids if i == unk or n <= i < len(self.itos)])

    def get_state(self) -> dict[str, Any]:
        return {"itos": self.itos, "stopwords": sorted(self.stop)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        stop = state.get("stopwords", [])
        if not isinstance(stop, list) or not all(isinstance(w, str) for w in stop):
            raise zoo.ZooError(f"{type(self).__name__}: tokenizer state 'stopwords' must be a list of strings")
        self.stop = frozenset(stop)


class LabelTokenizer(zoo.LabelTokenizer):
    """The class names seen in training, sorted (so "neg" < "pos" and "0" < "1" keep their order).

    One text is one label; class ``k`` is id ``k + 4`` (after the specials).
    """
