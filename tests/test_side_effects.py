"""Library code changes no process-wide state: a training run in a notebook leaves it as it found it."""

from __future__ import annotations

import os
import sys
import warnings

import matplotlib

import zoo

TINY = {"dataset": {"train_size": 64, "val_size": 16, "test_size": 16}, "model": {"hidden": 8},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1, "progress": False}}


def _umask() -> int:
    mask = os.umask(0o022)  # the test, not the library, may read it this way
    os.umask(mask)
    return mask


def _backend() -> object:
    return dict.__getitem__(matplotlib.rcParams, "backend")  # the raw value: reading it must not resolve it


def test_a_training_run_leaves_matplotlib_warnings_and_umask_alone(tmp_path):
    os.umask(0o027)  # an unusual umask that a flip-and-restore bug would be likely to lose
    try:
        backend, pyplot = _backend(), "matplotlib.pyplot" in sys.modules
        zoo.train("subseq-gru", TINY, out=tmp_path / "first")  # imports torch & co., which add their own filters
        filters, umask = list(warnings.filters), _umask()
        result = zoo.train("subseq-gru", TINY, out=tmp_path / "run")
        assert (list(warnings.filters), _umask()) == (filters, umask == 0o027 and umask)
    finally:
        os.umask(0o022)
    assert (_backend(), "matplotlib.pyplot" in sys.modules) == (backend, pyplot)  # no backend switch, no pyplot
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0  # the plot was drawn
    assert result.artifact.stat().st_mode & 0o777 == 0o640  # files get the process's umask


def test_training_restores_torch_thread_count(tmp_path):
    import torch

    from zoo.runtime.device import torch_threads

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1  # train.threads differs from the process's count, whatever the host has
    torch.set_num_threads(3)
    try:
        with torch_threads(other):
            assert torch.get_num_threads() == other
        assert torch.get_num_threads() == 3
        zoo.train("subseq-gru", {**TINY, "train": {**TINY["train"], "threads": other}}, out=tmp_path / "run")
        assert torch.get_num_threads() == 3  # the kit's `threads: 1` no longer leaks into a pytest session
    finally:
        torch.set_num_threads(before)
