"""ONNX: a classifier, tagger or seq2seq encoder out as ``FILE.onnx`` for ONNX Runtime, without torch.

Beside ``FILE.onnx`` go ``FILE.json`` (inputs and outputs, label names, the task
settings and every tokenizer's state) and ``zoo_onnx_preprocess.py``, a
standard-library-plus-numpy module that turns raw texts into the graph's inputs
exactly as zoo does (see :mod:`zoo.interop.onnx_preprocess`). imdb-rnn's hashed
word-pair and word-triple ids are computed inside the graph, from the word ids.

The graphs, all with dynamic batch and length axes:

- classification: ``ids`` (B, T), ``lengths`` (B,) -> ``logits``, ``probabilities`` (B, K)
- tagging: ``words`` (B, T) [, ``chars`` (B, T, W): each token's character ids] -> ``logits`` (B, T, K), ``tags`` (B, T)
- seq2seq encoder: ``src`` (B, S), ``src_lengths`` (B,) -> ``outputs`` (B, S, H), ``hidden`` (L, B, H)

zoo's GPT and the seq2py encoder-decoder go through :mod:`zoo.interop.onnx_generative`
(graphs with a key/value cache); ``quantize="int8"`` through :mod:`zoo.interop.onnx_int8`.

Exported with the TorchScript-based ``torch.onnx.export(..., dynamo=False)``, which
needs the ``onnx`` package only; when ``onnxruntime`` is installed the file is run
once on other shapes than the traced ones and refused unless it matches zoo.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from zoo.interop.onnx_sidecar import PREPROCESS  # written beside every export
from zoo.errors import ZooError, first_line

log = logging.getLogger(__name__)

FAMILIES = {"classify:classification": "classification", "tagging:tagging": "tagging",
            "seq2seq:seq2seq": "seq2seq-encoder"}
OPSET = 17
TOLERANCE = 1e-4  # largest difference between onnxruntime and zoo the export accepts (fp32)


def _graphs():
    """The wrapper modules (torch is imported only here)."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids, lengths):
            logits = self.model(ids, lengths).float()  # (B, K)
            return logits, torch.softmax(logits, dim=-1)

    class Tagger(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, words, chars=None):
            index = None
            if chars is not None:  # one row of characters per token: the model's (U, W) forms with U = B * T
                B, T, W = chars.shape
                index = torch.arange(B * T, device=words.device).reshape(B, T)
                chars = chars.reshape(B * T, W)
            logits = self.model(words, chars, index).float()  # (B, T, K)
            return logits, logits.argmax(-1)

    class Encoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, src, src_lengths):
            outputs, hidden, _ = self.model.encode(src, src_lengths)  # (B, S, H), (L, B, H)
            return outputs.float(), hidden.float()

    return {"classification": Classifier, "tagging": Tagger, "seq2seq-encoder": Encoder}


def _examples(family: str, loaded: Any, shape: tuple[int, int]) -> dict[str, Any]:
    """Inputs of ``shape`` (rows, longest) with padding (rows get lengths longest, 1, 2, ...)."""
    import torch

    rows, longest = shape
    longest = min(longest, loaded.model.sizes.get("max_len", longest))  # a tagger's positions end there
    lengths = torch.tensor([longest] + [1 + i % longest for i in range(rows - 1)])
    vocab = loaded.model.sizes.get("vocab_size", loaded.model.sizes.get("src_vocab", 5))
    real = torch.arange(longest)[None, :] < lengths[:, None]  # (B, T)
    ids = torch.where(real, 4 + torch.arange(rows * longest).reshape(rows, longest) % max(1, vocab - 4), 0)
    if family == "classification":
        return {"ids": ids, "lengths": lengths}
    if family == "seq2seq-encoder":
        return {"src": ids, "src_lengths": lengths}
    out = {"words": ids}
    if getattr(loaded.model.config, "char_features", False):
        n_chars = loaded.model.sizes["char_vocab"]
        chars = 4 + torch.arange(rows * longest * 3).reshape(rows, longest, 3) % max(1, n_chars - 4)
        chars[:, :, 2] = 0  # words of two characters, padded to three
        out["chars"] = torch.where(real[..., None], chars, 0)
    return out


def _prepare(loaded: Any) -> tuple[str, Any]:
    """(family, the wrapper around a copy of the model in eval mode)."""
    task_id = loaded.metadata.get("task", "")
    family = FAMILIES.get(task_id)
    if family is None:
        raise ZooError(f"{loaded.path}: task {task_id} has no ONNX export (exported: classification, tagging, "
                       "the encoder of seq2seq, zoo's GPT, the seq2py Transformer); GPT language models also export with "
                       "--format hf")
    model = copy.deepcopy(loaded.model).float().cpu().eval()
    if dataclasses.is_dataclass(model.config) and getattr(model.config, "packed", False):
        # the padded layout computes the same outputs (zoo_text_classify tests it) with plain tensor ops
        model.config = dataclasses.replace(model.config, packed=False)
    if family == "seq2seq-encoder" and not callable(getattr(model, "encode", None)):
        raise ZooError(f"{loaded.path}: model {loaded.metadata.get('model')} has no encode(src, src_lengths)")
    return family, _graphs()[family](model).eval()


