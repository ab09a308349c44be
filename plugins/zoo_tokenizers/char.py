"""A character-level tokenizer, as in nanoGPT's ``shakespeare_char``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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

    def encode_batch(self, texts: Sequence[str]) -> list[Sequence[int]]:
        """Vectorised: each text's code points looked up in a table of ids (characters never seen: <unk>)."""
        import numpy as np

        lut = self._table()
        out = []
        for text in texts:
            cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            ids = np.full(cps.shape, self.unk_id, dtype=np.int64)
            known = cps < len(lut)
            ids[known] = lut[cps[known]]
            out.append(ids)
        return out

    def _table(self):
        """code point -> id (<unk> for characters not in the vocabulary), rebuilt when the vocabulary changes."""
        import numpy as np

        if getattr(self, "_lut_of", None) is not self.itos:
            chars = [(ord(t), i) for i, t in enumerate(self.itos) if len(t) == 1 and i >= len(self.SPECIALS)]
            lut = np.full(max((c for c, _ in chars), default=0) + 1, self.unk_id, dtype=np.int64)
            for c, i in chars:
                lut[c] = i
            self._lut, self._lut_of = lut, self.itos
        return self._lut

    def split(self, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` not seen while fitting, in order of first appearance."""
        stoi = self.stoi
        return list(dict.fromkeys(c for c in text if c not in stoi))
