"""int8 ONNX files: ``zoo export --format onnx --quantize int8``.

The float32 graphs an export wrote are rewritten by onnxruntime's dynamic quantization
(``onnxruntime.quantization.quantize_dynamic``): the weights of matrix products stored as
int8 with their scales, activations quantized per batch at run time. The sidecar says so
(``"quantize": "int8"``); the inputs and outputs are the float32 file's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from zoo.errors import ZooError

log = logging.getLogger(__name__)
KINDS = ("int8",)


def check(quantize: str | None) -> None:
    if quantize is not None and quantize not in KINDS:
        raise ZooError(f"quantize={quantize!r}: ONNX exports quantize to {', '.join(KINDS)} only")


def quantize_export(onnx_path: Path) -> Path:
    """Rewrite every graph of the export at ``onnx_path`` (named by its sidecar) as int8; return ``onnx_path``."""
    from zoo.sdk.atomic import atomic_path, atomic_write

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ZooError("int8 ONNX export needs onnxruntime: pip install 'zoo[onnx]'") from None
    side_path = onnx_path.with_suffix(".json")
    side = json.loads(side_path.read_text(encoding="utf-8"))
    names = list((side.get("graphs") or {}).values()) or [onnx_path.name]
    for name in names:
        path = onnx_path.parent / name
        before = path.stat().st_size
        with atomic_path(path) as tmp:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
        log.info("%s: int8, %s -> %s bytes", path, f"{before:,}", f"{path.stat().st_size:,}")
    side["quantize"] = "int8"
    side["quantize_note"] = ("onnxruntime dynamic quantization: int8 weights, activations quantized per batch; "
                             "outputs differ from zoo's float32 ones by the quantization error")
    atomic_write(side_path, json.dumps(side, indent=1, ensure_ascii=False) + "\n")
    return onnx_path
