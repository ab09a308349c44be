"""A local GPT-2-layout folder in as a zoo run folder (``zoo import hf DIR --out RUN``).

The run folder holds what ``zoo train`` would leave after zero epochs:
``config.toml``, ``tokenizers.json``, ``model.safetensors`` (a zoo artifact, so
``zoo generate``, ``zoo predict``, ``zoo serve``, ``zoo eval --set dataset.files=...`` and
``zoo.load`` work on it), ``checkpoint.safetensors`` (so ``zoo train --resume RUN
--set dataset.files=...`` fine-tunes it) and a ``README.md``. No dataset is needed
to import: the entry (``text-gpt`` unless told) supplies the training and optimizer
settings, the folder the model sizes, its maths (activation, LayerNorm epsilon,
attention scaling) and the tokenizer. Only ``model.safetensors`` weights are read
(never a pickled ``pytorch_model.bin``), and nothing is downloaded.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

from zoo.config import merge
from zoo.errors import ConfigError, ZooError, first_line
from zoo.interop import gpt2, hf_tokenizer
from zoo.runtime.untrusted import check_build, clip, loads
from zoo.interop.folder import inside

RUN_FILES = ("config.toml", "tokenizers.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl")
SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "mlp_ratio", "bias", "activation", "layer_norm_epsilon",
              "scale_attn_weights")  # fixed by the folder: its weights and its maths


def read_config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    try:
        cfg = loads(inside(src, "config.json").read_text(encoding="utf-8"))
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
        return [inside(src, single.name)]
    if index.is_file():
        try:
            names = loads(inside(src, index.name).read_text(encoding="utf-8"))["weight_map"].values()
            shards = sorted(set(names), key=str)
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ZooError(f"{index}: not a safetensors index ({clip(exc)})") from exc
        return [inside(src, s, named_by=index) for s in shards]
    hint = " (it has pytorch_model.bin: zoo never unpickles; save it with safe_serialization)" \
        if (src / "pytorch_model.bin").is_file() else ""
    raise ZooError(f"{src}: no model.safetensors{hint}")


def stored_values(src: Path) -> int:
    """How many values the folder's weights hold, from their headers (no tensor is read)."""
    from zoo.store.artifact import read_header

    headers = [read_header(path)[0] for path in weight_files(src)]
    return sum(math.prod(t["shape"]) for header in headers for t in header.values())


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
    """(resolved config, GPT-2 config.json, tokenizer state, id shift); every size checked against the weights."""
    from zoo import api

    cfg = read_config(src)
    spec_model = api.resolve_entry(entry, {k: v for k, v in overrides.items() if k == "dataset"})
    model, problems = gpt2.zoo_model_config(cfg, gpt2.zoo_activations(spec_model.cls("model").Config))
    if spec_model.specs["model"].id != "lm:gpt" or spec_model.specs["task"].id != "lm:lm":
        problems.append(f"entry {spec_model.entry} trains {spec_model.specs['model'].id} on "
                        f"{spec_model.specs['task'].id}; import into a GPT language-model entry (text-gpt, gpt-lm)")
    try:
        tok_state, shift = hf_tokenizer.read_bpe(src, cfg.get("eos_token_id"))
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
    vocab = hf_tokenizer.vocab_size(json.loads(tok_state["tokenizer_json"]))
    merged = merge(overrides, {"model": {**model, **{k: v for k, v in given.items() if k not in SHAPE_KEYS}},
                               "task": {"block_size": block},
                               "tokenizer": {"name": "bpe", "vocab_size": max(vocab, 260)}})
    return api.resolve_entry(entry, merged), cfg, tok_state, shift


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
    resolved, cfg, tok_state, shift = plan(src, entry, overrides or {})
    out = Path(out) if out is not None else Path("runs") / src.name
    present = [f for f in RUN_FILES if (out / f).exists()]
    if out.exists() and not out.is_dir():
        raise ZooError(f"out={out} is a file, not a folder")
    if present and not force:
        raise ZooError(f"{out} already holds a run ({', '.join(present)}); use force=True to replace it, or another out=")
    tok = resolved.cls("tokenizer.text")(resolved.configs["tokenizer.text"])
    tok.set_state(tok_state)
    task = resolved.cls("task")(resolved.configs["task"], {"text": tok})
    sizes = task.model_sizes()
    mcfg = resolved.configs["model"]
    check_build(src, resolved.cls("model"), mcfg, sizes, stored=stored_values(src) + shift * mcfg.n_embd,
                error=ZooError)  # the sizes come from config.json: refuse what the weights cannot fill
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
    write_run(out, resolved, model, task, src, source_layout(src, cfg, shift))
    return out


