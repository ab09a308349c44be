"""Byte-level BPE, as in GPT-2, trained with the HuggingFace ``tokenizers`` library.

Text is split into UTF-8 bytes, each byte mapped to one of 256 printable symbols
(the ByteLevel alphabet), and frequent pairs of symbols are merged. All 256
symbols are in every vocabulary, so any string encodes without <unk> and
``decode(encode(s)) == s`` exactly.

The specials <pad> <unk> <bos> <eos> are ids 0-3 (a tokenizer imported from a GPT-2
folder instead keeps the folder's ids and names one of its own tokens, e.g.
``<|endoftext|>``, for each role: the state's ``specials``). They are never matched in the
input: text that contains the literal string "<eos>" encodes as the bytes
``<``, ``eos``, ``>``, not as the <eos> id (``encode_special_tokens``). Only the
task adds special ids.

Fitting learns the merges from ``fit_sample`` characters of the training text (an even sample of
a longer text: :func:`even_sample`), so it costs about the same at 100 MB as at 1 GB. Encoding a
batch (:meth:`BPETokenizer.encode_batch`, which preparing a corpus uses) goes word by word through
a cache of each distinct word's ids (:mod:`zoo_tokenizers.words`): the ids of ``encode``, far fewer
calls to the library.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import tokenizers as hf
from tokenizers import decoders, models, pre_tokenizers, trainers

from zoo import DataError, Range, Tokenizer, ZooError, split_text

if TYPE_CHECKING:  # pragma: no cover
    from .words import WordEncoder

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0, 1, 2, 3, in this order
BYTE_ALPHABET = 256  # one symbol per byte value
MIN_VOCAB = BYTE_ALPHABET + len(SPECIALS)
_PIECE, _PIECES = 1 << 14, 64  # encode_batch: characters per piece, pieces per call of the library


@dataclass
class BPEConfig:
    # at most this many ids: 4 specials + 256 byte symbols + merges (the lower bound is checked in validate)
    vocab_size: Annotated[int, Range(le=2**20)] = 4096
    min_frequency: Annotated[int, Range(1)] = 2  # a pair seen fewer times in the training text is never merged
    # characters the merges are learned from: of a longer training text, an even sample (whole pieces of about 16k
    # characters at even strides from its first file to its last), so fitting costs about the same at 100 MB as
    # at 1 GB (the text is still read through once); a shorter text is used whole. none: always all of it
    fit_sample: Annotated[int, Range(1, note="none: all of the text")] | None = 10_000_000

    def validate(self) -> None:
        if self.vocab_size < MIN_VOCAB:
            raise ValueError(
                f"vocab_size must be at least {MIN_VOCAB} ({BYTE_ALPHABET} byte symbols + "
                f"{len(SPECIALS)} specials), got {self.vocab_size}"
            )


def even_sample(pieces: Iterable[str], chars: int) -> list[str]:
    """About ``chars`` characters of ``pieces``, spread evenly: all of them when they hold no more, else whole
    pieces at even strides from the first to the last. Deterministic; holds at most ``2 * chars`` characters
    (and one piece) while it reads."""
    kept: list[str] = []
    held, stride, total = 0, 1, 0  # kept holds pieces 0, stride, 2 * stride, ...
    for i, piece in enumerate(pieces):
        total += len(piece)
        if i % stride:
            continue
        kept.append(piece)
        held += len(piece)
        if held > 2 * chars:  # keep every other piece, and take every other one from here on
            kept, stride = kept[::2], stride * 2
            held = sum(map(len, kept))
    if total <= chars:
        return kept
    m = max(1, round(len(kept) * chars / held))  # pieces of the even stride that hold about ``chars``
    return kept if m >= len(kept) else [kept[(2 * j + 1) * len(kept) // (2 * m)] for j in range(m)]


def _empty() -> hf.Tokenizer:
    """An untrained byte-level BPE pipeline: no normalizer, ByteLevel pre-tokenizer and decoder."""
    tok = hf.Tokenizer(models.BPE(unk_token="<unk>"))  # <unk> never occurs: every byte is in the vocab
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def _check(tok: hf.Tokenizer, where: str) -> hf.Tokenizer:
    """Check the specials' ids, and turn off special-token matching in the input text."""
    # each special must be both in the model's vocab and a special added token, at ids 0..3
    added = {i: t.content for i, t in tok.get_added_tokens_decoder().items() if t.special}
    ids = [tok.token_to_id(s) for s in SPECIALS]
    if ids != list(range(len(SPECIALS))) or [added.get(i) for i in range(len(SPECIALS))] != list(SPECIALS):
        found = ", ".join(f"{s}={i}" for s, i in zip(SPECIALS, ids))
        specials = ", ".join(f"{i}={s}" for i, s in sorted(added.items()))
        raise ZooError(f"bpe tokenizer {where}: the specials must be <pad>=0 <unk>=1 <bos>=2 <eos>=3; "
                       f"found {found} (special tokens: {specials})")
    # Without this, an input holding the text "<eos>" would encode to the <eos> id and
    # decode to nothing. The flag is not part of the JSON (to_str), so it is set on every load.
    tok.encode_special_tokens = True
    return tok


def _roles(tok: hf.Tokenizer, specials: Any) -> dict[str, int]:
    """The state's ``specials`` ({"pad": id, "unk": id, "bos": id, "eos": id}), each an id of ``tok``."""
    roles = ("pad", "unk", "bos", "eos")
    if not isinstance(specials, dict) or sorted(specials) != sorted(roles):
        raise ZooError(f"bpe tokenizer state: specials must give an id for each of {', '.join(roles)}")
    n = tok.get_vocab_size(with_added_tokens=True)
    bad = [r for r in roles if not isinstance(specials[r], int) or not 0 <= specials[r] < n]
    if bad:
        raise ZooError(f"bpe tokenizer state: specials.{bad[0]} = {specials[bad[0]]!r} is not an id below {n}")
    tok.encode_special_tokens = True  # as in _check: text is never read as a special id
    return {r: specials[r] for r in roles}


