"""A character-level tokenizer, as in nanoGPT's ``shakespeare_char``."""

from __future__ import annotations

from collections.abc import Iterable

from zoo import DataError, VocabTokenizer


class CharTokenizer(VocabTokenizer):
    """One id per character seen while fitting, sorted by code point, after the specials.

    Ids 0-3 are <pad> <unk> <bos> <eos>; the characters follow in sorted order, so
    the same training text always gives the same ids. A character never seen while
    fitting encodes to <unk> (and so decodes to nothing): call :meth:`unknown_chars`
    first to warn about such characters.
    """

    def fit(self, texts: Iterable[str]) -> None:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise DataError("char tokenizer: no text to fit on (the training split is empty or holds only empty texts)")
        self.set_vocab(sorted(chars))

    def split(self, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` not seen while fitting, in order of first appearance."""
        stoi = self.stoi
        return list(dict.fromkeys(c for c in text if c not in stoi))
