"""The zoo artifact: one ``.safetensors`` file holding weights plus metadata.

Metadata values are strings (a safetensors rule); structured values are JSON
text. The header is read without torch, so ``zoo info FILE`` is instant. Nothing
is ever unpickled.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError
from zoo.runtime.untrusted import clip, loads

FORMAT = "zoo-model"
JSON_KEYS = ("config", "sizes", "tokenizers", "metrics", "reference")
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def read_header(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensor index, raw string metadata) of a safetensors file; checks it is complete."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            head = fh.read(8)
            if len(head) < 8:
                raise ArtifactError(f"{path}: not a safetensors file (only {size} bytes); it is truncated or corrupt")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise ArtifactError(f"{path}: corrupt or truncated safetensors header (declares {n} bytes, file has {size})")
            raw = fh.read(n)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        header = loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt safetensors header ({exc})") from exc
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        bad = next((k for k, v in meta.items() if not isinstance(v, str)), "") if isinstance(meta, dict) else ""
        where = f" ('{bad}' is not a string)" if bad else ""
        raise ArtifactError(f"{path}: corrupt safetensors metadata{where}: every metadata value must be a string")
    data_len = size - 8 - n
    for name, info in header.items():
        _check_tensor(path, name, info, data_len)
    return header, meta


# bytes per element of the safetensors dtypes
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_tensor(path: Path, name: str, info: Any, data_len: int) -> None:
    """One tensor entry of the header: known dtype, a shape, and a byte range that fits both."""
    try:
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not all(isinstance(v, int) and v >= 0 for v in (*shape, start, end)):
            raise ValueError("negative or non-integer shape or offset")
    except (TypeError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{path}: corrupt safetensors header at tensor '{clip(name)}' ({exc})") from exc
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise ArtifactError(f"{path}: tensor '{clip(name)}' has unknown dtype {clip(repr(dtype))}")
    if end > data_len or start > end:
        raise ArtifactError(f"{path}: truncated: tensor '{clip(name)}' ends at byte {end} of a {data_len}-byte data section")
    count = 1
    for d in shape:
        count *= d
    if (end - start) != count * DTYPE_SIZES[dtype]:
        raise ArtifactError(f"{path}: corrupt header: tensor '{clip(name)}' of shape {clip(shape)} ({dtype}) needs "
                            f"{count * DTYPE_SIZES[dtype]} bytes but its byte range holds {end - start}")


# what a zoo model's metadata must hold, and the JSON type of each structured value
REQUIRED = ("zoo_version", "model", "arch_version", "task", "config", "sizes", "tokenizers")
JSON_TYPES = {"config": dict, "sizes": dict, "tokenizers": dict, "metrics": dict, "reference": dict}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The zoo metadata of an artifact, JSON values decoded and checked against the schema."""
    _, raw = read_header(path)
    if raw.get("format") != FORMAT:
        raise ArtifactError(f"{path}: a safetensors file, but not a zoo model (no format={FORMAT!r} metadata)")
    meta: dict[str, Any] = dict(raw)
    for key in JSON_KEYS:
        if key in meta:
            try:
                meta[key] = loads(meta[key])
            except ValueError as exc:
                raise ArtifactError(f"{path}: metadata '{key}' is not valid JSON ({exc})") from exc
            if not isinstance(meta[key], JSON_TYPES[key]):
                raise ArtifactError(f"{path}: metadata '{key}' must be a JSON object, got {type(meta[key]).__name__}")
    check_schema(path, meta)
    return meta


def check_schema(path: str | Path, meta: dict[str, Any]) -> None:
    """Refuse metadata that would fail later, deep in loading: one message naming the key."""
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{path}: not a complete zoo model: metadata has no '{missing[0]}'")
    for key, value in meta["sizes"].items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArtifactError(f"{path}: metadata 'sizes.{key}' must be an integer, got {clip(repr(value))}")
        if value < 0:
            raise ArtifactError(f"{path}: metadata 'sizes.{key}' must be a non-negative integer, got {value}")
    for role, tok in meta["tokenizers"].items():
        if not (isinstance(tok, dict) and isinstance(tok.get("name"), str) and isinstance(tok.get("state"), dict)):
            raise ArtifactError(f"{path}: metadata 'tokenizers.{role}' must be an object with a 'name' and a 'state'")
    for section in ("model", "task", "dataset"):
        node = meta["config"].get(section)
        if not (isinstance(node, dict) and isinstance(node.get("name"), str)):
            raise ArtifactError(f"{path}: metadata 'config.{section}' must be a table with a 'name'")


def check_roles(path: str | Path, meta: dict[str, Any], roles: tuple[str, ...] | list[str]) -> None:
    """The artifact carries a tokenizer state for every role its task needs."""
    for role in roles:
        if role not in meta["tokenizers"]:
            raise ArtifactError(f"{path}: metadata 'tokenizers' has no state for role '{role}', "
                                "which its task needs; the file is incomplete")


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    out = {"format": FORMAT}
    for key, value in meta.items():
        out[key] = json.dumps(value, sort_keys=True) if key in JSON_KEYS else str(value)
    return out


def major(version: str) -> str:
    return version.split(".", 1)[0]


def check_compatible(path: str | Path, meta: dict[str, Any], zoo_version: str) -> None:
    theirs = str(meta.get("zoo_version", "?"))
    if major(theirs) != major(zoo_version):
        raise ArtifactError(
            f"{path}: written by zoo {theirs}, this is zoo {zoo_version}; major versions differ, so the "
            f"file cannot be loaded: use zoo {major(theirs)}.x, or retrain with this version"
        )


def artifact_metadata(built: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """What an artifact records of the run that made it (a :class:`zoo.build.pieces.Built`): config, component
    ids and versions, the task's sizes and the tokenizers' states, which rebuild the model, and its metrics."""
    import datetime as _dt

    from zoo.build.pieces import tokenizer_states
    from zoo.registry.discovery import default
    from zoo.store.card import zoo_version

    resolved = built.resolved
    mspec = resolved.specs["model"]
    info = default.loaded.plugins.get(mspec.plugin)
    return {
        "zoo_version": zoo_version(),
        "entry": resolved.entry,
        "model": mspec.id,
        "plugin": mspec.plugin,
        "plugin_version": info.version if info else "",
        "arch_version": str(resolved.classes["model"].arch_version),
        "task": resolved.specs["task"].id,
        "dataset": resolved.specs["dataset"].id,
        "config": resolved.data,
        "sizes": built.task.model_sizes(),
        "tokenizers": built.states if built.states is not None else tokenizer_states(built),
        "metrics": metrics,
        "reference": resolved.reference,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save(path: str | Path, model: Any, meta: dict[str, Any], dtype: Any = None) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` atomically."""
    import copy

    from safetensors.torch import save_model

    from zoo.sdk.atomic import atomic_path

    if dtype is not None:
        model = copy.deepcopy(model).to(dtype)
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=encode_metadata(meta))
    return Path(path)
