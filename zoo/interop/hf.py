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
    check_folder(Path(out_dir), force)  # before any work
    if meta.get("model") != GPT_MODEL:
        raise ZooError(f"{loaded.path}: model {meta.get('model')} is not zoo's GPT ({GPT_MODEL}); only GPT "
                       "language models export to Hugging Face (classifiers and taggers: --format onnx)")
    if meta.get("weights") == "int8":
        raise ZooError(f"{loaded.path} holds int8 weights; export its float32 artifact to Hugging Face")
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
    source = hf_source(meta)
    state = meta["tokenizers"]["text"]["state"]
    if tok_name == hf_tokenizer.BPE and (source.get("id_shift") or "specials" in state):
        # imported: give the folder back with its own ids and special tokens
        files = hf_tokenizer.source_files(state, source, sizes["block_size"])
        own = {} if source.get("id_shift") else {"bos_token_id": specials["bos"], "eos_token_id": specials["eos"],
                                                 "pad_token_id": specials["pad"]}  # the kept ids' specials
        generation = source_ids(config, tensors, {**own, **source}, generation)
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
    if eps != {config["layer_norm_epsilon"]}:
        raise ZooError(f"{where}: LayerNorm eps {sorted(eps)} differs from the config's {config['layer_norm_epsilon']}")
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


def hf_source(meta: dict[str, Any]) -> dict[str, Any]:
    """What an imported artifact records of its source folder's ids (JSON text in its metadata); {} if none."""
    try:
        value = json.loads(meta.get("hf_source") or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def source_ids(config: dict[str, Any], tensors: dict[str, Any], source: dict[str, Any],
               generation: dict[str, Any]) -> dict[str, Any]:
    """Turn a zoo-layout export of an imported model back into its source's ids (in place); the generation config.

    zoo's four special rows in front of the embedding go (the source has its own end-of-text token);
    every other row is the source's, in its order, so the folder computes the source's logits.
    """
    shift = int(source.get("id_shift") or 0)
    if shift:
        tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"][shift:].contiguous()
        config["vocab_size"] -= shift
    act = source.get("activation_function")  # e.g. gelu_new: the same function as gelu_pytorch_tanh, written so
    if gpt2.FROM_HF_ACTIVATION.get(act) == gpt2.FROM_HF_ACTIVATION.get(config["activation_function"]):
        config["activation_function"] = act
    gen = {"do_sample": generation["do_sample"], "temperature": generation["temperature"], "top_k": 0}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config[key] = source.get(key)
        if source.get(key) is not None:
            gen[key] = source[key]
    return gen


# every file an export writes: all that --force ever replaces in a folder
EXPORT_FILES = ("config.json", "generation_config.json", "README.md", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "model.safetensors")


def check_folder(out: Path, force: bool) -> None:
    """``out`` may receive an export: missing or empty, or (with ``force``) holding an earlier one (a
    ``config.json``), whose files alone are replaced. A user's folder is never written into."""
    from zoo.sdk.atomic import check_replaceable, kind

    found = kind(out)
    if found not in ("none", "folder"):
        raise ZooError(f"out={out} is {'a file' if found == 'file' else 'not a folder'}; give a folder to write")
    if found == "none" or not any(out.iterdir()):
        return
    if not (out / "config.json").is_file():
        raise ZooError(f"out={out} is not empty and holds no config.json, so it is not an earlier export; zoo "
                       "leaves it alone: choose a new or empty folder")
    if not force:
        raise ZooError(f"out={out} holds an earlier export (config.json); choose another folder, or force=True to "
                       f"replace the export's own files there ({', '.join(EXPORT_FILES)}; others are kept)")
    for name in EXPORT_FILES:
        check_replaceable(out / name)


def write_folder(out: Path, files: dict[str, str], tensors: dict[str, Any], force: bool) -> Path:
    """Write ``files`` and ``model.safetensors`` into ``out``: a new folder whole, or (``force``) the export's
    files of an earlier export each replaced in one step, the folder's other entries left as they are."""
    from safetensors.torch import save_file

    check_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if out.is_dir() and any(out.iterdir()):
            for name in EXPORT_FILES:  # an earlier export: only its files, each replaced in one step
                os.replace(tmp / name, out / name)
        else:
            os.chmod(tmp, 0o777 & ~umask(out.parent))  # mkdtemp makes 0700
            if out.is_dir():
                out.rmdir()  # empty: nothing of anyone's is lost
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def model_card(loaded: Any, config: dict[str, Any], tok_name: str) -> str:
    """README.md: what the folder holds, how to load it, and the zoo metadata it came with."""
    meta = loaded.metadata
    source_layout = hf_source(meta).get("id_shift") or "specials" in meta["tokenizers"]["text"]["state"]
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
             (("Ids are those of the folder this model was imported from (zoo's four special ids taken out). "
               if source_layout else
               "Ids 0-3 are `<pad> <unk> <bos> <eos>`; `generation_config.json` suppresses them, as `zoo generate` "
               "does, and the tokenizer reads text such as `<eos>` as characters (`split_special_tokens`). ") +
              f"Prompts plus generated tokens must fit in the {config['n_positions']}-token context."), ""]
    metrics = meta.get("metrics") or {}
    rows = [(s, k, v) for s in ("val", "test") for k, v in (metrics.get(s) or {}).items() if isinstance(v, float)]
    if rows:
        lines += ["## Results (in zoo)", "", "| split | metric | value |", "|---|---|---|"]
        lines += [f"| {s} | {k} | {v:.6g} |" for s, k, v in rows] + [""]
    lines += ["## zoo metadata", "", "```json", json.dumps(keep, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)
