"""Classification metrics tasks share: a confusion matrix, per-class precision / recall / F1, macro F1.

A class index below 0 in ``gold`` is a label never seen in training: it has a row of
its own in the confusion matrix (it counts against the class predicted for it) and no
column. Importing this module does not import torch; :func:`confusion_matrix` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall and F1 from true positives, false positives and false negatives; 0 where undefined."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def confusion_matrix(pred: torch.Tensor, gold: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Counts ``[gold][predicted]`` (K + 1, K), long, on ``pred``'s device, of the class ids ``pred`` and ``gold``.

    ``pred`` holds ids in ``0 .. K - 1``; ``gold`` too, or a negative id for a label never
    seen in training, counted in the last row. Both are flattened (any shape, the same).
    """
    import torch

    pred, gold = pred.reshape(-1).long(), gold.reshape(-1).long()
    if pred.shape != gold.shape:
        raise ValueError(f"confusion_matrix: {pred.numel()} predictions for {gold.numel()} gold labels")
    k = n_classes
    gold = gold.masked_fill(gold < 0, k)
    return torch.bincount(gold * k + pred, minlength=(k + 1) * k).view(k + 1, k)


def class_counts(confusion: Any) -> tuple[list[int], list[int], list[int]]:
    """Per class of a ``[gold][predicted]`` matrix (K or K + 1 rows, K columns): true positives,
    false positives (the column without the diagonal, the unseen-label row included) and
    false negatives (the row without the diagonal)."""
    rows = confusion.tolist() if hasattr(confusion, "tolist") else [list(r) for r in confusion]
    k = len(rows[0]) if rows else 0
    tp = [int(rows[c][c]) for c in range(k)]
    predicted = [int(sum(r[c] for r in rows)) for c in range(k)]
    support = [int(sum(rows[c])) for c in range(k)]
    return tp, [p - t for p, t in zip(predicted, tp)], [s - t for s, t in zip(support, tp)]


def class_scores(labels: Sequence[str], tp: Sequence[float], fp: Sequence[float],
                 fn: Sequence[float]) -> list[dict[str, Any]]:
    """One row per class, in class order: ``label``, ``support`` (gold count), ``predicted``,
    ``precision``, ``recall`` and ``f1``."""
    rows = []
    for lab, t, p_, n in zip(labels, tp, fp, fn):
        p, r, f = precision_recall_f1(t, p_, n)
        rows.append({"label": lab, "support": int(t + n), "predicted": int(t + p_), "precision": p, "recall": r,
                     "f1": f})
    return rows


def macro_f1(rows: Sequence[dict[str, Any]]) -> float:
    """The mean F1 of :func:`class_scores` rows over the classes that occur (in gold labels or predictions)."""
    present = [r for r in rows if r["support"] or r["predicted"]]
    return sum(r["f1"] for r in present) / max(len(present), 1)
