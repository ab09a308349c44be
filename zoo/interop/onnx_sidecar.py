"""The JSON written beside an ONNX export: what the graph reads and returns, labels, tokenizers.

Everything :mod:`zoo.interop.onnx_preprocess` needs to turn raw text into the
graph's inputs without zoo: each tokenizer's resolved config and state, the
regular expressions the classification word tokenizer splits with (read from the
plugin at export time, so they cannot drift), and the task's settings (max_len,
truncation, ...).
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

FORMAT, VERSION = "zoo-onnx", 1
# tokenizers zoo_onnx_preprocess.py reimplements, per family and role
SUPPORTED = {
    "classification": {"text": ("classify:word",), "labels": ("classify:labels",)},
    "tagging": {"words": ("tagging:conll-words",), "tags": ("tagging:conll-tags",), "chars": ("tokenizers:char",)},
    "seq2seq-encoder": {"src": ("tokenizers:digits", "tokenizers:char"), "tgt": None},
}
INPUTS = {
    "classification": {"ids": "int64 (batch, length): word ids, right-padded with the pad id (0)",
                       "lengths": "int64 (batch,): real tokens per row, 1 or more"},
    "tagging": {"words": "int64 (batch, length): word ids, right-padded with 0 (at most task_config.max_len)",
                "chars": "int64 (batch, length, word_chars): character ids of each token, right-padded with 0; "
                         "word_chars = the longest word of the batch (after cutting to max_word_chars)"},
    "seq2seq-encoder": {"src": "int64 (batch, length): source ids, right-padded with 0",
                        "src_lengths": "int64 (batch,): real tokens per row, 1 or more"},
}
OUTPUTS = {
    "classification": {"logits": "float32 (batch, classes)", "probabilities": "float32 (batch, classes): softmax"},
    "tagging": {"logits": "float32 (batch, length, tags)", "tags": "int64 (batch, length): index into labels; "
                "ignore the padding positions"},
    "seq2seq-encoder": {"outputs": "float32 (batch, length, hidden): encoder states, zeros at padding",
                        "hidden": "float32 (layers, batch, hidden): final state per layer"},
}

PREPROCESS = "zoo_onnx_preprocess.py"  # the preprocessing module written beside every export


def _tokenizer(loaded: Any, family: str, role: str) -> dict[str, Any]:
    entry = loaded.metadata["tokenizers"][role]
    name = entry["name"]
    allowed = SUPPORTED[family].get(role, ())
    if allowed is not None and name not in allowed:
        raise ZooError(f"{loaded.path}: tokenizer {name} (role '{role}') has no pure-Python counterpart in "
                       f"zoo_onnx_preprocess.py (supported for {family}: {', '.join(allowed)})")
    config = {k: v for k, v in (loaded.resolved.data.get("tokenizer", {}).get(role) or {}).items() if k != "name"}
    out = {"name": name, "config": config, "state": entry["state"]}
    if name == "classify:word":  # the exact expressions the plugin splits with
        module = sys.modules[type(loaded.tokenizers[role]).__module__]
        try:
            out["patterns"] = {"word": module.WORD_RE.pattern, "html_break": module.HTML_BREAK_RE.pattern}
        except AttributeError:
            raise ZooError(f"{loaded.path}: the word tokenizer's module has no WORD_RE / HTML_BREAK_RE; "
                           "this plugin version cannot be exported to ONNX") from None
    return out


def sidecar(loaded: Any, family: str, onnx_name: str, opset: int) -> dict[str, Any]:
    """The sidecar of ``loaded`` exported as ``family``; refuses tokenizers the preprocessing cannot mirror."""
    meta = loaded.metadata
    inputs = dict(INPUTS[family])
    if family == "tagging" and not getattr(loaded.model.config, "char_features", False):
        inputs.pop("chars")
    labels = list(getattr(loaded.task, "labels", []) or [])
    return {
        "format": FORMAT, "version": VERSION, "onnx": onnx_name, "opset": opset, "family": family,
        "zoo_version": meta.get("zoo_version"), "entry": meta.get("entry"), "model": meta.get("model"),
        "task": meta.get("task"), "dataset": meta.get("dataset"),
        "exported": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "inputs": inputs, "outputs": OUTPUTS[family], "labels": labels,
        "task_config": {k: v for k, v in loaded.resolved.data["task"].items() if k != "name"},
        "sizes": meta.get("sizes", {}),
        "tokenizers": {role: _tokenizer(loaded, family, role) for role in meta["tokenizers"]},
        "metrics": meta.get("metrics", {}),
    }


def preprocess_source() -> str:
    """The text of the module shipped beside every export."""
    return (Path(__file__).parent / "onnx_preprocess.py").read_text(encoding="utf-8")
