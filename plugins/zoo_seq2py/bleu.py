"""Corpus BLEU-4 the way the CoNaLa challenge computes it.

* Code is tokenised for scoring as in the CoNaLa baseline's ``tokenize_for_bleu_eval``
  (after Ling et al. 2016): every character that is not a letter, digit or underscore
  is a token of its own, a lower-case letter followed by an upper-case one is split
  (``camelCase`` -> ``camel Case``), and both quote characters read as a backquote.
* The score is the corpus BLEU of the TensorFlow NMT ``compute_bleu`` that CoNaLa's
  ``conala_eval.py`` calls: clipped n-gram counts summed over the corpus for n = 1..4,
  their geometric mean (zero when any precision is zero), times the brevity penalty
  ``exp(1 - r/c)`` when the hypotheses are shorter than the references. ``conala_eval.py``
  passes ``smooth=False``; with ``smooth=True`` each precision is ``(m + 1) / (p + 1)``
  (the CodaLab scorer of the challenge used that form).

Every quantity is a sum over sentences, so a corpus score can be put together from
the per-batch sums the Trainer adds up (:func:`ngram_stats`, :func:`bleu_from_stats`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

MAX_ORDER = 4


def tokenize_for_bleu(code: str) -> list[str]:
    code = re.sub(r"([^A-Za-z0-9_])", r" \1 ", code)
    code = re.sub(r"([a-z])([A-Z])", r"\1 \2", code)
    code = code.replace('"', "`").replace("'", "`")
    return code.split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def ngram_stats(hypothesis: Sequence[str], reference: Sequence[str], max_order: int = MAX_ORDER) -> dict[str, float]:
    """Sums for one sentence pair: ``match_n`` (clipped), ``total_n`` (hypothesis n-grams), ``hyp_len``, ``ref_len``."""
    stats: dict[str, float] = {"hyp_len": float(len(hypothesis)), "ref_len": float(len(reference))}
    for n in range(1, max_order + 1):
        hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
        stats[f"match_{n}"] = float(sum(min(c, ref[g]) for g, c in hyp.items()))
        stats[f"total_{n}"] = float(max(0, len(hypothesis) - n + 1))
    return stats


def bleu_from_stats(stats: Mapping[str, float], *, smooth: bool = False, max_order: int = MAX_ORDER) -> float:
    """Corpus BLEU (0..1) from summed :func:`ngram_stats`."""
    precisions = []
    for n in range(1, max_order + 1):
        m, t = stats.get(f"match_{n}", 0.0), stats.get(f"total_{n}", 0.0)
        precisions.append((m + 1.0) / (t + 1.0) if smooth else (m / t if t > 0 else 0.0))
    if min(precisions) <= 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    hyp_len, ref_len = stats.get("hyp_len", 0.0), stats.get("ref_len", 0.0)
    if hyp_len <= 0:
        return 0.0
    ratio = hyp_len / ref_len if ref_len > 0 else math.inf
    penalty = 1.0 if ratio > 1.0 else math.exp(1.0 - 1.0 / ratio)
    return geo_mean * penalty


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], *, smooth: bool = False) -> float:
    """BLEU-4 of generated code strings against reference code strings, CoNaLa tokenisation."""
    total: Counter = Counter()
    for hyp, ref in zip(hypotheses, references, strict=True):
        total.update(ngram_stats(tokenize_for_bleu(hyp), tokenize_for_bleu(ref)))
    return bleu_from_stats(total, smooth=smooth)
