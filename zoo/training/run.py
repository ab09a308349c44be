"""The training run behind ``zoo train``: the plan (checked before any file is touched), the driver, the run folder.

A run folder holds ``config.toml``, ``tokenizers.json``, the per-epoch ``metrics.jsonl``,
``checkpoint.safetensors`` and ``loss.png``, and at the end the artifact ``model.safetensors``,
``metrics.json``, the model card ``README.md`` and, for tasks with per-example outputs,
``outputs.test.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import config as _config
from zoo.errors import ConfigError, RunDirError, ZooError, first_line
from zoo.build.pieces import Built
from zoo.build.prepare import build_training
from zoo.inference.load import write_outputs
from zoo.registry.resolve import Resolved, resolve, resolve_entry
from zoo.store.rundir import (
    ARTIFACT,
    CHECKPOINT,
    RunLock,
    Staging,
    check_replacing,
    clean_stale,
    status,
    write_run_end,
    write_run_start,
)
from zoo.training.tracking import Tracker, Tracking, logger_classes

log = logging.getLogger(__name__)

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
    config_text: str  # config.toml as the run writes it; the model card shows the same text
    run_dir: Path
    replace: bool  # an earlier (or incomplete) run in run_dir is replaced once the new one is complete
    resume: bool
    force: bool = False


def check_out_dir(out: Path, force: bool) -> bool:
    """Whether a new run in ``out`` replaces one there; refuses a finished run unless ``force``."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"out={out} is a file, not a folder")
    state, _ = status(out)
    if state == "run" and not force:
        raise RunDirError(
            f"{out} already holds a run; use resume={out} to continue it, force=True to replace it, or another out="
        )
    check_replacing(out, state, force)  # zoo's own folder, or force; never the current folder
    if state == "incomplete":
        log.warning("%s holds a run that stopped before its first checkpoint; the new run replaces it", out)
    return state != "none"


def _check_resumable(run_dir: Path) -> None:
    """``run_dir`` holds a run with a checkpoint to continue from."""
    cfg_path = run_dir / "config.toml"
    state, _ = status(run_dir)
    if state == "incomplete" or (state == "run" and not (run_dir / CHECKPOINT).is_file()):
        entry = _entry_of(cfg_path)
        raise RunDirError(f"{run_dir}: the run stopped before its first checkpoint, so there is nothing to resume; "
                          f"start it again with entry={entry} out={run_dir} (that replaces the incomplete run)")
    if not cfg_path.is_file() or not (run_dir / CHECKPOINT).is_file():
        raise RunDirError(f"{run_dir}: nothing to resume (needs config.toml and {CHECKPOINT} from an earlier run)")


def _resume_config(run_dir: Path, overrides: dict[str, Any]) -> Resolved:
    cfg_path = run_dir / "config.toml"
    _check_resumable(run_dir)
    # before the first epoch (an imported model's run) nothing was trained on yet: the data may still be chosen
    free = {"train", "dataset"} if _epochs_done(run_dir / CHECKPOINT) == 0 else {"train"}
    fixed = sorted(set(overrides) - free)
    if fixed:
        raise ConfigError(f"resume={run_dir}: only {' and '.join(f'{k}.*' for k in sorted(free))} settings may "
                          f"change, not '{fixed[0]}'")
    return resolve(_config.merge(_config.load_toml(cfg_path), overrides))


def _epochs_done(path: Path) -> int | None:
    """Epochs completed according to a checkpoint's header (its tensors are not read); None if unknown."""
    from zoo.store.artifact import read_header

    try:
        skeleton = json.loads(read_header(path)[1]["state"])
        trainer = dict((k, v) for k, v in skeleton["__dict__"])["trainer"]
        return int(dict((k, v) for k, v in trainer["__dict__"])["epoch"])
    except (ZooError, OSError, ValueError, KeyError, TypeError):
        return None


def _entry_of(cfg_path: Path) -> str:
    """The entry named in a run's config.toml, or ENTRY when it cannot be read."""
    try:
        return str(_config.load_toml(cfg_path).get("entry", "")).split(":", 1)[-1] or "ENTRY"
    except ZooError:
        return "ENTRY"


