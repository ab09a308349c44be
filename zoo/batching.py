"""Batch orders for examples of varying length, shared by the tasks that pad."""

from __future__ import annotations

import torch


def length_batches(lengths: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int, bucket: bool = True,
                   pool_batches: int = 50, shuffle_inside: bool = False) -> list[torch.Tensor]:
    """Example indices, batch by batch, for examples of the given ``lengths`` (N,).

    Training (``shuffle``): a seeded random order; with ``bucket``, pools of
    ``pool_batches`` batches are sorted by length and cut into batches (little padding),
    the batches are shuffled, and the short last batch of each pool goes last.
    ``shuffle_inside`` also shuffles the rows of every batch (no length order inside).
    Evaluation: sorted by length, since sums do not depend on the order.
    """
    if not shuffle:
        return list(torch.argsort(lengths, stable=True).split(batch_size))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g)
    if not bucket:
        return list(order.split(batch_size))
    pool = pool_batches * batch_size
    parts = [chunk[torch.argsort(lengths[chunk], stable=True)] for chunk in order.split(pool)]
    groups = [b for part in parts for b in part.split(batch_size)]
    groups = [groups[i] for i in torch.randperm(len(groups), generator=g)]
    if shuffle_inside:
        groups = [b[torch.randperm(len(b), generator=g)] for b in groups]
    groups.sort(key=lambda b: len(b) < batch_size)  # stable: the short batches go last, in shuffled order
    return groups
