"""The GPT-2 layout: how zoo's ``gpt`` model maps onto a ``transformers`` ``GPT2LMHeadModel``, and back.

zoo's GPT uses GPT-2's module names (``transformer.h.0.attn.c_attn`` ...) with
``nn.Linear`` weights, stored (out, in); GPT-2 stores the same projections as
``Conv1D`` weights, (in, out). A conversion is therefore a transpose of four
weights per block plus a config translation, in which every option either has
an exact GPT-2 counterpart or is refused by name. This module does not import
torch: ``zoo info`` uses it to say whether a folder can be imported.
"""

from __future__ import annotations

import math
import typing
from typing import Any

# zoo gpt config fields this mapping knows; any other field is refused (it could change the maths)
ZOO_FIELDS = ("n_layer", "n_head", "n_embd", "dropout", "bias", "activation", "mlp_ratio", "layer_norm_epsilon",
              "scale_attn_weights")
LAYER_NORM_EPS = 1e-5  # zoo gpt's default layer_norm_epsilon (torch's nn.LayerNorm default) and GPT-2's
# zoo activation -> the transformers activation_function that computes the same function
TO_HF_ACTIVATION = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_pytorch_tanh"}
# transformers activation_function -> zoo activation ("gelu_new" is GPT-2's tanh approximation of GELU)
FROM_HF_ACTIVATION = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
# per-block weights stored transposed by GPT-2's Conv1D
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
PER_LAYER = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
             "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
             "mlp.c_proj.weight", "mlp.c_proj.bias")
GLOBAL = ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")


def tensor_names(n_layer: int) -> list[str]:
    """Every tensor of a GPT-2 body, without the ``transformer.`` prefix (the head is tied to ``wte``)."""
    return [*GLOBAL, *(f"h.{i}.{name}" for i in range(n_layer) for name in PER_LAYER)]


def zoo_activations(config_cls: type) -> tuple[str, ...]:
    """The activations the installed zoo gpt accepts (its config's ``Literal``)."""
    hint = typing.get_type_hints(config_cls).get("activation")
    return tuple(typing.get_args(hint)) or ("gelu", "relu")


def hf_config(model: dict[str, Any], vocab_size: int, block_size: int, specials: dict[str, int],
              activations: tuple[str, ...]) -> dict[str, Any]:
    """The ``config.json`` of a zoo gpt config; a :class:`ValueError` names an option GPT-2 cannot express."""
    unknown = sorted(k for k in model if k not in ZOO_FIELDS and k != "name")
    if unknown:
        raise ValueError(f"model.{unknown[0]} = {model[unknown[0]]!r} is an option the GPT-2 export does not know; "
                         "it cannot be exported without risking a different model")
    act = model.get("activation", "gelu")
    if act not in TO_HF_ACTIVATION or act not in activations:
        raise ValueError(f"model.activation = {act!r} has no exact GPT-2 counterpart "
                         f"(exported exactly: {', '.join(TO_HF_ACTIVATION)})")
    n_embd, dropout = int(model["n_embd"]), float(model.get("dropout", 0.0))
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": vocab_size, "n_positions": block_size, "n_ctx": block_size,
        "n_embd": n_embd, "n_layer": int(model["n_layer"]), "n_head": int(model["n_head"]),
        "n_inner": int(model.get("mlp_ratio", 4)) * n_embd, "activation_function": TO_HF_ACTIVATION[act],
        "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout,
        "layer_norm_epsilon": float(model.get("layer_norm_epsilon", LAYER_NORM_EPS)), "initializer_range": 0.02,
        "scale_attn_weights": bool(model.get("scale_attn_weights", True)), "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "add_cross_attention": False, "tie_word_embeddings": True, "use_cache": True,
        "bos_token_id": specials["bos"], "eos_token_id": specials["eos"], "pad_token_id": specials["pad"],
    }


def zoo_model_config(cfg: dict[str, Any], activations: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """(zoo gpt model config, problems) of a GPT-2 ``config.json``; any problem means it cannot be imported."""
    problems: list[str] = []
    kind = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if kind != "gpt2" and not any(str(a).startswith("GPT2") for a in archs):
        return {}, [f"model_type is {kind!r} ({', '.join(map(str, archs)) or 'no architectures'}), not 'gpt2'"]
    try:
        n_embd, n_head, n_layer = int(cfg.get("n_embd", 768)), int(cfg.get("n_head", 12)), int(cfg.get("n_layer", 12))
    except (TypeError, ValueError):
        return {}, ["n_embd, n_head and n_layer must be integers"]
    n_inner = cfg.get("n_inner") or 4 * n_embd
    if n_head < 1 or n_embd % n_head:
        problems.append(f"n_embd={n_embd} is not a multiple of n_head={n_head}")
    if n_inner % n_embd:
        problems.append(f"n_inner={n_inner} is not a multiple of n_embd={n_embd} (zoo's gpt has an integer mlp_ratio)")
    act = cfg.get("activation_function", "gelu_new")
    zoo_act = FROM_HF_ACTIVATION.get(act)
    if zoo_act not in activations:
        problems.append(f"activation_function={act!r}: zoo's gpt computes {', '.join(activations)} "
                        f"exactly, and {act!r} is none of them")
    try:
        eps = float(cfg.get("layer_norm_epsilon", LAYER_NORM_EPS))
    except (TypeError, ValueError):
        eps = math.nan
    if not 0 < eps < 1:
        problems.append(f"layer_norm_epsilon={cfg.get('layer_norm_epsilon')!r} (zoo's gpt takes a number in (0, 1))")
    for key, want in (("scale_attn_by_inverse_layer_idx", False), ("add_cross_attention", False)):
        if bool(cfg.get(key, want)) != want:
            problems.append(f"{key}={cfg.get(key)!r} (zoo's gpt has {key}={want})")
    model = {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "bias": True, "activation": zoo_act or act,
             "mlp_ratio": n_inner // n_embd if n_embd else 4, "dropout": float(cfg.get("resid_pdrop", 0.1)),
             "layer_norm_epsilon": eps, "scale_attn_weights": bool(cfg.get("scale_attn_weights", True))}
    return model, problems
