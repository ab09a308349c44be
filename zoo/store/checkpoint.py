"""Checkpoints: tensors in safetensors, their nesting in JSON; no pickle."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.errors import RunDirError
from zoo.sdk.atomic import atomic_path
from zoo.store.rundir import CHECKPOINT, METRICS  # noqa: F401 - the run folder's file names live in zoo.store.rundir
from zoo.errors import first_line


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensors of a nested state into ``tensors``; return a JSON skeleton."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "s", tensors)
    # safetensors refuses tensors that share memory; checkpoints hold copies anyway
    tensors = {k: v.clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "zoo-checkpoint", "state": json.dumps(skeleton)})


def load_checkpoint(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    from zoo.store.artifact import read_header

    _, meta = read_header(path)  # complete and well-formed, or a clear error
    if meta.get("format") != "zoo-checkpoint":
        raise RunDirError(f"{path}: not a zoo checkpoint")
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    from zoo.runtime.untrusted import loads

    try:
        skeleton = loads(meta["state"])
    except (KeyError, ValueError) as exc:
        raise RunDirError(f"{path}: damaged checkpoint: metadata 'state' is missing or not valid JSON "
                          f"({first_line(exc)}); resume from an earlier copy or train anew") from exc
    return _unflatten(skeleton, tensors)

