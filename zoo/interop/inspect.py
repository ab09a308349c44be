"""``zoo info PATH`` for files from other ecosystems: a Hugging Face model folder or an ONNX file.

:func:`describe` returns the lines to print, or ``None`` when ``path`` is neither
(the caller then treats it as a zoo artifact or a registered name). It reads
headers and JSON only: no weights are loaded and torch is not imported unless a
folder's activation needs the installed gpt's list of activations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.interop import gpt2, hf_tokenizer


def describe(path: str | Path) -> list[str] | None:
    """What ``path`` is and whether zoo can import it; ``None`` when it is no HF folder or ONNX file."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file() and not _is_zoo_run(path):
        return describe_hf(path)
    if path.is_file() and path.suffix == ".onnx":
        return describe_onnx(path)
    return None


def _is_zoo_run(path: Path) -> bool:
    return (path / "config.toml").is_file() and (path / "model.safetensors").is_file()


def _activations(cfg: dict[str, Any]) -> tuple[str, ...]:
    """zoo gpt's activations; the installed model is asked only when the folder needs more than gelu / relu."""
    if gpt2.FROM_HF_ACTIVATION.get(cfg.get("activation_function", "gelu_new")) in ("gelu", "relu"):
        return ("gelu", "relu")
    try:
        from zoo import api

        return gpt2.zoo_activations(api.get_registry().get("model", "gpt").load().Config)
    except Exception:  # no lm plugin: the import check below says so
        return ("gelu", "relu")


def _weights(path: Path) -> tuple[dict[str, Any], str]:
    """(tensor header, what to print) of the folder's safetensors weights."""
    from zoo.errors import ZooError
    from zoo.interop.hf_import import weight_files
    from zoo.store.artifact import read_header

    try:
        files = weight_files(path)
        header: dict[str, Any] = {}
        for f in files:
            header.update(read_header(f)[0])
    except ZooError as exc:
        return {}, str(exc)
    values = sum(_count(t["shape"]) for t in header.values())
    return header, f"{', '.join(f.name for f in files)} ({len(header)} tensors, {values:,} values)"


def _count(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def describe_hf(path: Path) -> list[str]:
    from zoo.errors import ZooError
    from zoo.runtime.untrusted import loads
    from zoo.interop.folder import inside

    try:
        cfg = loads(inside(path, "config.json").read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, ZooError) as exc:
        return [f"folder: {path}", f"config.json cannot be read as JSON ({exc})"]
    archs = ", ".join(map(str, cfg.get("architectures") or [])) or "no architectures"
    lines = [f"Hugging Face model folder: {path}", f"architecture: {archs} (model_type {cfg.get('model_type')})"]
    model, problems = gpt2.zoo_model_config(cfg, _activations(cfg))
    if model:
        lines.append(f"sizes: {model['n_layer']} layers, {model['n_head']} heads, width {model['n_embd']}, "
                     f"context {cfg.get('n_positions', cfg.get('n_ctx'))}, vocabulary {cfg.get('vocab_size')}")
    header, weights = _weights(path)
    lines.append(f"weights: {weights}")
    if not header:
        problems.append(weights)
    data, where = hf_tokenizer.source_json(path)
    tok_problems = hf_tokenizer.bpe_problems(data, where)
    problems += tok_problems
    if data is not None and not tok_problems:
        ids = hf_tokenizer.vocab_size(data)
        if hf_tokenizer.zoo_layout(data):
            layout = "; zoo's <pad> <unk> <bos> <eos> at 0-3"
        elif hf_tokenizer.has_id(data, cfg.get("eos_token_id")):
            layout = f"; ids kept, end-of-text id {cfg.get('eos_token_id')} serves as zoo's specials"
        else:
            layout = "; no end-of-text id: zoo adds its 4 specials in front"
        lines.append(f"tokenizer: byte-level BPE, {ids} ids ({where}){layout}")
        wte = (header.get("transformer.wte.weight") or header.get("wte.weight") or {}).get("shape")
        if wte and wte[0] != ids:
            problems.append(f"the embedding has {wte[0]} rows but the tokenizer has {ids} ids")
    if problems:
        lines.append(f"zoo import: not possible: {'; '.join(problems)}")
    else:
        lines.append(f"zoo import: possible: zoo import hf {path} --out RUN (no dataset needed; "
                     "fine-tune with zoo train --resume RUN --set 'dataset.files=[\"corpus.txt\"]')")
    return lines


def describe_onnx(path: Path) -> list[str]:
    lines = [f"ONNX model: {path}"]
    side = path.with_suffix(".json")
    meta: dict[str, Any] = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            lines.append(f"sidecar {side.name}: cannot be read as JSON ({exc})")
    if meta.get("format") == "zoo-onnx":
        lines.append(f"exported by zoo {meta.get('zoo_version')} from {meta.get('entry') or meta.get('model')}: "
                     f"{meta.get('family')} (task {meta.get('task')}, opset {meta.get('opset')})")
        for kind in ("input", "output"):  # a generative export lists them per graph
            for k, v in (meta.get(f"{kind}s") or {}).items():
                pairs = v.items() if isinstance(v, dict) else [("", v)]
                lines += [f"{kind} {f'{k}.' if n else ''}{n or k}: {d}" for n, d in pairs]
        if meta.get("labels"):
            shown = meta["labels"][:20]
            more = f" and {len(meta['labels']) - len(shown)} more" if len(meta["labels"]) > len(shown) else ""
            lines.append(f"labels: {', '.join(shown)}{more}")
        if meta.get("graphs"):
            lines.append(f"graphs: {', '.join(f'{k} {v}' for k, v in meta['graphs'].items())}; tokenizer states in "
                         f"{side.name} (encode with zoo, or a BPE with the tokenizers library)")
        else:
            lines.append(f"preprocessing: zoo_onnx_preprocess.py with {side.name} (no zoo or torch needed)")
        if meta.get("quantize"):
            lines.append(f"quantized: {meta['quantize']} (onnxruntime dynamic quantization)")
    else:
        lines.append(f"no zoo sidecar ({side.name}): not exported by zoo, or moved without it")
        lines += _graph_io(path)
    lines.append("zoo import: not possible: zoo exports ONNX files but does not read them back; "
                 "run it with onnxruntime")
    return lines


def _graph_io(path: Path) -> list[str]:
    """Inputs and outputs read from the file itself (needs the onnx package)."""
    try:
        import onnx
    except ImportError:
        return ["(install onnx to list the graph's inputs and outputs)"]
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises protobuf's DecodeError and others on a bad file
        return [f"not a readable ONNX file ({type(exc).__name__}: {exc})"]
    return [f"{kind} {v.name}" for kind, vs in (("input", graph.input), ("output", graph.output)) for v in vs]
