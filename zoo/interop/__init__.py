"""zoo and other ecosystems: Hugging Face ``transformers`` folders and ONNX files.

Light at import (no torch): the functions load their modules on first call.

- :func:`export_hf` / :func:`import_hf`: a zoo GPT out as a GPT-2 folder; a local GPT-2 folder in as a run.
- :func:`export_onnx`: a classifier, tagger or seq2seq encoder out as an ONNX file plus a JSON sidecar;
  a GPT (with a key/value cache) or the seq2py encoder-decoder as graphs with a cache
  (:mod:`.onnx_generative`); ``quantize="int8"`` rewrites them with onnxruntime's dynamic quantization.
- :func:`describe`: what ``zoo info`` says about an HF folder or an ONNX file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["describe", "export_hf", "export_onnx", "import_hf"]


def export_hf(loaded: Any, out_dir: str | Path, *, force: bool = False) -> Path:
    from zoo.interop.hf import export_hf as run

    return run(loaded, out_dir, force=force)


def import_hf(src_dir: str | Path, entry: str = "text-gpt", out: str | Path | None = None, *,
              overrides: dict[str, Any] | None = None, force: bool = False) -> Path:
    from zoo.interop.hf_import import import_hf as run

    return run(src_dir, entry, out, overrides=overrides, force=force)


def export_onnx(loaded: Any, out_file: str | Path, **options: Any) -> Path:
    from zoo.interop.onnx import export_onnx as run

    return run(loaded, out_file, **options)


def describe(path: str | Path) -> list[str] | None:
    from zoo.interop.inspect import describe as run

    return run(path)