def source_layout(src: Path, cfg: dict[str, Any], shift: int) -> dict[str, Any]:
    """What ``zoo export --format hf`` needs to give the folder back with its own ids (artifact metadata)."""
    data, _ = hf_tokenizer.source_json(src)
    ids = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if isinstance(cfg.get(k), int)}
    return {"id_shift": shift, **ids, "special_tokens": hf_tokenizer.special_tokens(data or {}, cfg),
            "activation_function": cfg.get("activation_function", "gelu_new")}


def write_run(out: Path, resolved: Any, model: Any, task: Any, src: Path, source: dict[str, Any]) -> None:
    """config.toml, tokenizers.json, the artifact, a zero-epoch checkpoint and README.md, each atomically."""
    from zoo import api
    from zoo._version import __version__
    from zoo.config import dumps_toml
    from zoo.sdk.atomic import atomic_write
    from zoo.store.artifact import save
    from zoo.store.rundir import write_marker

    spec = resolved.specs["model"]
    info = api.plugin_state().plugins.get(spec.plugin)
    tokenizers = {"text": {"name": resolved.specs["tokenizer.text"].id, "state": task.tokenizers["text"].get_state()}}
    meta = {"zoo_version": __version__, "entry": resolved.entry, "model": spec.id, "plugin": spec.plugin,
            "plugin_version": info.version if info else "", "arch_version": str(spec.load().arch_version),
            "task": resolved.specs["task"].id, "dataset": resolved.specs["dataset"].id, "config": resolved.data,
            "sizes": task.model_sizes(), "tokenizers": tokenizers, "metrics": {}, "reference": {},
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "imported_from": str(src.resolve()),
            "hf_source": json.dumps(source, sort_keys=True)}  # a string: only zoo's own keys are decoded as JSON
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:  # --force: nothing of an earlier run may mix with this one
        (out / name).unlink(missing_ok=True)
    write_marker(out)  # a run folder zoo wrote (see zoo.store.rundir)
    atomic_write(out / "config.toml", dumps_toml(resolved.data))
    atomic_write(out / "tokenizers.json", json.dumps(tokenizers, indent=1))
    save_start_checkpoint(out / "checkpoint.safetensors", model, task, resolved)
    save(out / "model.safetensors", model, meta)
    atomic_write(out / "README.md", run_card(resolved, src, source["id_shift"], meta["sizes"]))


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
             "Token ids are the folder's own; its end-of-text token stands for zoo's `<pad> <unk> <bos> <eos>` "
             "(or it already had zoo's specials at ids 0-3).")
    return "\n".join([
        f"# {resolved.entry}: imported from {src.name}", "",
        (f"GPT-2 weights read from `{src.resolve()}` into zoo's `{resolved.specs['model'].id}` "
         f"({sizes['vocab_size']} ids, context {sizes['block_size']}). {moved}"), "",
        "- generate: `zoo generate THIS_FOLDER --prompt '...'`; predict: `zoo predict THIS_FOLDER 'text'`; "
        "serve: `zoo serve THIS_FOLDER`",
        "- evaluate: `zoo eval THIS_FOLDER --set 'dataset.files=[\"my.txt\"]'`",
        ("- fine-tune: `zoo train --resume THIS_FOLDER --set 'dataset.files=[\"my.txt\"]' --set train.epochs=N` "
         "(the dataset may be chosen until the first epoch; the training settings are the ones in config.toml)"),
        "- back to transformers: `zoo export THIS_FOLDER --format hf --out DIR` (the folder's own ids)", ""])
