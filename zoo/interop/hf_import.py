"""A local GPT-2-layout folder in as a zoo run folder (``zoo import hf DIR --entry text-gpt --out RUN``).

The run folder holds what ``zoo train`` would leave after zero epochs:
``config.toml``, ``tokenizers.json``, ``model.safetensors`` (a zoo artifact, so
``zoo eval``, ``zoo generate`` and ``zoo.load`` work on it), ``checkpoint.safetensors``
(so ``zoo train --resume RUN --set train.epochs=N`` fine-tunes it) and a ``README.md``.
The entry supplies the dataset, training and optimizer settings; the folder
supplies the model sizes and the tokenizer. Only ``model.safetensors`` weights are
read (never a pickled ``pytorch_model.bin``), and nothing is downloaded.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from zoo.config import merge
from zoo.errors import ConfigError, ZooError, first_line
from zoo.interop import gpt2, hf_tokenizer

RUN_FILES = ("config.toml", "tokenizers.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl")
SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "mlp_ratio", "bias", "activation")  # fixed by the weights


def read_config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(f"{src}: no config.json; not a Hugging Face model folder") from None
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise ZooError(f"{path}: not a JSON object")
    return cfg


def weight_files(src: Path) -> list[Path]:
    """The safetensors files of a folder: one ``model.safetensors`` or the shards its index names."""
    single, index = src / "model.safetensors", src / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise ZooError(f"{index}: not a safetensors index ({exc})") from exc
        return [src / s for s in shards]
    hint = " (it has pytorch_model.bin: zoo never unpickles; save it with safe_serialization)" \
        if (src / "pytorch_model.bin").is_file() else ""
    raise ZooError(f"{src}: no model.safetensors{hint}")


def read_weights(src: Path, n_layer: int) -> dict[str, Any]:
    """GPT-2 body tensors by name without ``transformer.`` (GPT2Model and GPT2LMHeadModel both read)."""
    from safetensors import safe_open

    found: dict[str, Any] = {}
    for path in weight_files(src):
        try:
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():
                    found[key.removeprefix("transformer.")] = fh.get_tensor(key)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ZooError(f"{path}: cannot read it as safetensors ({exc})") from exc
    missing = [n for n in gpt2.tensor_names(n_layer) if n not in found]
    if missing:
        raise ZooError(f"{src}: the weights have no {missing[0]} (config.json says n_layer={n_layer})")
    head = found.get("lm_head.weight")
    if head is not None and not bool((head == found["wte.weight"]).all()):
        raise ZooError(f"{src}: lm_head.weight differs from wte.weight (an untied head); zoo's gpt ties them")
    return found


def zoo_state(w: dict[str, Any], n_layer: int, shift: int, eos: int | None, block_size: int) -> dict[str, Any]:
    """The zoo GPT state dict: Linear weights transposed back, ids moved up by ``shift``, positions cut."""
    import torch

    state: dict[str, torch.Tensor] = {}
    for name in gpt2.tensor_names(n_layer):
        value = w[name].float() if w[name].dtype != torch.float32 else w[name]
        if name.split(".", 2)[-1] in gpt2.CONV1D:
            value = value.t()  # Conv1D (in, out) -> nn.Linear (out, in)
        state[f"transformer.{name}"] = value.contiguous()
    wte = state["transformer.wte.weight"]
    if shift:  # rows of the specials in front: <bos> and <eos> start as the source's end-of-text token
        front = wte.new_zeros(shift, wte.shape[1])
        if eos is not None and 0 <= eos < wte.shape[0]:
            front[2:4] = wte[eos]
        wte = torch.cat([front, wte])
    state["transformer.wte.weight"] = state["lm_head.weight"] = wte
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:block_size].contiguous()
    return state


def plan(src: Path, entry: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], str, int]:
    """(resolved config, GPT-2 config.json, tokenizer json, id shift); every size checked against the weights."""
    from zoo import api

    cfg = read_config(src)
    spec_model = api.resolve_entry(entry, {k: v for k, v in overrides.items() if k == "dataset"})
    model, problems = gpt2.zoo_model_config(cfg, gpt2.zoo_activations(spec_model.cls("model").Config))
    if spec_model.specs["model"].id != "lm:gpt" or spec_model.specs["task"].id != "lm:lm":
        problems.append(f"entry {spec_model.entry} trains {spec_model.specs['model'].id} on "
                        f"{spec_model.specs['task'].id}; import into a GPT language-model entry (text-gpt, gpt-lm)")
    try:
        tok_json, shift = hf_tokenizer.read_bpe(src)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ZooError(f"{src}: cannot import into zoo: {'; '.join(problems)}")
    given = overrides.get("model", {})
    for key in SHAPE_KEYS:
        if key in given and given[key] != model[key]:
            raise ConfigError(f"model.{key}={given[key]!r} does not fit the weights in {src}, which have "
                              f"{key}={model[key]!r}; drop the override")
    if "tokenizer" in overrides:
        raise ConfigError(f"tokenizer settings cannot be overridden: the tokenizer comes from {src}")
    n_positions = int(cfg.get("n_positions", cfg.get("n_ctx", 1024)))
    block = overrides.get("task", {}).get("block_size", n_positions)
    if not isinstance(block, int) or not 1 <= block <= n_positions:
        raise ConfigError(f"task.block_size={block!r} does not fit: the weights in {src} hold {n_positions} "
                          f"positions; give 1..{n_positions}")
    vocab = hf_tokenizer.vocab_size(json.loads(tok_json))
    merged = merge(overrides, {"model": {**model, **{k: v for k, v in given.items() if k not in SHAPE_KEYS}},
                               "task": {"block_size": block},
                               "tokenizer": {"name": "bpe", "vocab_size": max(vocab, 260)}})
    return api.resolve_entry(entry, merged), cfg, tok_json, shift


def import_hf(src_dir: str | Path, entry: str = "text-gpt", out: str | Path | None = None, *,
              overrides: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Read the GPT-2 folder ``src_dir`` into a zoo run folder ``out`` for ``entry``; return ``out``.

    ``overrides`` are ``zoo train``-style settings (``{"dataset": {"files": [...]}, "train": {...}}``):
    the dataset and training settings the run will fine-tune with, ``model.dropout``, and a
    ``task.block_size`` up to the folder's ``n_positions``. Model sizes and the tokenizer come
    from the folder; an override that contradicts them is refused, naming both values.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise ZooError(f"{src}: no such folder (zoo imports a local folder only; nothing is downloaded)")
    resolved, cfg, tok_json, shift = plan(src, entry, overrides or {})
    out = Path(out) if out is not None else Path("runs") / src.name
    present = [f for f in RUN_FILES if (out / f).exists()]
    if out.exists() and not out.is_dir():
        raise ZooError(f"out={out} is a file, not a folder")
    if present and not force:
        raise ZooError(f"{out} already holds a run ({', '.join(present)}); use force=True to replace it, or another out=")
    tok = resolved.cls("tokenizer.text")(resolved.configs["tokenizer.text"])
    tok.set_state({"tokenizer_json": tok_json})
    task = resolved.cls("task")(resolved.configs["task"], {"text": tok})
    sizes = task.model_sizes()
    mcfg = resolved.configs["model"]
    weights = read_weights(src, mcfg.n_layer)
    rows = weights["wte.weight"].shape[0] + shift
    if rows != sizes["vocab_size"]:
        raise ZooError(f"{src}: the embedding has {weights['wte.weight'].shape[0]} rows but the tokenizer has "
                       f"{sizes['vocab_size'] - shift} ids; they must match")
    model = resolved.cls("model")(mcfg, **sizes)
    state = zoo_state(weights, mcfg.n_layer, shift, cfg.get("eos_token_id"), sizes["block_size"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ZooError(f"{src}: the weights do not fit zoo's gpt with config.json's sizes: "
                       f"{first_line(exc, limit=10_000)}") from exc
    write_run(out, resolved, model, task, src, shift)
    return out


def write_run(out: Path, resolved: Any, model: Any, task: Any, src: Path, shift: int) -> None:
    """config.toml, tokenizers.json, the artifact, a zero-epoch checkpoint and README.md, each atomically."""
    from zoo import api
    from zoo._version import __version__
    from zoo.config import dumps_toml
    from zoo.sdk.atomic import atomic_write
    from zoo.store.artifact import save

    spec = resolved.specs["model"]
    info = api.plugin_state().plugins.get(spec.plugin)
    tokenizers = {"text": {"name": resolved.specs["tokenizer.text"].id, "state": task.tokenizers["text"].get_state()}}
    meta = {"zoo_version": __version__, "entry": resolved.entry, "model": spec.id, "plugin": spec.plugin,
            "plugin_version": info.version if info else "", "arch_version": str(spec.load().arch_version),
            "task": resolved.specs["task"].id, "dataset": resolved.specs["dataset"].id, "config": resolved.data,
            "sizes": task.model_sizes(), "tokenizers": tokenizers, "metrics": {}, "reference": {},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "imported_from": str(src.resolve())}
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:  # --force: nothing of an earlier run may mix with this one
        (out / name).unlink(missing_ok=True)
    atomic_write(out / "config.toml", dumps_toml(resolved.data))
    atomic_write(out / "tokenizers.json", json.dumps(tokenizers, indent=1))
    save_start_checkpoint(out / "checkpoint.safetensors", model, task, resolved)
    save(out / "model.safetensors", model, meta)
    atomic_write(out / "README.md", run_card(resolved, src, shift, meta["sizes"]))


def save_start_checkpoint(path: Path, model: Any, task: Any, resolved: Any) -> None:
    """The checkpoint ``zoo train --resume`` continues from: no epoch done, a fresh optimizer."""
    import dataclasses

    from zoo.store.checkpoint import save_checkpoint
    from zoo.training.trainer import Trainer

    tcfg = dataclasses.replace(resolved.configs["train"], device="cpu")
    trainer = Trainer(model, task, tcfg, resolved.configs["optim"])
    save_checkpoint(path, trainer.checkpoint_state())


def run_card(resolved: Any, src: Path, shift: int, sizes: dict[str, int]) -> str:
    moved = ("Token ids are the folder's ids + 4: ids 0-3 are zoo's `<pad> <unk> <bos> <eos>` (`<bos>` and "
             "`<eos>` start as the folder's end-of-text embedding, the others at zero)." if shift else
             "Token ids are the folder's own (it already had zoo's specials at ids 0-3).")
    return "\n".join([
        f"# {resolved.entry}: imported from {src.name}", "",
        (f"GPT-2 weights read from `{src.resolve()}` into zoo's `{resolved.specs['model'].id}` "
         f"({sizes['vocab_size']} ids, context {sizes['block_size']}). {moved}"), "",
        "- evaluate: `zoo eval THIS_FOLDER`", "- generate: `zoo generate THIS_FOLDER --prompt '...'`",
        ("- fine-tune: `zoo train --resume THIS_FOLDER --set train.epochs=N` (the dataset and training settings "
         "are the ones in config.toml)"), ""])
