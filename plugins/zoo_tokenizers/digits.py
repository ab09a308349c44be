"""A tokenizer for sequences of decimal digits, e.g. ``"3 1 4 1 5"``."""

from __future__ import annotations

from collections.abc import Iterable

from zoo import DataError, VocabTokenizer

DIGITS = "0123456789"


class DigitTokenizer(VocabTokenizer):
    """Ids 0-3 are <pad> <unk> <bos> <eos>; the digits '0'..'9' follow. Decodes to space-separated digits."""

    def __init__(self, config=None):
        super().__init__(config)
        self.set_vocab(DIGITS)

    def fit(self, texts: Iterable[str]) -> None:
        for i, text in enumerate(texts):
            bad = next((c for c in text if not (c.isspace() or c in DIGITS)), None)
            if bad is not None:
                raise DataError(f"digits tokenizer: example {i} contains {bad!r}; only digits and spaces are allowed")

    def split(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)
