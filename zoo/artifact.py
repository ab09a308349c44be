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

from .errors import ArtifactError

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
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt safetensors header ({exc})") from exc
    meta = header.pop("__metadata__", None) or {}
    data_len = size - 8 - n
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: corrupt safetensors header at tensor '{name}'") from exc
        if end > data_len or start > end:
            raise ArtifactError(
                f"{path}: truncated: tensor '{name}' ends at byte {end} of a {data_len}-byte data section"
            )
    return header, meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The zoo metadata of an artifact, JSON values decoded."""
    _, raw = read_header(path)
    if raw.get("format") != FORMAT:
        raise ArtifactError(f"{path}: a safetensors file, but not a zoo model (no format={FORMAT!r} metadata)")
    meta: dict[str, Any] = dict(raw)
    for key in JSON_KEYS:
        if key in meta:
            try:
                meta[key] = json.loads(meta[key])
            except ValueError as exc:
                raise ArtifactError(f"{path}: metadata '{key}' is not valid JSON ({exc})") from exc
    return meta


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


def save(path: str | Path, model: Any, meta: dict[str, Any], dtype: Any = None) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` atomically."""
    import copy

    from safetensors.torch import save_model

    from ._io import atomic_path

    if dtype is not None:
        model = copy.deepcopy(model).to(dtype)
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=encode_metadata(meta))
    return Path(path)
