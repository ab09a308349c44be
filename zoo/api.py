"""The programmatic API behind ``import zoo`` and the CLI.

Light at import: torch and plugin code load only when a model is built,
trained, evaluated or loaded.
"""

from __future__ import annotations


import datetime as _dt
import json
import logging

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as _config
from . import plugins as _plugins
from .errors import ArtifactError, ConfigError, RunDirError, ZooError
from .registry import Registry, Spec

log = logging.getLogger(__name__)

SECTIONS = ("model", "task", "dataset", "tokenizer", "train", "optim")
COMPONENTS = ("model", "task", "dataset")
RUN_FILES = ("config.toml", "tokenizers.json", "metrics.jsonl", "checkpoint.safetensors", "loss.png",
             "model.safetensors", "README.md", "metrics.json", "outputs.test.jsonl")

_loaded: _plugins.Loaded | None = None


# --- plugins and names ----------------------------------------------------------------------------

def plugin_state() -> _plugins.Loaded:
    """The plugin manager and registry of this process, loaded on first use."""
    global _loaded
    if _loaded is None:
        _loaded = _plugins.load()
    return _loaded


def reset(loaded: _plugins.Loaded | None = None) -> None:
    """Forget the loaded plugins (or install ``loaded``); the next call reloads them."""
    global _loaded
    _loaded = loaded


def registry() -> Registry:
    return plugin_state().registry


def _ids(kind: str, pattern: str) -> list[str]:
    return [s.id for s in registry().list(kind, pattern)]


def list_entries(pattern: str = "*") -> list[str]:
    """Canonical ids of zoo entries matching the fnmatch ``pattern``."""
    return _ids("entry", pattern)


def list_models(pattern: str = "*") -> list[str]:
    """Canonical ids of model architectures matching ``pattern``, e.g. ``list_models("gru*")``."""
    return _ids("model", pattern)