def export_onnx(loaded: Any, out_file: str | Path, *, opset: int = OPSET, force: bool = False,
                quantize: str | None = None) -> Path:
    """Write ``out_file`` (.onnx), its ``.json`` sidecar and :data:`PREPROCESS` beside it; return the .onnx path.

    ``loaded`` is what :func:`zoo.load` returns. ``force`` replaces an existing file.
    ``quantize="int8"``: the verified float32 graph rewritten by onnxruntime's dynamic quantization.
    """
    from zoo.interop import onnx_int8

    onnx_int8.check(quantize)
    if loaded.metadata.get("weights") == "int8":
        raise ZooError(f"{loaded.path} holds int8 weights; export its float32 artifact (--quantize int8 for ONNX)")
    path = _export_float(loaded, out_file, opset, force)
    return onnx_int8.quantize_export(path) if quantize else path


def _export_float(loaded: Any, out_file: str | Path, opset: int, force: bool) -> Path:
    from zoo.interop import onnx_sidecar
    from zoo.sdk.atomic import atomic_path, atomic_write

    out = Path(out_file)
    if out.suffix != ".onnx":
        raise ZooError(f"out={out}: give a file name ending in .onnx")
    preprocess = onnx_sidecar.preprocess_source()
    _check_targets(out, preprocess, force)
    from zoo.interop.onnx_generative import export_generative, family as generative

    if generative(loaded):  # zoo's GPT, the seq2py encoder-decoder: graphs with a key/value cache
        return export_generative(loaded, out)
    family, graph = _prepare(loaded)
    sidecar = onnx_sidecar.sidecar(loaded, family, out.name, opset)  # refuses tokenizers it cannot describe
    names = list(sidecar["inputs"])
    with atomic_path(out) as tmp:
        _export(graph, family, loaded, names, list(sidecar["outputs"]), tmp, opset)
        _verify(graph, family, loaded, names, tmp)
    atomic_write(out.with_suffix(".json"), json.dumps(sidecar, indent=1, ensure_ascii=False) + "\n")
    if not _same_text(out.parent / PREPROCESS, preprocess):
        atomic_write(out.parent / PREPROCESS, preprocess)
    return out


def _check_targets(out: Path, preprocess: str, force: bool) -> None:
    """The three files an export writes may be written: none exists (but zoo's own, unchanged, preprocessing
    module, which exports in one folder share), or ``force``; never a link, device or a run's file."""
    from zoo.store.targets import check_output_file

    check_output_file(out, force)
    check_output_file(out.with_suffix(".json"), force, f"{out.with_suffix('.json')} (the export's sidecar)")
    if not _same_text(out.parent / PREPROCESS, preprocess):
        check_output_file(out.parent / PREPROCESS, force, f"{out.parent / PREPROCESS} (not this zoo's own)")


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def _export(graph: Any, family: str, loaded: Any, names: list[str], outputs: list[str], path: Path,
            opset: int) -> None:
    import torch

    try:
        import onnx  # noqa: F401  (the exporter writes the file with it)
    except ImportError:
        raise ZooError("ONNX export needs the onnx package: pip install 'zoo[onnx]'") from None
    example = _examples(family, loaded, (3, 4))
    axes = {n: {0: "batch", 1: "length"} for n in names}
    if "lengths" in names or "src_lengths" in names:
        axes[names[1]] = {0: "batch"}
    if "chars" in names:
        axes["chars"] = {0: "batch", 1: "length", 2: "word_chars"}
    axes.update({n: {0: "batch"} if family == "classification" else {0: "batch", 1: "length"} for n in outputs})
    if family == "seq2seq-encoder":
        axes["hidden"] = {1: "batch"}
    with warnings.catch_warnings():  # the TorchScript exporter's notes on traced shapes and its deprecation
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, tuple(example[n] for n in names), str(path), dynamo=False, opset_version=opset,
                              input_names=names, output_names=outputs, dynamic_axes=axes)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # tracing or an op without ONNX form
            first = first_line(exc, limit=300)
            raise ZooError(f"{loaded.path}: model {loaded.metadata.get('model')} cannot be exported to ONNX "
                           f"(opset {opset}): {first}") from exc


def _verify(graph: Any, family: str, loaded: Any, names: list[str], path: Path) -> None:
    """Run the file in onnxruntime on other shapes than the traced ones; refuse it unless it matches."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        log.info("onnxruntime is not installed: %s is not checked against zoo", path)
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((5, 7), (1, 1)):
        feeds = _examples(family, loaded, shape)
        with torch.no_grad():
            want = graph(*(feeds[n] for n in names))
        got = session.run(None, {n: feeds[n].numpy() for n in names})
        for w, g in zip(want, got):
            diff = float((w.float() - torch.from_numpy(g).float()).abs().max()) if w.numel() else 0.0
            if not diff <= TOLERANCE:
                raise ZooError(f"{loaded.path}: the ONNX graph differs from zoo by {diff:.3g} on a batch of shape "
                               f"{shape}; not written (torch {torch.__version__}, opset; please report it)")
