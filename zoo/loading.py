"""Artifacts: saving a trained model with everything needed to rebuild it, loading it back, copying it."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import Built, final_split, make_model, make_task, tokenizer_states
from .card import reference, zoo_version
from .config import merge
from .errors import ArtifactError, ConfigError, RunDirError, ZooError, first_line
from .resolve import Resolved, resolve
from .rundir import ARTIFACT
from .zoo_state import default as _default_zoo, get_registry

DTYPES = ("float32", "float16", "bfloat16")


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
        """The model's outputs for ``inputs`` (see :func:`zoo.inference.predict`)."""
        from .inference import predict

        return predict(self, inputs, **options)


def artifact_path(path: str | Path) -> Path:
    """A model file, or the ``model.safetensors`` of a run folder."""
    path = Path(path)
    return path / ARTIFACT if path.is_dir() else path


def find_artifact(name: str | Path) -> Path:
    """The model file that ``name`` means: a file, a run folder, or an entry trained under ``runs/``.

    An entry name (``imdb-rnn`` or ``plugin:imdb-rnn``) that is not an existing path means
    ``runs/<short name>/model.safetensors``, where ``zoo train`` writes it.
    """
    path = Path(name)
    if path.exists() or str(name).endswith(".safetensors") or len(path.parts) > 1:
        return path / ARTIFACT if path.is_dir() else path
    short = str(name).split(":", 1)[-1]
    candidate = Path("runs") / short / ARTIFACT
    if candidate.is_file():
        return candidate
    try:
        entry = get_registry().get("entry", str(name)).id
    except ZooError:
        raise ArtifactError(f"{name}: no such model file or run folder, and no entry of that name "
                            "(see 'zoo list')") from None
    raise ArtifactError(f"{name}: entry {entry} has no trained model in {candidate.parent}; "
                        f"train it first: zoo train {short}")


def default_split(path: str | Path, *, dataset: dict[str, Any] | None = None,
                  data_dir: str | Path | None = None) -> str:
    """The split ``zoo eval`` uses for an artifact when none is named: test, or val when its dataset
    (as configured in the artifact, with the ``dataset`` overrides) has no test split."""
    from .artifact import read_metadata

    meta = read_metadata(find_artifact(path))
    try:
        return final_split(_dataset(resolve(meta["config"]), data_dir, dataset))
    except ZooError:  # the plugin is missing or the config does not resolve: loading the artifact will say so
        return "test"


def _dataset(resolved: Resolved, data_dir: str | Path | None, overrides: dict[str, Any] | None) -> Any:
    """The artifact's dataset, its config changed by ``overrides`` (other files of the same kind)."""
    from .config import as_dict, build, merge
    from .data import data_dir as _data_dir

    cls, cfg = resolved.cls("dataset"), resolved.configs["dataset"]
    if overrides:
        cfg = build(getattr(cls, "Config", type(cfg)), merge(as_dict(cfg), overrides), "dataset")
    return cls(cfg, data_dir=_data_dir(data_dir))


