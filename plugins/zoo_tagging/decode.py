"""Decoding a tagger's per-token scores into labels: the best label per token, or the best valid BIO sequence.

A BIO (IOB2) label sequence is valid when every ``I-X`` follows ``B-X`` or ``I-X``. A tagger that
picks each token's best label alone can emit ``O I-NP`` or ``B-VP I-NP``, which conlleval reads as
an extra chunk. :func:`viterbi_bio` instead finds the sequence with the highest total
log-probability among the valid ones (the transitions carry no learned score: a forbidden one
is impossible, every other costs nothing). With one pass over the tokens of a batch it costs a
few milliseconds against the model's forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch


@lru_cache(maxsize=16)
def bio_transitions(labels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which label may follow which ``(K, K)`` (row: previous label), and which may start ``(K,)``.

    Cached per label set: evaluation asks for the same one every batch.
    """
    k = len(labels)
    allowed = torch.ones(k, k, dtype=torch.bool)
    start = torch.ones(k, dtype=torch.bool)
    for j, lab in enumerate(labels):
        if lab.startswith("I-"):
            typ = lab[2:]
            start[j] = False
            allowed[:, j] = torch.tensor([prev in (f"B-{typ}", f"I-{typ}") for prev in labels])
    return allowed, start


def viterbi_bio(logits: torch.Tensor, lengths: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    """The best valid BIO labelling ``(B, T)`` of ``logits`` ``(B, T, K)``; positions past a row's length: 0."""
    b, t, k = logits.shape
    allowed, start = bio_transitions(tuple(labels))
    allowed, start = allowed.to(logits.device), start.to(logits.device)
    neg = torch.finfo(torch.float32).min / 4  # impossible, yet sums of a few stay finite
    scores = torch.log_softmax(logits.float(), dim=-1)
    trans = torch.where(allowed, 0.0, neg)  # (K prev, K next)
    best = torch.where(start, scores[:, 0], neg)  # (B, K)
    back = torch.zeros(b, t, k, dtype=torch.long, device=logits.device)
    for i in range(1, t):
        cand = best.unsqueeze(2) + trans  # (B, K prev, K next)
        top, arg = cand.max(dim=1)
        live = (i < lengths).unsqueeze(1)  # rows already ended keep their scores
        best = torch.where(live, top + scores[:, i], best)
        back[:, i] = arg
    out = torch.zeros(b, t, dtype=torch.long, device=logits.device)
    label = best.argmax(-1)  # (B,): each row's last label; followed back from its own last token
    for i in range(t - 1, -1, -1):
        live = i < lengths
        out[:, i] = torch.where(live, label, 0)
        if i:
            label = torch.where(live, back[:, i].gather(1, label.unsqueeze(1)).squeeze(1), label)
    return out
