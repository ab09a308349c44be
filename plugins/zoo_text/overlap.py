"""How much of a validation text was seen in training: the share of its word 8-grams found in the training text.

Words, not characters: two unrelated English texts share most of their character 8-grams
(" of the ", "tion and"; tiny-shakespeare's last 10% shares half of them with its first 90%,
IMDB test reviews three quarters with train reviews) but almost none of their word 8-grams
(0.0% and 0.05% there), while a copied passage shares all of them. A word is a run of
letters, digits or underscores (``\\w+``), lower-cased, so that the same text extracted
from a PDF and from a web page, with other punctuation or line breaks, still matches.

Each n-gram is a 64-bit rolling hash of its words' hashes; a false match needs a collision,
about one in 10^19 per pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

N = 8
WARN_ABOVE = 0.01  # a larger share is reported as a warning: validation text the model has seen
_WORD = re.compile(r"\w+")
_PRIME = 1_099_511_628_211  # FNV's 64-bit prime: any large odd multiplier does


@dataclass
class Overlap:
    n: int
    val_ngrams: int  # n-grams in the validation text, each occurrence counted
    seen: int  # of them, how many occur in the training text too

    @property
    def fraction(self) -> float | None:
        return self.seen / self.val_ngrams if self.val_ngrams else None

    def describe(self) -> str:
        if self.fraction is None:
            return f"validation text has fewer than {self.n} words: no {self.n}-gram overlap to report"
        return (f"{100 * self.fraction:.2f}% of the validation text's word {self.n}-grams ({self.seen:,} of "
                f"{self.val_ngrams:,}) also occur in the training text")


def ngram_hashes(texts: list[str], n: int = N):
    """A uint64 hash of every word n-gram of every text (n-grams never span two texts)."""
    import numpy as np

    out = []
    for text in texts:
        words = _WORD.findall(text.lower())
        if len(words) < n:
            continue
        ids = np.fromiter((hash(w) for w in words), dtype=np.int64, count=len(words)).view(np.uint64)
        m = len(ids) - n + 1
        h = np.zeros(m, dtype=np.uint64)
        for k in range(n):  # unsigned arithmetic wraps around modulo 2**64
            h = h * np.uint64(_PRIME) + ids[k : k + m]
        out.append(h)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def overlap(train: list[str], val: list[str], n: int = N) -> Overlap:
    """The share of the word ``n``-grams of ``val`` that occur anywhere in ``train``."""
    import numpy as np

    seen_in_train = np.sort(ngram_hashes(train, n))
    val_hashes = ngram_hashes(val, n)
    if not seen_in_train.size:
        return Overlap(n, int(val_hashes.size), 0)
    at = np.minimum(np.searchsorted(seen_in_train, val_hashes), seen_in_train.size - 1)
    return Overlap(n, int(val_hashes.size), int((seen_in_train[at] == val_hashes).sum()))


SAMPLE_BYTES = 16 << 20  # a streamed check reads at most about this much text of each split


def sampled(documents, total_bytes: int | None, budget: int = SAMPLE_BYTES):
    """The texts of evenly spaced chunks of ``documents`` (each an iterable of chunks cut at whitespace), about
    ``budget`` bytes of the ``total_bytes``; every chunk when the documents hold no more than that."""
    from zoo import whitespace_cuts

    every = max(1, -(-(total_bytes or 0) // budget))
    i = 0
    for doc in documents:
        for chunk in whitespace_cuts(doc):
            if i % every == 0:
                yield chunk
            i += 1


def streamed_overlap(train, val, train_bytes: int | None, val_bytes: int | None, n: int = N) -> tuple[Overlap, bool]:
    """(:func:`overlap` of samples of two streamed splits, whether it was sampled): bounded memory on any input.

    On inputs larger than :data:`SAMPLE_BYTES` it is an estimate from evenly spaced chunks of both splits;
    an n-gram of the validation text copied from training text outside the training sample goes uncounted,
    so the share is a lower bound there.
    """
    whole = max(train_bytes or 0, val_bytes or 0) <= SAMPLE_BYTES
    return overlap(list(sampled(train, train_bytes)), list(sampled(val, val_bytes)), n), not whole
