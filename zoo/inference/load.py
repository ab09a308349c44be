"""Artifacts: saving a trained model with everything needed to rebuild it, loading it back, copying it."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.build.pieces import Built, final_split, make_model, make_task
from zoo.config import merge
from zoo.errors import ArtifactError, ConfigError, RunDirError, ZooError, first_line
from zoo.registry.discovery import default as _default_zoo
from zoo.registry.discovery import get_registry
from zoo.registry.resolve import Resolved, resolve
from zoo.store.card import zoo_version
from zoo.store.rundir import ARTIFACT

log = logging.getLogger(__name__)
DTYPES = ("float32", "float16", "bfloat16", "int8")  # int8: see zoo.inference.int8


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
        """The model's outputs for ``inputs`` (see :func:`zoo.inference.predict.predict`)."""
        from zoo.inference.predict import predict

        return predict(self, inputs, **options)


def artifact_path(path: str | Path) -> Path:
    """A model file, or the ``model.safetensors`` of a run folder (a URL: its cached copy)."""
    if isinstance(path, str) and "://" in path:
        return find_artifact(path)
    path = Path(path)
    return path / ARTIFACT if path.is_dir() else path


def find_artifact(name: str | Path, *, pretrained: bool = False) -> Path:
    """The model file that ``name`` means: a URL, a file, a run folder, an entry trained under ``runs/``,
    or a model installed with its wheel (``zoo package``).

    A URL (``https://``, ``http://``, ``file://``, ``s3://``; ``#sha256=HEX`` pins it) is fetched into the
    cache (:mod:`zoo.store.fetch`). An entry name (``imdb-rnn`` or ``plugin:imdb-rnn``) that is not an
    existing path means ``runs/<short name>/model.safetensors``, where ``zoo train`` writes it; with
    ``pretrained``, the weights the entry publishes (its ``weights`` table) instead.
    """
    from zoo.sdk.files import is_url
    from zoo.store import remote as hub

    if is_url(str(name)):
        return hub.fetch_artifact(str(name))
    if pretrained:
        return hub.entry_weights(str(name))
    path = Path(name)
    if path.exists() or str(name).endswith(".safetensors") or len(path.parts) > 1:
        return path / ARTIFACT if path.is_dir() else path
    short = str(name).split(":", 1)[-1]
    candidate = Path("runs") / short / ARTIFACT
    if candidate.is_file():
        return candidate
    installed = hub.packaged(str(name))
    if installed is not None:
        return installed
    try:
        entry = get_registry().get("entry", str(name)).id
    except ZooError:
        raise ArtifactError(f"{name}: no such model file, URL, run folder or packaged model, and no entry of "
                            "that name (see 'zoo list')") from None
    hint = " or load its published weights (pretrained=True)" if hub.has_weights(str(name)) else ""
    raise ArtifactError(f"{name}: entry {entry} has no trained model in {candidate.parent}; "
                        f"train it first: zoo train {short}{hint}")


def default_split(path: str | Path, *, dataset: dict[str, Any] | None = None,
                  data_dir: str | Path | None = None) -> str:
    """The split ``zoo eval`` uses for an artifact when none is named: test, or val when its dataset
    (as configured in the artifact, with the ``dataset`` overrides) has no test split."""
    from zoo.store.artifact import read_metadata

    meta = read_metadata(find_artifact(path))
    try:
        return final_split(dataset_of(resolve(meta["config"]), data_dir, dataset))
    except ZooError:  # the plugin is missing or the config does not resolve: loading the artifact will say so
        return "test"


def dataset_of(resolved: Resolved, data_dir: str | Path | None, overrides: dict[str, Any] | None) -> Any:
    """The artifact's dataset, its config changed by ``overrides`` (other files of the same kind)."""
    from zoo.config import as_dict, build, merge
    from zoo.sdk.files import data_dir as _data_dir

    cls, cfg = resolved.classes["dataset"], resolved.configs["dataset"]
    if overrides:
        cfg = build(getattr(cls, "Config", type(cfg)), merge(as_dict(cfg), overrides), "dataset")
    return cls(cfg, data_dir=_data_dir(data_dir))


def export_built(built: Built, path: Path, metrics: dict[str, Any], dtype: Any = None) -> Path:
    """Save ``built.model`` with the metadata that rebuilds it (:func:`zoo.store.artifact.artifact_metadata`),
    optionally cast to ``dtype`` (a torch dtype, or "int8": see :mod:`zoo.inference.int8`)."""
    from zoo.store.artifact import artifact_metadata, save

    meta = artifact_metadata(built, metrics)
    if dtype == "int8":
        from zoo.inference.int8 import save_int8

        return save_int8(path, built.model, meta)
    return save(path, built.model, meta, dtype=dtype)


def _resolve_artifact(path: Path, meta: dict[str, Any]) -> Resolved:
    """The artifact's config, resolved against the installed plugins, whose architecture must match."""
    try:
        resolved = resolve(meta["config"])
    except ZooError as exc:
        raise ArtifactError(f"{path}: {_missing_plugin(meta) or exc}") from exc
    cls = resolved.classes["model"]
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