class BPETokenizer(Tokenizer):
    """Byte-level BPE; ids 0-3 are <pad> <unk> <bos> <eos> (or the state's ``specials``). Decoding skips them."""

    Config = BPEConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._tok: hf.Tokenizer | None = None
        self._specials: dict[str, int] | None = None  # None: zoo's own layout, ids 0-3
        self._words: WordEncoder | None = None  # encode_batch's cache of words (None: not made yet, or not possible)
        self._words_of: hf.Tokenizer | None = None  # the pipeline _words was made for

    @property
    def tok(self) -> hf.Tokenizer:
        if self._tok is None:
            raise ZooError("bpe tokenizer is not fitted: call fit(texts) or set_state(state) first")
        return self._tok

    def fit(self, texts: Iterable[str]) -> None:
        chars = 0

        def counted() -> Iterator[str]:  # the texts, counted on the way
            nonlocal chars
            for text in texts:
                chars += len(text)
                # in pieces cut before whitespace (the same word counts): the library's memory grows with the
                # length of the texts it is handed, not with how many
                yield from split_text(text, _PIECE)

        sample = self.config.fit_sample
        pieces = counted() if sample is None else even_sample(counted(), sample)  # streamed, or the sample

        trainer = trainers.BpeTrainer(
            vocab_size=self.config.vocab_size,
            min_frequency=self.config.min_frequency,
            special_tokens=list(SPECIALS),  # given first, so they get ids 0..3
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
            show_progress=False,  # about a second for 1 MB of text
        )
        tok = _empty()
        tok.train_from_iterator(pieces, trainer=trainer)
        if chars == 0:
            raise DataError("bpe tokenizer: no text to fit on (the training split is empty or holds only empty texts)")
        self._tok, self._specials = _check(tok, "after training"), None
        used = chars if sample is None else sum(map(len, pieces))
        log.info("bpe: trained on %s of %s characters%s, %d ids", f"{used:,}", f"{chars:,}",
                 " (an even sample: tokenizer.fit_sample)" if used < chars else "", self.vocab_size)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[Sequence[int]]:
        """The ids of each text (uint32 arrays), equal to :meth:`encode`'s, by distinct words.

        Each word not met before goes through the library's batch encoding, on all cores
        (``RAYON_NUM_THREADS`` bounds them); see :mod:`zoo_tokenizers.words`. A pipeline that does not
        split like GPT-2's (an imported one may not), or a text with a character the two splitters
        class apart, is encoded by the library whole (:meth:`_library_ids`).
        """
        words = self._word_encoder()
        out = []
        for text in texts:
            ids = words.encode(text) if words is not None else None
            out.append(ids if ids is not None else self._library_ids(text))
        return out

    def encode_stream(self, texts: Iterable[str], batch: int = 8) -> Iterator[Sequence[int]]:
        """:meth:`encode_batch` of a stream of texts, in order; past its first 32M characters on worker
        processes, one per core (:mod:`zoo_tokenizers.parallel`)."""
        from .parallel import encode_stream

        return encode_stream(self, texts, batch)

    def _word_encoder(self) -> WordEncoder | None:
        from .words import encoder_for

        tok = self.tok
        if self._words_of is not tok:  # fitted or restored since: a new cache for the new pipeline
            self._words, self._words_of = encoder_for(tok), tok
        return self._words

    def _library_ids(self, text: str) -> Any:
        """The library's batch encoding of ``text`` in pieces of about 16k characters cut before whitespace (the
        same ids as the whole text), a few at a time: its per-token records of a whole large text take far more
        memory than the ids."""
        import numpy as np

        pieces, ids = list(split_text(text, _PIECE)), []
        for i in range(0, len(pieces), _PIECES):
            encs = self.tok.encode_batch(pieces[i:i + _PIECES], add_special_tokens=False)
            ids += [np.asarray(e.ids, dtype=np.uint32) for e in encs]
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint32)

    def decode(self, ids: Sequence[int]) -> str:
        n = self.vocab_size
        if self._specials is None:
            return self.tok.decode([i for i in ids if len(SPECIALS) <= i < n], skip_special_tokens=True)
        skip = set(self._specials.values())
        return self.tok.decode([i for i in ids if 0 <= i < n and i not in skip], skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def _id(self, role: str, default: int) -> int:
        return default if self._specials is None else self._specials[role]

    pad_id = property(lambda self: self._id("pad", 0))
    unk_id = property(lambda self: self._id("unk", 1))
    bos_id = property(lambda self: self._id("bos", 2))
    eos_id = property(lambda self: self._id("eos", 3))

    def get_state(self) -> dict[str, Any]:
        state = {"tokenizer_json": self.tok.to_str()}  # the whole trained pipeline, as JSON text
        if self._specials is not None:
            state["specials"] = dict(self._specials)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        text = state.get("tokenizer_json") if isinstance(state, dict) else None
        if not isinstance(text, str):
            raise ZooError("bpe tokenizer state has no 'tokenizer_json' string")
        try:
            tok = hf.Tokenizer.from_str(text)
        except Exception as exc:  # the library raises plain Exception on bad JSON
            raise ZooError(f"bpe tokenizer state is not a valid tokenizers JSON: {exc}") from exc
        if "specials" in state:  # an imported vocabulary: the specials are ids of its own
            self._specials, self._tok = _roles(tok, state["specials"]), tok
        else:
            self._specials, self._tok = None, _check(tok, "state")
