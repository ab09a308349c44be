"""The training run behind ``zoo train``: the plan (checked before any file is touched), the driver, the run folder.

A run folder holds ``config.toml``, ``tokenizers.json``, the per-epoch ``metrics.jsonl``,
``checkpoint.safetensors`` and ``loss.png``, and at the end the artifact ``model.safetensors``,
``metrics.json``, the model card ``README.md`` and, for tasks with per-example outputs,
``outputs.test.jsonl``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as _config
from .build import Built, build, make_model, seed, tokenizer_states
from .card import model_card
from .errors import ConfigError, RunDirError, first_line
from .loading import export_built, write_outputs
from .resolve import Resolved, resolve, resolve_entry

log = logging.getLogger(__name__)

RUN_FILES = ("config.toml", "tokenizers.json", "metrics.jsonl", "checkpoint.safetensors", "loss.png",
             "model.safetensors", "README.md", "metrics.json", "outputs.test.jsonl")
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    artifact: Path


@dataclass
class _Plan:
    """What a train command will do, found before any file is touched."""

    resolved: Resolved
    run_dir: Path
    stale: list[str]  # files of an earlier run that force=True replaces
    resume: bool


def check_out_dir(out: Path, force: bool) -> list[str]:
    """The run files already in ``out``; refuses them unless ``force``."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"out={out} is a file, not a folder")
    present = [f for f in RUN_FILES if (out / f).exists()]
    if present and not force:
        raise RunDirError(
            f"{out} already holds a run ({', '.join(present)}); use resume={out} to continue it, "
            "force=True to replace it, or another out="
        )
    return present


def _resume_config(run_dir: Path, overrides: dict[str, Any]) -> Resolved:
    from .checkpoint import CHECKPOINT

    cfg_path = run_dir / "config.toml"
    if not cfg_path.is_file() or not (run_dir / CHECKPOINT).is_file():
        raise RunDirError(f"{run_dir}: nothing to resume (needs config.toml and {CHECKPOINT} from an earlier run)")
    fixed = sorted(set(overrides) - {"train"})
    if fixed:
        raise ConfigError(f"resume={run_dir}: only train.* settings may change, not '{fixed[0]}'")
    return resolve(_config.merge(_config.load_toml(cfg_path), overrides))


def plan_train(entry: str | None, overrides: dict[str, Any], out: str | Path | None, resume: str | Path | None,
               force: bool) -> _Plan:
    """Resolve the config and check the run folder and device; touches no file."""
    from .device import resolve_device

    stale: list[str] = []
    if resume is not None:
        run_dir = Path(resume)
        resolved = _resume_config(run_dir, overrides)
    else:
        if entry is None:
            raise ConfigError("name an entry to train (see 'zoo list')")
        resolved = resolve_entry(entry, overrides)
        run_dir = Path(out) if out is not None else Path("runs") / resolved.entry.split(":", 1)[-1]
        stale = check_out_dir(run_dir, force)
    resolve_device(resolved.configs["train"].device)
    return _Plan(resolved, run_dir, stale, resume is not None)


def check_train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
                resume: str | Path | None = None, force: bool = False, nproc: int = 1) -> Path:
    """Check what a run in ``nproc`` processes can check before it starts them; return the run folder.

    ``nproc`` may not exceed the GPUs (CUDA) or CPU cores of this machine.
    """
    from .device import resolve_device
    from .distributed import check_nproc

    plan = plan_train(entry, overrides or {}, out, resume, force)
    check_nproc(nproc, resolve_device(plan.resolved.configs["train"].device))
    return plan.run_dir


def train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
          resume: str | Path | None = None, force: bool = False, data_dir: str | Path | None = None,
          on_epoch: EpochCallback | None = None) -> RunResult:
    """Train ``entry`` (or continue the run in ``resume``); write the run folder and its artifact.

    Everything that can be wrong (config, device, data, checkpoint) is checked before
    the run folder is touched, so a failed command never damages an earlier run.

    Started by torchrun (``WORLD_SIZE`` > 1), every process calls this: they join one
    process group, train data-parallel and rank 0 writes the run folder; ``on_epoch``
    is called on rank 0 only.
    """
    from . import distributed
    from .errors import RankLostError

    plan = plan_train(entry, overrides or {}, out, resume, force)
    tcfg = plan.resolved.configs["train"]
    started = distributed.start(tcfg.device, tcfg.dist_timeout)
    world = distributed.current()
    try:
        return _train(plan, data_dir, on_epoch, world)
    except Exception as exc:
        if world.size > 1 and distributed.peer_lost(exc):
            raise RankLostError(f"rank {world.rank}: another process of this run went away ({first_line(exc)}); "
                                "stopping too") from exc
        raise
    finally:
        distributed.stop(started)