def plan_train(entry: str | None, overrides: dict[str, Any], out: str | Path | None, resume: str | Path | None,
               force: bool) -> _Plan:
    """Resolve the config and check the run folder and device; touches no file."""
    from zoo.runtime.device import resolve_device

    replace = False
    if resume is not None:
        run_dir = _folder(resume)
        resolved = _resume_config(run_dir, overrides)
    else:
        if entry is None:
            raise ConfigError("name an entry to train (see 'zoo list')")
        resolved = resolve_entry(entry, overrides)
        run_dir = _folder(out) if out is not None else Path("runs") / resolved.entry.split(":", 1)[-1]
        replace = check_out_dir(run_dir, force)
    resolve_device(resolved.configs["train"].device)
    logger_classes(resolved.configs["train"].loggers)  # an unknown logger or a missing extra: before any file
    return _Plan(resolved, _config.dumps_toml(resolved.data), run_dir, replace, resume is not None, force)


def _folder(path: str | Path) -> Path:
    """``path``, absolute where it has no name of its own (``.``, ``..``): the lock and staging go beside it."""
    return Path(os.path.abspath(path)) if Path(path).name in ("", "..") else Path(path)


def check_train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
                resume: str | Path | None = None, force: bool = False, nproc: int = 1) -> Path:
    """Check what a run in ``nproc`` processes can check before it starts them; return the run folder.

    ``nproc`` may not exceed the GPUs (CUDA) or CPU cores of this machine.
    """
    from zoo.runtime.device import resolve_device
    from zoo.runtime.distributed import check_nproc

    plan = plan_train(entry, overrides or {}, out, resume, force)
    check_nproc(nproc, resolve_device(plan.resolved.configs["train"].device))
    RunLock(plan.run_dir).acquire().release()  # fail now, not after starting processes, when it is in use
    return plan.run_dir


def train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
          resume: str | Path | None = None, force: bool = False, data_dir: str | Path | None = None,
          on_epoch: EpochCallback | None = None, tracking: Tracking | None = None) -> RunResult:
    """Train ``entry`` (or continue the run in ``resume``); write the run folder and its artifact.

    Everything that can be wrong (config, device, data, checkpoint) is checked before
    the run folder is touched, so a failed command never damages an earlier run.

    Started by torchrun (``WORLD_SIZE`` > 1), every process calls this: they join one
    process group, train data-parallel and rank 0 writes the run folder; ``on_epoch``
    is called on rank 0 only, as are the trackers of ``train.loggers`` (``tracking``: a parent
    run, tags, how an exception names the run's end; zoo tune gives it for its trials).
    """
    from zoo.errors import RankLostError
    from zoo.runtime import distributed

    plan = plan_train(entry, overrides or {}, out, resume, force)
    tcfg = plan.resolved.configs["train"]
    started = distributed.start(tcfg.device, tcfg.dist_timeout)
    world = distributed.current()
    lock = RunLock(plan.run_dir)
    try:
        if world.main:  # one writer per run folder; rank 0 writes for the whole run
            _claim(plan, lock.acquire())
        return _train(plan, data_dir, on_epoch, world, tracking)
    except Exception as exc:
        if world.size > 1 and distributed.peer_lost(exc):
            raise RankLostError(f"rank {world.rank}: another process of this run went away ({first_line(exc)}); "
                                "stopping too") from exc
        raise
    finally:
        lock.release()
        distributed.stop(started)


def _claim(plan: _Plan, lock: RunLock) -> None:
    """With the lock held: clean what interrupted runs left, and check again what the plan found
    (another command may have finished a run here in the meantime) and that the folder is writable."""
    clean_stale(plan.run_dir)
    if plan.resume:
        _check_resumable(plan.run_dir)
    else:
        plan.replace = check_out_dir(plan.run_dir, plan.force)
    target = plan.run_dir if plan.run_dir.exists() else plan.run_dir.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise RunDirError(f"{target}: cannot write there (permission denied); choose another out=")


def _read_tokenizer_states(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "tokenizers.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{run_dir / 'tokenizers.json'}: cannot read it ({exc}); the run cannot be resumed") from exc