def load(path: str | Path, device: str = "cpu", *, task: dict[str, Any] | None = None,
         pretrained: bool = False) -> LoadedModel:
    """Rebuild the model, tokenizers and task of an artifact; refuses incompatible versions.

    ``path`` is anything :func:`find_artifact` takes (a file, run folder, URL, entry or packaged model);
    ``pretrained``: an entry's published weights, downloaded and verified. ``task`` overrides the task's config (checked as training checks it), e.g. ``{"decode": "bio"}``:
    the same weights read out another way.
    """
    from safetensors.torch import load_model

    from zoo.runtime.device import resolve_device
    from zoo.store.artifact import check_compatible, read_metadata

    path = find_artifact(path, pretrained=pretrained)  # a file, run folder, URL, trained entry or packaged model
    meta = read_metadata(path)
    check_compatible(path, meta, zoo_version())
    if task:
        meta = {**meta, "config": merge(meta["config"], {"task": task})}
    resolved = _resolve_artifact(path, meta)
    task, toks, model = _rebuild(path, meta, resolved, task_changed=bool(task))
    dev = resolve_device(device)
    if meta.get("weights") == "int8":
        model, resolved, dev = _load_int8(model, resolved, path, dev)
    else:
        try:
            load_model(model, str(path), strict=True, device=str(dev))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ArtifactError(f"{path}: weights do not fit model {meta.get('model')}: {first_line(exc)}") from exc
    model.to(dev).eval()
    return LoadedModel(model, task, toks, resolved, meta, path)


def _load_int8(model: Any, resolved: Resolved, path: Path, dev: Any) -> tuple[Any, Resolved, Any]:
    """An int8 artifact: torch's dynamic int8 kernels, which run on the CPU, in float32 activations (no autocast)."""
    import dataclasses

    import torch

    from zoo.inference.int8 import load_int8

    if dev.type != "cpu":
        log.warning("%s holds int8 weights, which run on the CPU; loading it there instead of %s", path, dev)
    configs = {**resolved.configs, "train": dataclasses.replace(resolved.configs["train"], amp="off")}
    return load_int8(model, path), dataclasses.replace(resolved, configs=configs), torch.device("cpu")


def _rebuild(path: Path, meta: dict[str, Any], resolved: Resolved, *, task_changed: bool) -> tuple[Any, Any, Any]:
    """Task, tokenizers and an untrained model from an artifact's metadata, each checked against the file first:
    the tokenizer states restore, the sizes are the task's, and the model fits the weights and this machine."""
    from zoo.store.artifact import check_roles, read_header
    from zoo.runtime.untrusted import build_error, check_build, check_sizes

    check_roles(path, meta, resolved.classes["task"].tokenizer_roles)
    try:
        task, toks = make_task(resolved, meta["tokenizers"])
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    check_sizes(path, meta["sizes"], task.model_sizes(), values=not task_changed)
    stored = sum(math.prod(t["shape"]) for t in read_header(path)[0].values())
    check_build(path, resolved.classes["model"], resolved.configs["model"], meta["sizes"], stored=stored,
                what=meta.get("model"))
    try:
        model = make_model(resolved, meta["sizes"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise build_error(path, exc) from exc
    return task, toks, model


def write_outputs(path: Path, records: list[dict[str, Any]]) -> None:
    """Per-example records of an evaluation (e.g. generated code), one JSON object a line, atomically."""
    from zoo.sdk.atomic import atomic_write

    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def generate(path: str | Path, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = None, seed: int | None = None, device: str = "auto", use_cache: bool = True,
             stop_at_eos: bool = False):
    """Iterator over the text an artifact generates after ``prompt``, piece by piece (``stop_at_eos``:
    end at the first ``<eos>`` of a model trained with ``task.boundaries``)."""
    from zoo.runtime.device import resolve_device

    lm = load(path, device=str(resolve_device(device)))
    return lm.task.generate(lm.model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            seed=seed, use_cache=use_cache, stop_at_eos=stop_at_eos)


def export(src: str | Path, out: str | Path, dtype: str | None = None, *, force: bool = False) -> Path:
    """Write a copy of an artifact (or a run folder's) to ``out``, optionally cast to float16/bfloat16 or
    stored as int8 (Linear / LSTM / GRU weights, see :mod:`zoo.inference.int8`).

    An existing ``out`` is replaced only with ``force``; a file of a run folder (its checkpoint,
    artifact, config...) never is.
    """
    import torch

    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype}: use float32, float16, bfloat16 or int8")
    lm = load(src)  # a str keeps a URL's '//' (Path would fold it)
    if lm.metadata.get("weights") == "int8":
        raise ConfigError(f"{lm.path} holds int8 weights already; export from its float32 artifact")
    out = Path(out)
    if out.resolve() == lm.path.resolve():
        raise ConfigError(f"out={out} is the source file; choose another path")
    check_export_target(out, force)
    built = Built(lm.resolved, None, lm.tokenizers, lm.task, lm.model)
    cast = getattr(torch, dtype) if dtype not in (None, "int8") else dtype
    return export_built(built, out, lm.metadata.get("metrics", {}), dtype=cast)


def check_export_target(out: Path, force: bool) -> None:
    """Refuse to overwrite a run's own files, or any existing file without ``force``."""
    from zoo.store.rundir import is_run_file, status
    from zoo.sdk.atomic import check_replaceable

    if out.is_dir():
        raise RunDirError(f"out={out} is a folder; give the path of the .safetensors file to write")
    check_replaceable(out)  # a link, FIFO or device: refused now, not after the work
    if is_run_file(out.name) and status(out.parent)[0] != "none":
        raise RunDirError(f"out={out} is {out.name} of the run in {out.parent}, which export never overwrites; "
                          "choose another path")
    if out.exists() and not force:
        raise RunDirError(f"out={out} already exists; choose another path, or force=True to overwrite it")