def _read_tokenizer_states(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "tokenizers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{run_dir / 'tokenizers.json'}: cannot read it ({exc}); the run cannot be resumed") from exc


def _prepare(plan: _Plan, data_dir: str | Path | None, on_epoch: EpochCallback | None) -> tuple[Built, Any, dict]:
    """The built pieces, the model and its Trainer (restored from the checkpoint on resume), and the
    extra files the task wants in the run folder; nothing is written."""
    from .checkpoint import CHECKPOINT, load_checkpoint
    from .trainer import Trainer

    resolved, run_dir = plan.resolved, plan.run_dir
    tcfg = resolved.configs["train"]
    seed(tcfg.seed)
    built = build(resolved, data_dir, _read_tokenizer_states(run_dir) if plan.resume else None,
                  ("train", "val", "test"))
    seed(tcfg.seed)
    model = make_model(resolved, built.task.model_sizes())
    run_files = (built.task.init_model(model, built.splits.get("train")) or {}) if not plan.resume else {}
    trainer = Trainer(model, built.task, tcfg, resolved.configs["optim"], run_dir=run_dir, on_epoch=on_epoch)
    if plan.resume:
        trainer.restore(load_checkpoint(run_dir / CHECKPOINT))
        log.info("resuming %s after epoch %d", run_dir, trainer.state.epoch)
    return built, trainer, run_files


def clear_stale(run_dir: Path, stale: list[str]) -> None:
    """force=True: files of the old run must not mix with the new one."""
    for f in stale:
        (run_dir / f).unlink()


def write_run_start(run_dir: Path, built: Built, run_files: dict[str, Callable[[Path], None]]) -> None:
    """The files a run writes before its first epoch: its config, tokenizers and the task's extra files."""
    from ._io import atomic_write

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.toml", _config.dumps_toml(built.resolved.data))
    atomic_write(run_dir / "tokenizers.json", json.dumps(tokenizer_states(built), indent=1))
    for name, write in run_files.items():  # e.g. the word vectors the task trained for the embeddings
        write(run_dir / name)


def write_run_end(run_dir: Path, built: Built, metrics: dict[str, Any]) -> Path:
    """The files of a finished run: the artifact, metrics.json and the model card; returns the artifact."""
    from ._io import atomic_write

    artifact = export_built(built, run_dir / "model.safetensors", metrics)
    atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    atomic_write(run_dir / "README.md", model_card(built.resolved, metrics, artifact))
    return artifact


def _metrics(trainer: Any, built: Built, summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Train summary, the best epoch's val metrics and the test metrics (writing the test outputs, if any)."""
    from .evaluation import evaluate

    metrics: dict[str, Any] = {"train": summary}
    best = [r for r in trainer.history if r["epoch"] == trainer.state.best_epoch]
    if best:
        metrics["val"] = {k.removeprefix("val_"): v for k, v in best[0].items() if k.startswith("val_")}
    if "test" in built.splits:
        tcfg = built.resolved.configs["train"]
        bs = tcfg.eval_batch_size or tcfg.batch_size
        records: list[dict[str, Any]] = []
        metrics["test"] = evaluate(trainer.model, built.task, built.splits["test"], bs, trainer.device,
                                   trainer.amp_dtype, trainer.world, tcfg.pin_memory, outputs=records)
        if records and trainer.world.main:
            write_outputs(run_dir / "outputs.test.jsonl", records)
    return metrics


def _train(plan: _Plan, data_dir: str | Path | None, on_epoch: EpochCallback | None, world: Any) -> RunResult:
    from . import distributed

    run_dir = plan.run_dir
    built, trainer, run_files = _prepare(plan, data_dir, on_epoch)
    # every rank has checked what it needs; nothing above wrote a file; from here on the run folder is ours
    distributed.barrier(world)
    if world.main:
        clear_stale(run_dir, plan.stale)
        write_run_start(run_dir, built, run_files)
    summary = trainer.fit(built.splits.get("train"), built.splits.get("val"))
    metrics = _metrics(trainer, built, summary, run_dir)
    built.model = trainer.model
    artifact = run_dir / "model.safetensors"
    if world.main:
        artifact = write_run_end(run_dir, built, metrics)
    distributed.barrier(world)  # every rank returns once the artifact exists
    return RunResult(run_dir, metrics, artifact)