def _prepare(plan: _Plan, data_dir: str | Path | None, on_epoch: EpochCallback | None,
             write_dir: Path, on_step: Any = None) -> tuple[Built, Any, dict]:
    """The built pieces, the model and its Trainer (restored from the checkpoint on resume; writing
    into ``write_dir``), and the extra files the task wants in the run folder; nothing is written."""
    from zoo.sdk import embeddings as prepared_vectors
    from zoo.training.trainer import Trainer

    resolved, run_dir = plan.resolved, plan.run_dir
    tcfg = resolved.configs["train"]
    built = build_training(resolved, data_dir, _read_tokenizer_states(run_dir) if plan.resume else None)
    with prepared_vectors.enabled(tcfg.cache):  # gensim vectors trained once per corpus and settings
        run_files = (built.task.init_model(built.model, built.splits.get("train")) or {}) if not plan.resume else {}
    trainer = Trainer(built.model, built.task, tcfg, resolved.configs["optim"], run_dir=write_dir,
                      on_epoch=on_epoch, on_step=on_step)
    if plan.resume:
        _restore(trainer, run_dir / CHECKPOINT)
        log.info("resuming %s after epoch %d", run_dir, trainer.state.epoch)
    return built, trainer, run_files


def _restore(trainer: Any, path: Path) -> None:
    """Continue from a checkpoint; anything in it that does not fit is one error naming the file."""
    from zoo.store.checkpoint import load_checkpoint

    try:
        trainer.restore(load_checkpoint(path))
    except ZooError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        what = f"missing entry {exc}" if isinstance(exc, KeyError) else first_line(exc)
        raise RunDirError(f"{path}: cannot resume from it ({what}); it does not fit the run's config.toml "
                          "(was either file edited or replaced?)") from exc


def _metrics(trainer: Any, built: Built, summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Train summary, the best epoch's val metrics and the test metrics (writing the test outputs, if any)."""
    from zoo.training.evaluation import evaluate

    metrics: dict[str, Any] = {"train": summary}
    best = [r for r in trainer.history if r["epoch"] == trainer.state.best_epoch]
    if best:
        metrics["val"] = {k.removeprefix("val_"): v for k, v in best[0].items() if k.startswith("val_")}
    if "test" in built.splits:
        tcfg = built.resolved.configs["train"]
        bs = tcfg.eval_batch
        records: list[dict[str, Any]] = []
        metrics["test"] = evaluate(trainer.model, built.task, built.splits["test"], bs, trainer.device,
                                   trainer.amp_dtype, trainer.world, tcfg.pin_memory, outputs=records)
        if records and trainer.world.main:
            write_outputs(run_dir / "outputs.test.jsonl", records)
    return metrics


def _train(plan: _Plan, data_dir: str | Path | None, on_epoch: EpochCallback | None, world: Any,
           tracking: Tracking | None = None) -> RunResult:
    from zoo.runtime import distributed
    from zoo.runtime.device import torch_threads

    tcfg = plan.resolved.configs["train"]
    tracker = Tracker(tcfg.loggers if world.main else (), tracking)  # rank 0 alone reports
    staging = Staging(plan.run_dir) if plan.replace and world.main else None
    write_dir = staging.path if staging is not None else plan.run_dir
    built, trainer, run_files = _prepare(plan, data_dir, tracker.on_epoch(on_epoch), write_dir,
                                         tracker.on_step if tracker else None)
    # every rank has checked what it needs; nothing above wrote a file; from here on the run folder is ours
    distributed.barrier(world)
    try:
        if world.main:
            if staging is not None:
                staging.create()
            write_run_start(write_dir, plan.config_text, built.states, run_files)
            if plan.resume:  # the checkpoint's history is the truth: epochs after it were never committed
                trainer.rewrite_metrics()
            tracker.start(write_dir, plan.run_dir.name, plan.resolved.entry, plan.resolved.data, plan.resume,
                          trainer.state.step)
        with torch_threads(built.resolved.configs["train"].threads):  # the test split too, as before
            summary = trainer.fit(built.splits.get("train"), built.splits.get("val"))
            metrics = _metrics(trainer, built, summary, write_dir)
        built.model = trainer.model
        if world.main:
            write_run_end(write_dir, built, metrics, plan.config_text)
            if staging is not None:  # the new run is complete: only now does it replace the earlier one
                staging.commit()
            tracker.end(metrics, plan.run_dir, tcfg.log_artifact)
    except BaseException as exc:
        tracker.close(tracker.status_of(exc))
        if staging is not None:
            staging.abort()  # the earlier run stays whole
        raise
    distributed.barrier(world)  # every rank returns once the artifact exists
    return RunResult(plan.run_dir, metrics, plan.run_dir / ARTIFACT)
