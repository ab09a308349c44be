"""int8 artifacts: ``zoo export RUN --out FILE --dtype int8``, loaded back by :func:`zoo.load`.

What torch's dynamic quantization covers is stored as int8: the weights of every
``nn.Linear``, ``nn.LSTM`` and ``nn.GRU`` (a weight shared with another kind of layer, such
as a GPT head tied to its embedding, stays float32). Each such tensor is written as int8
values under its own name plus a float32 scale under ``int8_scale.NAME`` (symmetric,
per output row: value = int8 * scale), in the same safetensors file as everything else;
nothing is pickled. The header's ``weights = "int8"`` says so.

Loading rebuilds the float32 model from int8 * scale and converts those layers with
``torch.ao.quantization.quantize_dynamic`` (int8 matrix products on the CPU, activations
quantized per batch; Linear weights per row, LSTM / GRU weights per tensor, as torch's
kernels take them), so predictions run the int8 kernels.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import ArtifactError

log = logging.getLogger(__name__)

SCALE = "int8_scale."  # prefix of the scale tensors
KINDS = (nn.Linear, nn.LSTM, nn.GRU)  # what torch's dynamic quantization converts


def quantized_layers(model: nn.Module) -> dict[str, list[str]]:
    """Module name -> its weight parameter names to store as int8 (full names), for every layer that qualifies."""
    others = {p.data_ptr() for m in model.modules() if not isinstance(m, KINDS)
              for p in m.parameters(recurse=False)}
    out: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, KINDS):
            continue
        weights = [n for n, p in module.named_parameters(recurse=False)
                   if n.startswith("weight") and p.is_floating_point() and p.data_ptr() not in others]
        if weights:
            out[name] = [f"{name}.{n}" if name else n for n in weights]
    return out


def _quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scale per row) of a 2-D weight, symmetric: w ~ q * scale."""
    w = w.detach().float().cpu()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp_min(1e-12)  # (rows, 1)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def int8_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of ``model``'s state for the file: int8 + scales where they apply, shared tensors once."""
    targets = {n for names in quantized_layers(model).values() for n in names}
    if not targets:
        raise ArtifactError("this model has no Linear, LSTM or GRU weights: int8 would store nothing as int8")
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for name, value in model.state_dict().items():
        key = (value.data_ptr(), tuple(value.shape))
        if key in seen:  # a tied weight: the model ties it again when built
            continue
        seen.add(key)
        if name in targets:
            out[name], out[SCALE + name] = _quantize(value)
        else:
            out[name] = value.detach().float().cpu().contiguous() if value.is_floating_point() else value.cpu()
    return out


def save_int8(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model`` as an int8 artifact with ``meta`` (``weights = "int8"`` added), atomically."""
    from safetensors.torch import save_file

    from zoo.sdk.atomic import atomic_path
    from zoo.store.artifact import encode_metadata

    tensors = {k: v.clone() for k, v in int8_tensors(model).items()}  # no two entries share memory
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encode_metadata({**meta, "weights": "int8"}))
    return Path(path)


def load_int8(model: nn.Module, path: Path) -> nn.Module:
    """Fill ``model`` (float32, on the CPU) from an int8 artifact and convert its layers to int8 kernels."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        stored = {k: fh.get_tensor(k) for k in fh.keys()}
    layers = quantized_layers(model)
    state: dict[str, torch.Tensor] = {}
    for name, value in stored.items():
        if name.startswith(SCALE):
            continue
        scale = stored.get(SCALE + name)
        state[name] = value.float() * scale if scale is not None else value
    expected = {n for names in layers.values() for n in names}
    missing_int8 = sorted(n for n in expected if SCALE + n not in stored)
    result = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(params[n]) for n in state if n in params}
    missing = [n for n in result.missing_keys if n not in params or id(params[n]) not in loaded]
    if missing or result.unexpected_keys or missing_int8:
        what = missing[:1] or result.unexpected_keys[:1] or missing_int8[:1]
        raise ArtifactError(f"{path}: int8 weights do not fit the model (first: {what[0]})")
    q = torch.ao.quantization
    spec = {name: q.per_channel_dynamic_qconfig if isinstance(model.get_submodule(name), nn.Linear)
            else q.default_dynamic_qconfig for name in layers}  # torch's LSTM / GRU kernels: per tensor
    with warnings.catch_warnings():  # torch's notes that its eager quantization API is deprecated
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return q.quantize_dynamic(model.eval(), spec, dtype=torch.qint8, inplace=False)