def list_tokenizers(pattern: str = "*") -> list[str]:
    return _ids("tokenizer", pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    return _ids("dataset", pattern)


def list_tasks(pattern: str = "*") -> list[str]:
    return _ids("task", pattern)


def get_model(name: str, *, config: dict[str, Any] | None = None, **sizes: int):
    """Build model ``name`` with ``config`` overrides and the task sizes (``vocab_size=...``)."""
    spec = registry().get("model", name)
    cls = spec.load()
    cfg = _config.build(cls.Config, config, "model")
    return cls(cfg, **sizes)


# --- config resolution --------------------------------------------------------------------------

@dataclass
class Resolved:
    """A fully resolved run config and the component classes it names."""

    data: dict[str, Any]
    specs: dict[str, Spec]  # "model", "task", "dataset", "tokenizer.ROLE"
    configs: dict[str, Any]  # same keys plus "train" and "optim"

    @property
    def entry(self) -> str:
        return self.data.get("entry", "")

    def cls(self, key: str) -> Any:
        return self.specs[key].load()


def entry_config(name: str) -> tuple[Spec, dict[str, Any]]:
    """The entry's raw config: component names plus its config overrides."""
    spec = registry().get("entry", name)
    e = spec.data
    tok = e.get("tokenizer", {})
    raw: dict[str, Any] = {
        "entry": spec.id,
        "model": {"name": e["model"]}, "task": {"name": e["task"]}, "dataset": {"name": e["dataset"]},
        "tokenizer": {"name": tok} if isinstance(tok, str) else {r: {"name": n} for r, n in tok.items()},
        "train": {}, "optim": {},
    }
    return spec, _config.merge(raw, e.get("config", {}))


def resolve(raw: dict[str, Any]) -> Resolved:
    """Validate every section of ``raw`` against the named components' config dataclasses."""
    from .training import OptimConfig, TrainConfig

    unknown = sorted(set(raw) - set(SECTIONS) - {"entry"})
    if unknown:
        raise ConfigError(f"unknown config section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    reg = registry()
    data: dict[str, Any] = {"entry": raw.get("entry", "")}
    specs: dict[str, Spec] = {}
    configs: dict[str, Any] = {}

    def component(key: str, kind: str, section: dict[str, Any], where: str) -> None:
        section = dict(section)
        if "name" not in section:
            raise ConfigError(f"[{where}] needs a 'name' (the {kind} to use)")
        spec = reg.get(kind, str(section.pop("name")))
        cls = spec.load()
        cfg = _config.build(getattr(cls, "Config", _config.EmptyConfig), section, where)
        specs[key], configs[key] = spec, cfg
        data_node = {"name": spec.id, **_config.as_dict(cfg)}
        if "." in key:
            data.setdefault("tokenizer", {})[key.split(".", 1)[1]] = data_node
        else:
            data[key] = data_node

    for key in COMPONENTS:
        component(key, key, _section(raw, key), key)
    roles = specs["task"].load().tokenizer_roles
    tok = _section(raw, "tokenizer")
    if "name" in tok and not isinstance(tok["name"], dict):  # one tokenizer kind for every role
        tok = {role: dict(tok) for role in roles}
    extra = sorted(set(tok) - set(roles))
    if extra:
        raise ConfigError(f"unknown tokenizer role 'tokenizer.{extra[0]}'; the task uses roles: {', '.join(roles)}")
    for role in roles:
        if role not in tok:
            raise ConfigError(f"missing [tokenizer.{role}]: the task needs a tokenizer for role '{role}'")
        component(f"tokenizer.{role}", "tokenizer", tok[role], f"tokenizer.{role}")
    for key, cls in (("train", TrainConfig), ("optim", OptimConfig)):
        configs[key] = _config.build(cls, _section(raw, key), key)
        data[key] = _config.as_dict(configs[key])
    return Resolved(data, specs, configs)


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a section (table), got {value!r}")
    return value


def resolve_entry(name: str, overrides: dict[str, Any] | None = None) -> Resolved:
    _, raw = entry_config(name)
    return resolve(_config.merge(raw, overrides or {}))


# --- building the pieces of a run ---------------------------------------------------------------

@dataclass
class Built:
    resolved: Resolved
    dataset: Any
    tokenizers: dict[str, Any]
    task: Any
    model: Any = None
    splits: dict[str, Any] = field(default_factory=dict)  # encoded splits


def _build(resolved: Resolved, data_dir: str | Path | None, tokenizer_states: dict[str, Any] | None,
           splits: tuple[str, ...]) -> Built:
    from .data import data_dir as _data_dir

    dataset = resolved.cls("dataset")(resolved.configs["dataset"], data_dir=_data_dir(data_dir))
    task_cls = resolved.cls("task")
    toks = {}
    for role in task_cls.tokenizer_roles:
        key = f"tokenizer.{role}"
        toks[role] = resolved.cls(key)(resolved.configs[key])
        if tokenizer_states is not None:
            toks[role].set_state(tokenizer_states[role]["state"])
    task = task_cls(resolved.configs["task"], toks)
    built = Built(resolved, dataset, toks, task)
    examples = {s: dataset.load(s) for s in splits if s in dataset.splits}
    if tokenizer_states is None:
        if "train" not in examples:
            raise ZooError(f"dataset {resolved.specs['dataset'].id} has no 'train' split to fit tokenizers on")
        task.fit_tokenizers(examples["train"])
    built.splits = {s: task.encode(ex) for s, ex in examples.items()}
    return built


def final_split(dataset: Any) -> str:
    """The split results are reported on: test, or val for datasets without one (e.g. nanoGPT's)."""
    return "test" if "test" in dataset.splits else "val"


def artifact_path(path: str | Path) -> Path:
    """A model file, or the ``model.safetensors`` of a run folder."""
    path = Path(path)
    return path / "model.safetensors" if path.is_dir() else path


def default_split(path: str | Path) -> str:
    """The split ``zoo eval`` uses for an artifact when none is named (reads only its header)."""
    from .artifact import read_metadata

    meta = read_metadata(artifact_path(path))
    try:
        return final_split(registry().get("dataset", str(meta.get("dataset", ""))).load())
    except ZooError:  # the plugin is missing: loading the artifact will say so
        return "test"


def tokenizer_states(built: Built) -> dict[str, Any]:
    return {role: {"name": built.resolved.specs[f"tokenizer.{role}"].id, "state": tok.get_state()}
            for role, tok in built.tokenizers.items()}


def _seed(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)


# --- train ----------------------------------------------------------------------------------------

@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    artifact: Path


def _check_out_dir(out: Path, force: bool) -> list[str]:
    """The run files already in ``out``; refuses them unless ``force``."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder")
    present = [f for f in RUN_FILES if (out / f).exists()]
    if present and not force:
        raise RunDirError(
            f"{out} already holds a run ({', '.join(present)}); use --resume {out} to continue it, "
            "--force to replace it, or another --out"
        )
    return present


@dataclass
class _Plan:
    """What a train command will do, found before any file is touched."""

    resolved: Resolved
    run_dir: Path
    stale: list[str]  # files of an earlier run that --force replaces
    resume: bool


def _plan_train(entry: str | None, overrides: dict[str, Any], out: str | Path | None, resume: str | Path | None,
                force: bool) -> _Plan:
    from .training import CHECKPOINT, resolve_device

    stale: list[str] = []
    if resume is not None:
        run_dir = Path(resume)
        cfg_path = run_dir / "config.toml"
        if not cfg_path.is_file() or not (run_dir / CHECKPOINT).is_file():
            raise RunDirError(f"{run_dir}: nothing to resume (needs config.toml and {CHECKPOINT} from an earlier run)")
        fixed = sorted(set(overrides) - {"train"})
        if fixed:
            raise ConfigError(f"--resume: only train.* settings may change, not '{fixed[0]}'")
        resolved = resolve(_config.merge(_config.load_toml(cfg_path), overrides))
    else:
        if entry is None:
            raise ConfigError("name an entry to train (see 'zoo list')")
        resolved = resolve_entry(entry, overrides)
        run_dir = Path(out) if out is not None else Path("runs") / resolved.entry.split(":", 1)[-1]
        stale = _check_out_dir(run_dir, force)
    resolve_device(resolved.configs["train"].device)
    return _Plan(resolved, run_dir, stale, resume is not None)


def check_train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
                resume: str | Path | None = None, force: bool = False, nproc: int = 1) -> Path:
    """Check what ``zoo train --nproc`` can check before it starts processes; return the run folder.

    ``nproc`` may not exceed the GPUs (CUDA) or CPU cores of this machine.
    """
    from .distributed import check_nproc
    from .training import resolve_device

    plan = _plan_train(entry, overrides or {}, out, resume, force)
    check_nproc(nproc, resolve_device(plan.resolved.configs["train"].device))
    return plan.run_dir


def train(entry: str | None = None, overrides: dict[str, Any] | None = None, *, out: str | Path | None = None,
          resume: str | Path | None = None, force: bool = False, data_dir: str | Path | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Train ``entry`` (or continue the run in ``resume``); write the run folder and its artifact.

    Everything that can be wrong (config, device, data, checkpoint) is checked before
    the run folder is touched, so a failed command never damages an earlier run.

    Started by torchrun (``WORLD_SIZE`` > 1), every process calls this: they join one
    process group, train data-parallel and rank 0 writes the run folder; ``on_epoch``
    is called on rank 0 only.
    """
    from . import distributed
    from .errors import RankLostError

    plan = _plan_train(entry, overrides or {}, out, resume, force)
    tcfg = plan.resolved.configs["train"]
    started = distributed.start(tcfg.device, tcfg.dist_timeout)
    world = distributed.current()
    try:
        return _train(plan, data_dir, on_epoch, world)
    except Exception as exc:
        if world.size > 1 and distributed.peer_lost(exc):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RankLostError(f"rank {world.rank}: another process of this run went away ({first}); "
                                "stopping too") from exc
        raise
    finally:
        distributed.stop(started)


def _train(plan: _Plan, data_dir: str | Path | None, on_epoch: Callable[[dict[str, Any]], None] | None,
           world: Any) -> RunResult:
    from . import distributed
    from ._io import atomic_write
    from .training import CHECKPOINT, Trainer, evaluate, load_checkpoint

    resolved, run_dir = plan.resolved, plan.run_dir
    tcfg = resolved.configs["train"]
    _seed(tcfg.seed)
    states = None
    if plan.resume:
        try:
            states = json.loads((run_dir / "tokenizers.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{run_dir / 'tokenizers.json'}: cannot read it ({exc}); the run cannot be resumed") from exc
    built = _build(resolved, data_dir, states, ("train", "val", "test"))
    _seed(tcfg.seed)
    model = resolved.cls("model")(resolved.configs["model"], **built.task.model_sizes())
    run_files = (built.task.init_model(model, built.splits.get("train")) or {}) if not plan.resume else {}
    trainer = Trainer(model, built.task, tcfg, resolved.configs["optim"], run_dir=run_dir, on_epoch=on_epoch)
    if plan.resume:
        trainer.restore(load_checkpoint(run_dir / CHECKPOINT))
        log.info("resuming %s after epoch %d", run_dir, trainer.state.epoch)
    # every rank has checked what it needs; nothing above wrote a file; from here on the run folder is ours
    distributed.barrier(world)
    if world.main:
        for f in plan.stale:  # --force: files of the old run must not mix with the new one
            (run_dir / f).unlink()
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.toml", _config.dumps_toml(resolved.data))
        atomic_write(run_dir / "tokenizers.json", json.dumps(tokenizer_states(built), indent=1))
        for name, write in run_files.items():  # e.g. the word vectors the task trained for the embeddings
            write(run_dir / name)
    summary = trainer.fit(built.splits.get("train"), built.splits.get("val"))
    metrics: dict[str, Any] = {"train": summary}
    best = [r for r in trainer.history if r["epoch"] == trainer.state.best_epoch]
    if best:
        metrics["val"] = {k[4:]: v for k, v in best[0].items() if k.startswith("val_")}
    if "test" in built.splits:
        bs = tcfg.eval_batch_size or tcfg.batch_size
        records: list[dict[str, Any]] = []
        metrics["test"] = evaluate(trainer.model, built.task, built.splits["test"], bs, trainer.device,
                                   trainer.amp_dtype, trainer.world, tcfg.pin_memory, outputs=records)
        if records and world.main:
            write_outputs(run_dir / "outputs.test.jsonl", records)
    built.model = trainer.model
    artifact = run_dir / "model.safetensors"
    if world.main:
        artifact = export_built(built, artifact, metrics)
        atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
        atomic_write(run_dir / "README.md", model_card(resolved, metrics, artifact))
    distributed.barrier(world)  # every rank returns once the artifact exists
    return RunResult(run_dir, metrics, artifact)


def _zoo_version() -> str:
    from . import __version__

    return __version__


def _reference(resolved: Resolved) -> dict[str, Any]:
    entry = resolved.entry
    if not entry:
        return {}
    try:
        return dict(registry().get("entry", entry).data.get("reference", {}))
    except ZooError:
        return {}


def export_built(built: Built, path: Path, metrics: dict[str, Any], dtype: Any = None) -> Path:
    from .artifact import save

    resolved = built.resolved
    mspec = resolved.specs["model"]
    info = plugin_state().plugins.get(mspec.plugin)
    meta = {
        "zoo_version": _zoo_version(),
        "entry": resolved.entry,
        "model": mspec.id,
        "plugin": mspec.plugin,
        "plugin_version": info.version if info else "",
        "arch_version": str(mspec.load().arch_version),
        "task": resolved.specs["task"].id,
        "dataset": resolved.specs["dataset"].id,
        "config": resolved.data,
        "sizes": built.task.model_sizes(),
        "tokenizers": tokenizer_states(built),
        "metrics": metrics,
        "reference": _reference(resolved),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return save(path, built.model, meta, dtype=dtype)


def model_card(resolved: Resolved, metrics: dict[str, Any], artifact: Path) -> str:
    ref = _reference(resolved)
    lines = [f"# {resolved.entry or 'zoo run'}", ""]
    if resolved.entry:
        summary = registry().get("entry", resolved.entry).summary
        if summary:
            lines += [summary, ""]
    lines += ["| component | id |", "|---|---|"]
    for key, spec in resolved.specs.items():
        lines.append(f"| {key} | `{spec.id}` |")
    lines += ["", "## Results", "", "| split | metric | value |", "|---|---|---|"]
    for split in ("val", "test"):
        for k, v in metrics.get(split, {}).items():
            lines.append(f"| {split} | {k} | {v:.6g} |")
    t = metrics.get("train", {})
    lines += ["", f"Trained {t.get('epochs')} epochs / {t.get('steps')} steps in {t.get('train_time', 0):.1f} s "
              f"({t.get('stopped')}).", ""]
    if ref:
        lines += [f"Reference: {ref.get('metric')} = {ref.get('value')} ({ref.get('source', 'no source given')}).", ""]
    lines += [f"Artifact: `{artifact.name}` (zoo {_zoo_version()}). Load it with `zoo.load(\"{artifact.name}\")`,",
              f"evaluate it with `zoo eval {artifact.name}`.", "", "## Config", "", "```toml",
              _config.dumps_toml(resolved.data).rstrip(), "```", ""]
    return "\n".join(lines)


# --- load / evaluate / export ---------------------------------------------------------------------

@dataclass
class LoadedModel:
    model: Any
    task: Any
    tokenizers: dict[str, Any]
    resolved: Resolved
    metadata: dict[str, Any]
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.resolved.data

    def predict(self, inputs: Any, **options: Any) -> Any:
        """Records for raw inputs: one input -> one record, a list -> a list (see :mod:`zoo.inference`)."""
        from .inference import predict

        return predict(self, inputs, **options)


def load(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the model, tokenizers and task of an artifact (a file, a run folder or a trained entry's
    name); refuses incompatible versions."""
    from safetensors.torch import load_model

    from .artifact import check_compatible, read_metadata
    from .inference import find_artifact
    from .training import resolve_device

    path = find_artifact(path)  # a file, a run folder, or an entry trained under runs/
    meta = read_metadata(path)
    check_compatible(path, meta, _zoo_version())
    try:
        resolved = resolve(meta["config"])
    except ZooError as exc:
        raise ArtifactError(f"{path}: {exc} (is the plugin that made this model installed?)") from exc
    cls = resolved.cls("model")
    if str(cls.arch_version) != str(meta.get("arch_version")):
        raise ArtifactError(
            f"{path}: model {meta.get('model')} architecture version {meta.get('arch_version')} does not match "
            f"the installed plugin's version {cls.arch_version}; install plugin "
            f"{meta.get('plugin')} {meta.get('plugin_version')} or retrain"
        )
    task_cls = resolved.cls("task")
    toks = {}
    for role in task_cls.tokenizer_roles:
        key = f"tokenizer.{role}"
        toks[role] = resolved.cls(key)(resolved.configs[key])
        toks[role].set_state(meta["tokenizers"][role]["state"])
    task = task_cls(resolved.configs["task"], toks)
    model = cls(resolved.configs["model"], **meta["sizes"])
    dev = resolve_device(device)
    try:
        load_model(model, str(path), strict=True, device=str(dev))
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: weights do not fit model {meta.get('model')}: {first}") from exc
    model.to(dev).eval()
    return LoadedModel(model, task, toks, resolved, meta, path)


def write_outputs(path: Path, records: list[dict[str, Any]]) -> None:
    """Per-example records of an evaluation (e.g. generated code), one JSON object a line, atomically."""
    from ._io import atomic_write

    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def evaluate(path: str | Path, split: str | None = None, *, device: str = "auto",
             data_dir: str | Path | None = None, batch_size: int | None = None,
             outputs: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Metrics of an artifact on one split of its dataset (default: test, or val when it has no test).

    With ``outputs`` (a list), the task's per-example records (e.g. generated code) are appended to it.
    """
    from .training import autocast_dtype, evaluate as _evaluate, resolve_device

    dev = resolve_device(device)
    lm = load(path, device=str(dev))
    dataset = lm.resolved.cls("dataset")(lm.resolved.configs["dataset"], data_dir=_data_dir(data_dir))
    split = split or final_split(dataset)
    dataset.check_split(split)
    encoded = lm.task.encode(dataset.load(split))
    tcfg = lm.resolved.configs["train"]
    bs = batch_size or tcfg.eval_batch_size or tcfg.batch_size
    return _evaluate(lm.model, lm.task, encoded, bs, dev, autocast_dtype(tcfg.amp, dev), outputs=outputs)


def generate(path: str | Path, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = None, seed: int | None = None, device: str = "auto", use_cache: bool = True):
    """Iterator over the text an artifact generates after ``prompt``, piece by piece."""
    from .training import resolve_device

    lm = load(path, device=str(resolve_device(device)))
    return lm.task.generate(lm.model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            seed=seed, use_cache=use_cache)


def _data_dir(value: str | Path | None) -> Path | None:
    from .data import data_dir

    return data_dir(value)


def export(src: str | Path, out: str | Path, dtype: str | None = None) -> Path:
    """Write a copy of an artifact (or a run folder's) to ``out``, optionally cast to float16/bfloat16."""
    import torch

    dtypes = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise ConfigError(f"--dtype {dtype}: use float32, float16 or bfloat16")
    src_path = Path(src)
    lm = load(src_path)
    out = Path(out)
    if out.resolve() == lm.path.resolve():
        raise ConfigError(f"--out {out} is the source file; choose another path")
    built = Built(lm.resolved, None, lm.tokenizers, lm.task, lm.model)
    meta_metrics = lm.metadata.get("metrics", {})
    return export_built(built, out, meta_metrics, dtype=dtypes[dtype])


