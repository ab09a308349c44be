"""Vocabularies plugins build when a tokenizer is fitted: words by frequency, and class labels.

Both orders are deterministic (the same training data always gives the same ids), so
two runs with one seed build identical models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import ClassVar, Literal

from zoo.errors import DataError
from zoo.sdk.tokenizer import VocabTokenizer


def by_frequency(counts: Mapping[str, int], *, min_freq: int = 1, max_size: int | None = None,
                 exclude: Collection[str] = ()) -> list[str]:
    """The tokens of ``counts``, most frequent first, ties in code-point order.

    Tokens seen fewer than ``min_freq`` times and those in ``exclude`` (e.g. the special
    tokens) are dropped; then the first ``max_size`` are kept (all with None).
    """
    kept = [t for t in sorted(counts, key=lambda t: (-counts[t], t)) if counts[t] >= min_freq and t not in exclude]
    return kept if max_size is None else kept[:max_size]


class LabelTokenizer(VocabTokenizer):
    """A label vocabulary: one id per class seen in training, after the four specials (class ``k`` is id ``k + 4``).

    By default a text is one label (``split`` returns it whole) and classes are sorted
    (so ``neg`` < ``pos`` and ``0`` < ``1`` keep their order). Subclasses set
    ``order = "frequency"`` for the most frequent class first, ``split`` for several
    labels per text (e.g. one per token), and ``name`` for error messages. A label that
    spells a special token (``<pad>``...) and an empty training split are :class:`DataError`.
    """

    order: ClassVar[Literal["sorted", "frequency"]] = "sorted"
    name: ClassVar[str] = "labels"  # how errors name the tokenizer

    def split(self, text: str) -> list[str]:
        return [text]

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def fit(self, texts: Iterable[str]) -> None:
        counts = Counter(label for text in texts for label in self.split(text))
        clash = sorted(set(counts) & set(self.SPECIALS))
        if clash:
            raise DataError(f"{self.name} tokenizer: the label {clash[0]!r} is a reserved token name; rename it")
        if not counts:
            raise DataError(f"{self.name} tokenizer: no labels to fit on (the training split is empty)")
        self.set_vocab(sorted(counts) if self.order == "sorted" else by_frequency(counts))

    @property
    def labels(self) -> list[str]:
        """The class names, in class order."""
        return self.itos[len(self.SPECIALS):]
