"""Tokenizers for English intents and for Python code.

Both keep slot names (``var_0``, ``str_3``) as single tokens, and both vocabularies
hold every slot name whether or not training saw it, so a slot never reads as <unk>.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from zoo import DataError, Range, VocabTokenizer, by_frequency

from .slots import slot_names

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\S")
# Python lexemes; whitespace is kept: a newline with the indentation after it is one
# token, a run of spaces or tabs another, so joining the tokens gives the text back.
CODE = re.compile(
    r"\r?\n[ \t]*"  # newline + indentation
    r"|[ \t]+"  # spaces between tokens
    r"|[A-Za-z_][A-Za-z0-9_]*"  # names and keywords
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[jJ]?"  # numbers
    r"|\*\*=?|//=?|>>=?|<<=?|->|\.\.\.|[-+*/%&|^@=<>!:]="  # multi-character operators
    r"|\S|\s"  # any other character on its own (brackets, quotes, colons, commas, ...)
)


@dataclass
class VocabConfig:
    # tokens seen fewer times in training read as <unk> (the copy mechanism can still emit them)
    min_freq: Annotated[int, Range(1)] = 1
    max_size: Annotated[int, Range(1, note="none: every token")] | None = None  # keep only the most frequent tokens


class _Fitted(VocabTokenizer):
    Config = VocabConfig
    name = ""

    def fit(self, texts: Iterable[str]) -> None:
        counts = Counter(t for text in texts for t in self.split(text))
        if not counts:
            raise DataError(f"{self.name} tokenizer: no tokens to fit on (the training split is empty)")
        kept = by_frequency(counts, min_freq=self.config.min_freq, max_size=self.config.max_size)
        slots = slot_names()
        self.set_vocab(slots + [t for t in kept if t not in set(slots)])


class IntentTokenizer(_Fitted):
    """English: words (letters, digits, underscores) and single punctuation marks; case is kept."""

    name = "intent-words"

    def split(self, text: str) -> list[str]:
        return WORD.findall(text)

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)


class CodeTokenizer(_Fitted):
    """Python: names, numbers, operators, every bracket, quote, colon and comma, and the whitespace between.

    ``join(split(code)) == code`` for any text: nothing is dropped or normalised.
    """

    name = "python-code"

    def split(self, text: str) -> list[str]:
        return CODE.findall(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)


def is_space(token: str) -> bool:
    return not token.strip()
