"""``zoo train --nproc N``: torchrun's launcher started from the command, and its failures in one line.

Each rank runs ``python -m zoo train ...`` (see :mod:`zoo.runtime.distributed` for what a rank does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import RankLostError, ZooError


@contextlib.contextmanager
def _launcher_env(nproc: int, quiet: bool) -> Iterator[None]:
    """Threads per rank, unbuffered output and torchrun's own logging, for the time of one launch only."""
    from zoo.runtime.device import cpu_cores

    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "PYTHONUNBUFFERED")}
    if saved["OMP_NUM_THREADS"] is None:  # share the cores out; torchrun would set 1 and print a banner about it
        os.environ["OMP_NUM_THREADS"] = str(max(1, cpu_cores() // nproc))
    os.environ["PYTHONUNBUFFERED"] = "1"  # a rank that torchrun stops must not take its last lines with it
    loggers = [logging.getLogger(n) for n in ("torch.distributed.elastic", "torch.distributed.run",
                                              "torch.distributed.launcher")]
    levels = [lg.level for lg in loggers]
    if quiet:  # the failure is reported in one line below; the agent's own report would repeat it at length
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def launch(nproc: int, args: list[str], run_dir: Path, *, quiet: bool = True) -> None:
    """Run ``python -m zoo ARGS`` in ``nproc`` processes on this machine through torchrun.

    A rank that fails makes torchrun stop the others; that becomes one :class:`ZooError`
    saying which rank failed and how, and where the last complete checkpoint is.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    targs = ["--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0", "--module", "zoo", *args]
    with _launcher_env(nproc, quiet):
        try:
            run(parse_args(targs))
        except ChildFailedError as exc:
            raise ZooError(_failure_message(exc, nproc, run_dir, args)) from None


def _failure_message(exc: Any, nproc: int, run_dir: Path, args: list[str]) -> str:
    failures = exc.failures  # global rank -> ProcessFailure

    def cause(item: tuple[int, Any]) -> tuple[int, int, int]:
        rank, f = item
        # torchrun stops the survivors with SIGTERM, and a survivor that noticed first exits with
        # RankLostError's code: neither is where the trouble started
        consequence = f.exitcode == -signal.SIGTERM or f.exitcode == RankLostError.exit_code
        return (int(consequence), f.timestamp, rank)

    rank, f = min(failures.items(), key=cause)
    if f.exitcode < 0:
        how = f"was killed by {f.signal_name()}"
    elif f.exitcode == 1:
        how = "stopped with the error shown above"
    else:
        how = f"exited with code {f.exitcode}"
    msg = f"rank {rank} of {nproc} {how}; the other ranks were stopped."
    from zoo.store.checkpoint import CHECKPOINT, load_checkpoint

    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file():
        try:
            epoch = load_checkpoint(ckpt)["trainer"]["epoch"]
            msg += (f" {ckpt} holds epoch {epoch}, the last complete one: continue with "
                    f"'zoo train --resume {run_dir} --nproc {nproc}'")
        except ZooError:
            msg += f" {ckpt} cannot be read; the run cannot be resumed"
    elif "--resume" not in args:
        msg += " No epoch was completed: nothing to resume."
    return msg