def export_built(built: Built, path: Path, metrics: dict[str, Any], dtype: Any = None) -> Path:
    """Save ``built.model`` with the metadata that rebuilds it (config, sizes, tokenizers, versions)."""
    from .artifact import save

    resolved = built.resolved
    mspec = resolved.specs["model"]
    info = _default_zoo.loaded.plugins.get(mspec.plugin)
    meta = {
        "zoo_version": zoo_version(),
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
        "reference": reference(resolved),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return save(path, built.model, meta, dtype=dtype)


def _resolve_artifact(path: Path, meta: dict[str, Any]) -> Resolved:
    """The artifact's config, resolved against the installed plugins, whose architecture must match."""
    try:
        resolved = resolve(meta["config"])
    except ZooError as exc:
        raise ArtifactError(f"{path}: {_missing_plugin(meta) or exc}") from exc
    cls = resolved.cls("model")
    if str(cls.arch_version) != str(meta.get("arch_version")):
        raise ArtifactError(
            f"{path}: model {meta.get('model')} architecture version {meta.get('arch_version')} does not match "
            f"the installed plugin's version {cls.arch_version}; install plugin "
            f"{meta.get('plugin')} {meta.get('plugin_version')} or retrain"
        )
    return resolved


def _missing_plugin(meta: dict[str, Any]) -> str:
    """Which plugin the artifact needs and this process lacks, with the version its header records; "" if none."""
    plugins = _default_zoo.loaded.plugins
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    names = [(key, str((config.get(key) or {}).get("name", ""))) for key in ("model", "task", "dataset")]
    names += [(f"tokenizer {role}", str((t or {}).get("name", ""))) for role, t in (config.get("tokenizer") or {}).items()
              if isinstance(t, dict)]
    for what, spec_id in names:
        plugin = spec_id.split(":", 1)[0] if ":" in spec_id else ""
        info = plugins.get(plugin)
        if not plugin or (info is not None and info.status == "ok"):
            continue
        recorded = str(meta.get("plugin_version") or "") if plugin == meta.get("plugin") else ""
        label = f"plugin {plugin} {recorded}".rstrip()
        if info is None:
            why = f"which is not installed; install the package that provides {label}, or retrain"
        elif info.status == "blocked":
            why = f"which ZOO_PLUGINS hides; add {plugin} to ZOO_PLUGINS, or unset it"
        else:
            why = f"which failed to load ({info.error}); see 'zoo plugins'"
        return f"{what} {spec_id} comes from {label}, {why}"
    return ""


def load(path: str | Path, device: str = "cpu", *, task: dict[str, Any] | None = None) -> LoadedModel:
    """Rebuild the model, tokenizers and task of an artifact; refuses incompatible versions.

    ``task`` overrides the task's config (checked as training checks it), e.g. ``{"decode": "bio"}``:
    the same weights read out another way.
    """
    from safetensors.torch import load_model

    from .artifact import check_compatible, read_metadata
    from .device import resolve_device

    path = find_artifact(path)  # a file, a run folder, or an entry trained under runs/
    meta = read_metadata(path)
    check_compatible(path, meta, zoo_version())
    if task:
        meta = {**meta, "config": merge(meta["config"], {"task": task})}
    resolved = _resolve_artifact(path, meta)
    task, toks = make_task(resolved, meta["tokenizers"])
    model = make_model(resolved, meta["sizes"])
    dev = resolve_device(device)
    try:
        load_model(model, str(path), strict=True, device=str(dev))
    except (RuntimeError, ValueError, OSError) as exc:
        raise ArtifactError(f"{path}: weights do not fit model {meta.get('model')}: {first_line(exc)}") from exc
    model.to(dev).eval()
    return LoadedModel(model, task, toks, resolved, meta, path)


def write_outputs(path: Path, records: list[dict[str, Any]]) -> None:
    """Per-example records of an evaluation (e.g. generated code), one JSON object a line, atomically."""
    from ._io import atomic_write

    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def evaluate_artifact(path: str | Path, split: str | None = None, *, device: str = "auto",
                      data_dir: str | Path | None = None, batch_size: int | None = None,
                      outputs: list[dict[str, Any]] | None = None,
                      dataset: dict[str, Any] | None = None, task: dict[str, Any] | None = None) -> dict[str, float]:
    """Metrics of an artifact on one split of its dataset (default: test, or val when it has no test).

    With ``outputs`` (a list), the task's per-example records (e.g. generated code) are appended to it.
    ``dataset`` overrides the artifact's dataset config, e.g. ``{"test_file": "other.csv"}``: the same
    model on other files of the same kind. ``task`` overrides the task's config (see :func:`load`).
    """
    from .device import autocast_dtype, resolve_device
    from .evaluation import evaluate
    from .prepared.splits import encode_split

    dev = resolve_device(device)
    lm = load(path, device=str(dev), task=task)
    source = _dataset(lm.resolved, data_dir, dataset)
    split = split or final_split(source)
    source.check_split(split)
    encoded = encode_split(lm.resolved, source, lm.task, split)  # prepared once, reused (zoo.prepared)
    tcfg = lm.resolved.configs["train"]
    bs = batch_size or tcfg.eval_batch_size or tcfg.batch_size
    return evaluate(lm.model, lm.task, encoded, bs, dev, autocast_dtype(tcfg.amp, dev), outputs=outputs)


def generate(path: str | Path, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = None, seed: int | None = None, device: str = "auto", use_cache: bool = True,
             stop_at_eos: bool = False):
    """Iterator over the text an artifact generates after ``prompt``, piece by piece (``stop_at_eos``:
    end at the first ``<eos>`` of a model trained with ``task.boundaries``)."""
    from .device import resolve_device

    lm = load(path, device=str(resolve_device(device)))
    return lm.task.generate(lm.model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            seed=seed, use_cache=use_cache, stop_at_eos=stop_at_eos)


def export(src: str | Path, out: str | Path, dtype: str | None = None, *, force: bool = False) -> Path:
    """Write a copy of an artifact (or a run folder's) to ``out``, optionally cast to float16/bfloat16.

    An existing ``out`` is replaced only with ``force``; a file of a run folder (its checkpoint,
    artifact, config...) never is.
    """
    import torch

    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype}: use float32, float16 or bfloat16")
    lm = load(Path(src))
    out = Path(out)
    if out.resolve() == lm.path.resolve():
        raise ConfigError(f"out={out} is the source file; choose another path")
    check_export_target(out, force)
    built = Built(lm.resolved, None, lm.tokenizers, lm.task, lm.model)
    cast = getattr(torch, dtype) if dtype is not None else None
    return export_built(built, out, lm.metadata.get("metrics", {}), dtype=cast)


def check_export_target(out: Path, force: bool) -> None:
    """Refuse to overwrite a run's own files, or any existing file without ``force``."""
    from .rundir import is_run_file, status

    if out.is_dir():
        raise RunDirError(f"out={out} is a folder; give the path of the .safetensors file to write")
    if is_run_file(out.name) and status(out.parent)[0] != "none":
        raise RunDirError(f"out={out} is {out.name} of the run in {out.parent}, which export never overwrites; "
                          "choose another path")
    if out.exists() and not force:
        raise RunDirError(f"out={out} already exists; choose another path, or force=True to overwrite it")
