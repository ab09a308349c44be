"""Synthetic data for the subsequence-copy task.

Source ``start length x0 .. x{n-1}``: n random digits, preceded by a start index
and a length naming a contiguous slice of them. Target: that slice, padded with
the digit 0 to n digits, as in the reference system. Example (n = 8)::

    src "2 3 7 1 9 4 4 0 2 8"   ->   tgt "9 4 4 0 0 0 0 0"

(start, length) is drawn uniformly from the n(n+1)/2 valid pairs, so short and
long slices are equally likely wherever they start. Every split is generated
from its own seed; validation and test examples that also occur in the training
split are drawn again, so evaluation is always on unseen inputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated

from zoo import SEED, Dataset, Range


@dataclass
class SubseqConfig:
    # digits per sequence (start and length are single digits, so at most 10)
    seq_len: Annotated[int, Range(1, 10, note="start and length are single digits")] = 8
    train_size: Annotated[int, Range(1, 10_000_000)] = 100_000
    val_size: Annotated[int, Range(1, 10_000_000)] = 2_000
    test_size: Annotated[int, Range(1, 10_000_000)] = 10_000
    seed: Annotated[int, SEED] = 0  # train uses seed, val seed + 1, test seed + 2


def make_example(rng: random.Random, n: int, pairs: list[tuple[int, int]]) -> dict[str, str]:
    digits = [rng.randrange(10) for _ in range(n)]
    start, length = pairs[rng.randrange(len(pairs))]
    target = digits[start:start + length] + [0] * (n - length)
    return {"src": " ".join(map(str, [start, length, *digits])), "tgt": " ".join(map(str, target))}


class SubseqDataset(Dataset):
    Config = SubseqConfig
    splits = ("train", "val", "test")

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        self._train: list[dict[str, str]] | None = None

    def generate(self, split: str, exclude: set[str] | None = None) -> list[dict[str, str]]:
        cfg = self.config
        offset = self.splits.index(split)
        size = (cfg.train_size, cfg.val_size, cfg.test_size)[offset]
        rng = random.Random(cfg.seed + offset)
        n = cfg.seq_len
        pairs = [(s, length) for s in range(n) for length in range(1, n - s + 1)]
        out: list[dict[str, str]] = []
        while len(out) < size:
            ex = make_example(rng, n, pairs)
            if exclude is None or ex["src"] not in exclude:
                out.append(ex)
        return out

    def load(self, split: str) -> list[dict[str, str]]:
        self.check_split(split)
        if self._train is None:
            self._train = self.generate("train")
        if split == "train":
            return self._train
        return self.generate(split, exclude={ex["src"] for ex in self._train})
