"""Hugging Face ``transformers``: a zoo GPT out as a GPT-2 folder, a local GPT-2 folder in as a zoo run.

:func:`export_hf` writes what ``AutoModelForCausalLM.from_pretrained(DIR)`` and
``AutoTokenizer.from_pretrained(DIR)`` load offline: ``config.json`` (GPT-2),
``model.safetensors`` (GPT-2 names, Conv1D weights transposed),
``generation_config.json``, the tokenizer files and a ``README.md`` model card
with the zoo metadata. :func:`import_hf` (in :mod:`zoo.interop.hf_import`) goes
the other way. Neither touches the network: a folder is a local path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.interop import gpt2, hf_tokenizer
from zoo.interop.hf_import import import_hf
from zoo.sdk.atomic import umask

__all__ = ["export_hf", "import_hf"]

GPT_MODEL = "lm:gpt"  # the zoo model whose layout is GPT-2's


def export_hf(loaded: Any, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write the zoo GPT ``loaded`` (what :func:`zoo.load` returns) as a ``transformers`` GPT-2 folder.

    Every option is mapped exactly or refused with a :class:`ZooError` naming it; ``force``
    replaces an existing folder that holds an earlier export (a ``config.json``).
    """
    meta = loaded.metadata
    if meta.get("model") != GPT_MODEL:
        raise ZooError(f"{loaded.path}: model {meta.get('model')} is not zoo's GPT ({GPT_MODEL}); only GPT "
                       "language models export to Hugging Face (classifiers and taggers: --format onnx)")
    sizes = meta["sizes"]
    tok_name = meta["tokenizers"]["text"]["name"]
    tok = loaded.tokenizers["text"]
    specials = {"pad": tok.pad_id, "unk": tok.unk_id, "bos": tok.bos_id, "eos": tok.eos_id}
    try:
        config = gpt2.hf_config(loaded.resolved.data["model"], sizes["vocab_size"], sizes["block_size"], specials,
                                gpt2.zoo_activations(type(loaded.model.config)))
        files = hf_tokenizer.export_files(tok_name, meta["tokenizers"]["text"]["state"], sizes["block_size"])
    except ValueError as exc:
        raise ZooError(f"{loaded.path}: cannot export to Hugging Face: {exc}") from exc
    tensors = hf_tensors(loaded.model, config, loaded.path)
    config["dtype"] = config["torch_dtype"] = str(next(iter(tensors.values())).dtype).removeprefix("torch.")
    banned = sorted(set(specials.values()))  # zoo generate never produces a special id; neither does this
    generation = {"bos_token_id": specials["bos"], "eos_token_id": specials["eos"], "pad_token_id": specials["pad"],
                  "suppress_tokens": banned, "do_sample": True, "temperature": 0.8, "top_k": 0}
    files["config.json"] = json.dumps(config, indent=2) + "\n"
    files["generation_config.json"] = json.dumps(generation, indent=2) + "\n"
    files["README.md"] = model_card(loaded, config, tok_name)
    return write_folder(Path(out_dir), files, tensors, force)


def hf_tensors(model: Any, config: dict[str, Any], where: Any) -> dict[str, Any]:
    """GPT-2-named tensors of a zoo GPT: Conv1D weights transposed, absent biases as zeros."""
    import torch

    state = model.state_dict()
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    if not tied:
        raise ZooError(f"{where}: the output head is not tied to the token embedding (GPT-2 ties them)")
    names = gpt2.tensor_names(config["n_layer"])
    extra = sorted(set(state) - {f"transformer.{n}" for n in names} - {"lm_head.weight"})
    if extra:
        raise ZooError(f"{where}: parameter {extra[0]} has no place in the GPT-2 layout; cannot export")
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    if eps != {gpt2.LAYER_NORM_EPS}:
        raise ZooError(f"{where}: LayerNorm eps {sorted(eps)} differs from GPT-2's {gpt2.LAYER_NORM_EPS}")
    out: dict[str, torch.Tensor] = {}
    for name in names:
        value = state.get(f"transformer.{name}")
        if value is None:  # bias = false: a zero bias computes the same
            width = state[f"transformer.{name.removesuffix('bias')}weight"].shape[0]
            value = torch.zeros(width, dtype=state["transformer.wte.weight"].dtype)
        if name.split(".", 2)[-1] in gpt2.CONV1D:
            value = value.t()  # nn.Linear (out, in) -> Conv1D (in, out)
        out[f"transformer.{name}"] = value.detach().to("cpu").contiguous().clone()
    return out


def write_folder(out: Path, files: dict[str, str], tensors: dict[str, Any], force: bool) -> Path:
    """Write ``files`` and ``model.safetensors`` into ``out`` whole, or leave it as it was."""
    from safetensors.torch import save_file

    if out.exists() and not out.is_dir():
        raise ZooError(f"out={out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ZooError(f"out={out} is not empty; choose another folder, or force=True to replace an earlier export")
        if not (out / "config.json").is_file():
            raise ZooError(f"out={out} holds files but no config.json: not an earlier export; it is left alone")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        os.chmod(tmp, 0o777 & ~umask(out.parent))  # mkdtemp makes 0700
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def model_card(loaded: Any, config: dict[str, Any], tok_name: str) -> str:
    """README.md: what the folder holds, how to load it, and the zoo metadata it came with."""
    meta = loaded.metadata
    keep = {k: v for k, v in meta.items() if k in ("entry", "model", "plugin", "plugin_version", "arch_version",
                                                    "task", "dataset", "zoo_version", "created", "config", "sizes")}
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags: [zoo, gpt2]", "---", "",
             f"# {meta.get('entry') or 'zoo GPT'}", "",
             (f"A zoo `{GPT_MODEL}` model exported from `{Path(loaded.path).name}` to the GPT-2 layout: "
              f"{config['n_layer']} layers, {config['n_head']} heads, width {config['n_embd']}, "
              f"context {config['n_positions']}, vocabulary {config['vocab_size']} ({tok_name} tokenizer)."), "",
             "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")',
             'tok = AutoTokenizer.from_pretrained("THIS_FOLDER")',
             'ids = tok("Once upon a time", return_tensors="pt").input_ids',
             "print(tok.decode(model.generate(ids, max_new_tokens=50)[0]))", "```", "",
             ("Ids 0-3 are `<pad> <unk> <bos> <eos>`; `generation_config.json` suppresses them, as `zoo generate` "
              "does, and the tokenizer reads text such as `<eos>` as characters (`split_special_tokens`). "
              f"Prompts plus generated tokens must fit in the {config['n_positions']}-token context."), ""]
    metrics = meta.get("metrics") or {}
    rows = [(s, k, v) for s in ("val", "test") for k, v in (metrics.get(s) or {}).items() if isinstance(v, float)]
    if rows:
        lines += ["## Results (in zoo)", "", "| split | metric | value |", "|---|---|---|"]
        lines += [f"| {s} | {k} | {v:.6g} |" for s, k, v in rows] + [""]
    lines += ["## zoo metadata", "", "```json", json.dumps(keep, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)
