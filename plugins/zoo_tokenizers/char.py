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
        import numpy as np

        chars: set[str] = set()
        for text in texts:
            try:  # one byte per character: counted in bulk (streamed corpora come as large chunks)
                counts = np.bincount(np.frombuffer(text.encode("latin-1"), dtype=np.uint8), minlength=256)
                chars.update(chr(c) for c in np.flatnonzero(counts))
            except UnicodeEncodeError:
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
            try:  # one byte per character when every one is below 256 (ASCII and Latin-1 text)
                cps = np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
            except UnicodeEncodeError:
                cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            inside = cps.dtype == np.uint8 and len(lut) > 255  # every byte value indexes the table
            out.append(lut[cps] if inside else lut[np.minimum(cps, np.uint32(len(lut) - 1))])
        return out

    def _table(self):
        """code point -> id, rebuilt when the vocabulary changes; the last entry (<unk>) serves every code
        point beyond the table, and characters never seen are <unk> too."""
        import numpy as np

        if getattr(self, "_lut_of", None) is not self.itos:
            chars = [(ord(t), i) for i, t in enumerate(self.itos) if len(t) == 1 and i >= len(self.SPECIALS)]
            dtype = np.uint8 if len(self.itos) <= 256 else np.uint16 if len(self.itos) <= 65536 else np.uint32
            lut = np.full(max((c for c, _ in chars), default=0) + 2, self.unk_id, dtype=dtype)
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
