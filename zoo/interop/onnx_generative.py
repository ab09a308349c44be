"""ONNX for the generative models: zoo's GPT, and the seq2py Transformer encoder-decoder.

- GPT (``lm:gpt``): one graph, ``ids`` (B, T), ``past_keys`` / ``past_values`` (L, B, H, P, D)
  -> ``logits`` (B, T, V), ``present_keys`` / ``present_values`` (L, B, H, P + T, D). The tokens
  continue after the P cached positions; P = 0 (empty past arrays) is a whole block without a cache.
  P + T must not pass the context (``sizes.block_size``).
- seq2py (``seq2py:transformer-seq2seq``): two graphs. ``FILE.onnx``, the encoder: ``src`` (B, S)
  -> ``memory`` (B, S, C). ``FILE.decoder.onnx``, one decoder step: ``ids`` (B,), ``src`` (B, S),
  ``src_ext`` (B, S), ``memory``, ``past_keys`` / ``past_values`` (L, B, H, t, D) -> ``logprobs``
  (B, V + S: the target vocabulary, then the copy positions), ``present_keys`` / ``present_values``.

The graphs restate the models' forward passes with tensor operations whose shapes ONNX can
follow (the cache length read from the past arrays, the attention mask built from it); each
file is run in onnxruntime on other shapes than the traced ones and refused unless it matches
zoo's own forward within :data:`TOLERANCE`. The JSON sidecar holds the tokenizers' states.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, first_line

MODELS = {"lm:gpt": "gpt", "seq2py:transformer-seq2seq": "seq2seq-transformer"}
TOLERANCE = 1e-4  # fp32, onnxruntime against zoo's forward
OPSET = 17


def family(loaded: Any) -> str | None:
    return MODELS.get(loaded.metadata.get("model", ""))


def _gpt_graph(model: Any) -> Any:
    import torch
    import torch.nn.functional as F

    class GPTWithCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids, past_keys, past_values):
            tr, nh = self.model.transformer, self.model.config.n_head
            start, T = past_keys.shape[3], ids.shape[1]
            pos = torch.arange(T, device=ids.device) + start  # (T,)
            mask = torch.arange(start + T, device=ids.device)[None, :] <= pos[:, None]  # (T, P + T)
            x = tr.wte(ids) + tr.wpe(pos)  # (B, T, C)
            keys, values = [], []
            for i, block in enumerate(tr.h):
                q, k, v = block.attn.c_attn(block.ln_1(x)).chunk(3, dim=-1)
                q, k, v = (t.unflatten(-1, (nh, -1)).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
                k, v = torch.cat([past_keys[i], k], 2), torch.cat([past_values[i], v], 2)  # (B, nh, P + T, hs)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=block.attn.scale)
                x = x + block.attn.c_proj(y.transpose(1, 2).flatten(2))
                x = x + block.mlp(block.ln_2(x))
                keys.append(k)
                values.append(v)
            return self.model.lm_head(tr.ln_f(x)), torch.stack(keys), torch.stack(values)

    return GPTWithCache().eval()


def _seq2seq_graphs(model: Any) -> tuple[Any, Any]:
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, src):
            return self.model.encode(src)[0]  # (B, S, C)

    class DecoderStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids, src, src_ext, memory, past_keys, past_values):
            m = self.model
            mem_mask = (src != m.pad_id)[:, None, None, :]  # (B, 1, 1, S)
            start = past_keys.shape[3]
            tok = ids[:, None].masked_fill(ids[:, None] >= m.tgt_vocab, 1)  # copied ids read as <unk>
            x = m.tgt_embed(tok) + m.tgt_pos(torch.arange(1, device=ids.device) + start)  # (B, 1, C)
            keys, values = [], []
            for i, block in enumerate(m.decoder):
                h = block.ln1(x)
                k, v = block.self_attn.keys_values(h)
                k, v = torch.cat([past_keys[i], k], 2), torch.cat([past_values[i], v], 2)
                x = x + block.self_attn(h, k, v, None)
                x = x + block.cross_attn(block.ln2(x), *block.cross_attn.keys_values(memory), mem_mask)
                x = x + block.mlp(block.ln3(x))
                keys.append(k)
                values.append(v)
            copy_k = m.copy_k(memory) if m.config.copy else None
            logp = m._output(m.dec_ln(x), memory, mem_mask, src_ext, copy_k)[:, 0]  # (B, V + S)
            return logp, torch.stack(keys), torch.stack(values)

    return Encoder().eval(), DecoderStep().eval()


def _past(n_layer: int, batch: int, heads: int, length: int, head_size: int) -> Any:
    import torch

    return torch.randn(n_layer, batch, heads, length, head_size)


def _gpt_ids(model: Any, batch: int, length: int) -> Any:
    import torch

    return torch.arange(batch * length).reshape(batch, length) * 7 % model.lm_head.out_features


def _run_gpt(model: Any, ids: Any, past: int) -> tuple[Any, Any, Any]:
    """zoo's own forward: the prefix through the model with its cache, then the rest."""
    import torch

    cfg = model.config
    hs = cfg.n_embd // cfg.n_head
    if past:
        _, cache = model(ids[:, :past], return_cache=True)
        pk = torch.stack([k for k, _ in cache])
        pv = torch.stack([v for _, v in cache])
    else:
        pk = pv = torch.zeros(cfg.n_layer, ids.size(0), cfg.n_head, 0, hs)
    return pk, pv, model(ids)[:, past:]


def _check_gpt(model: Any, path: Path, where: Any) -> float:
    """Largest logit difference, onnxruntime against zoo: a fresh block, then caches of 3 and 4 positions."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, past, length in ((2, 0, 5), (1, 3, 1), (3, 4, 2)):
        length = min(length, model.block_size - past)
        ids = _gpt_ids(model, batch, past + length)
        with torch.no_grad():
            pk, pv, want = _run_gpt(model, ids, past)
        got = session.run(None, {"ids": ids[:, past:].numpy(), "past_keys": pk.numpy(), "past_values": pv.numpy()})
        worst = max(worst, float((torch.from_numpy(got[0]) - want).abs().max()))
        if got[1].shape[3] != past + length:
            raise ZooError(f"{where}: the ONNX graph's cache has {got[1].shape[3]} positions, not {past + length}")
    return worst


def _export(graph: Any, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict, where: Any) -> None:
    import torch

    try:
        import onnx  # noqa: F401  (the exporter writes the file with it)
    except ImportError:
        raise ZooError("ONNX export needs the onnx package: pip install 'zoo[onnx]'") from None
    with warnings.catch_warnings():  # the TorchScript exporter's notes on traced shapes and its deprecation
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                                  output_names=outputs, dynamic_axes=axes)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ZooError(f"{where}: cannot be exported to ONNX (opset {OPSET}): {first_line(exc, limit=300)}") from exc


CACHE = {0: "layers", 1: "batch", 3: "positions"}


def export_gpt(loaded: Any, out: Path) -> dict[str, Any]:
    """Write the GPT graph to ``out``; the sidecar's graph description."""
    from zoo.sdk.atomic import atomic_path

    model = copy.deepcopy(loaded.model).float().cpu().eval()
    cfg = model.config
    graph = _gpt_graph(model)
    hs = cfg.n_embd // cfg.n_head
    ids = _gpt_ids(model, 2, 5)
    example = (ids[:, 2:], _past(cfg.n_layer, 2, cfg.n_head, 2, hs), _past(cfg.n_layer, 2, cfg.n_head, 2, hs))
    axes = {"ids": {0: "batch", 1: "length"}, "past_keys": CACHE, "past_values": CACHE,
            "logits": {0: "batch", 1: "length"}, "present_keys": CACHE, "present_values": CACHE}
    names = ["ids", "past_keys", "past_values"], ["logits", "present_keys", "present_values"]
    with atomic_path(out) as tmp:
        _export(graph, example, tmp, *names, axes, loaded.path)
        diff = _verified(lambda: _check_gpt(model, tmp, loaded.path), loaded.path, tmp)
    return {"graphs": {"model": out.name}, "max_abs_diff": diff, "cache_shape": [cfg.n_layer, cfg.n_head, hs],
            "inputs": {
        "ids": "int64 (batch, length): token ids continuing after the cached positions",
        "past_keys": f"float32 ({cfg.n_layer} layers, batch, {cfg.n_head} heads, past, {hs}): zeros of past 0 "
                     "for a fresh start", "past_values": "float32, as past_keys"},
        "outputs": {"logits": "float32 (batch, length, vocab)", "present_keys": "float32 (layers, batch, heads, "
                    "past + length, head size): feed back as past_keys", "present_values": "as present_keys"}}


def _verified(check: Any, where: Any, path: Path) -> float | None:
    """``check()``'s largest difference, refused above :data:`TOLERANCE`; None without onnxruntime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    diff = check()
    if not diff <= TOLERANCE:
        raise ZooError(f"{where}: the ONNX graph differs from zoo by {diff:.3g} (more than {TOLERANCE}); not written")
    return diff


def _check_seq2seq(model: Any, enc_path: Path, dec_path: Path) -> float:
    """Largest difference, onnxruntime against zoo's teacher-forced forward, over several decoder steps."""
    import onnxruntime as ort
    import torch

    enc = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(dec_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, length, steps in ((3, 6, 3), (1, 2, 2)):
        src = (torch.arange(batch * length).reshape(batch, length) % (model.src_embed.num_embeddings - 4)) + 4
        src[1:, length - 1:] = 0  # padding in all rows but the first
        src_ext = src.clone()
        tgt = torch.full((batch, steps), 2)  # <bos>, then target ids
        tgt[:, 1:] = (torch.arange(batch * (steps - 1)).reshape(batch, steps - 1) % (model.tgt_vocab - 4)) + 4
        with torch.no_grad():
            want = model(src, src_ext, tgt)  # teacher-forced log-probabilities (B, T, V + S)
        memory = enc.run(None, {"src": src.numpy()})[0]
        with torch.no_grad():
            worst = max(worst, float((torch.from_numpy(memory) - model.encode(src)[0]).abs().max()))
        L, H, D = len(model.decoder), model.config.n_head, model.config.d_model // model.config.n_head
        pk = pv = torch.zeros(L, batch, H, 0, D).numpy()
        for t in range(steps):
            logp, pk, pv = dec.run(None, {"ids": tgt[:, t].numpy(), "src": src.numpy(), "src_ext": src_ext.numpy(),
                                          "memory": memory, "past_keys": pk, "past_values": pv})
            close = want[:, t] > -1e8  # the -1e9 fill of never-emitted ids is not a probability
            worst = max(worst, float((torch.from_numpy(logp) - want[:, t])[close].abs().max()))
    return worst


def export_seq2seq(loaded: Any, out: Path) -> dict[str, Any]:
    """Write the encoder to ``out`` and one decoder step beside it; the sidecar's graph description."""
    import torch

    from zoo.sdk.atomic import atomic_path

    model = copy.deepcopy(loaded.model).float().cpu().eval()
    encoder, step = _seq2seq_graphs(model)
    dec_out = out.with_name(out.stem + ".decoder.onnx")
    L, H, D = len(model.decoder), model.config.n_head, model.config.d_model // model.config.n_head
    src = torch.tensor([[5, 6, 7, 8], [5, 9, 0, 0]])
    with torch.no_grad():
        memory = model.encode(src)[0]
    cache = {0: "layers", 1: "batch", 3: "steps"}
    with atomic_path(out) as enc_tmp, atomic_path(dec_out) as dec_tmp:
        _export(encoder, (src,), enc_tmp, ["src"], ["memory"],
                {"src": {0: "batch", 1: "length"}, "memory": {0: "batch", 1: "length"}}, loaded.path)
        _export(step, (torch.tensor([2, 2]), src, src, memory, _past(L, 2, H, 2, D), _past(L, 2, H, 2, D)), dec_tmp,
                ["ids", "src", "src_ext", "memory", "past_keys", "past_values"],
                ["logprobs", "present_keys", "present_values"],
                {"ids": {0: "batch"}, "src": {0: "batch", 1: "length"}, "src_ext": {0: "batch", 1: "length"},
                 "memory": {0: "batch", 1: "length"}, "past_keys": cache, "past_values": cache,
                 "logprobs": {0: "batch", 1: "vocab_and_copies"}, "present_keys": cache, "present_values": cache},
                loaded.path)
        diff = _verified(lambda: _check_seq2seq(model, enc_tmp, dec_tmp), loaded.path, enc_tmp)
    return {"graphs": {"encoder": out.name, "decoder_step": dec_out.name}, "max_abs_diff": diff,
            "inputs": {"encoder": {"src": "int64 (batch, length): source ids, right-padded with 0"},
                       "decoder_step": {"ids": "int64 (batch,): the previous target id (<bos> = 2 first)",
                                        "src": "as the encoder's", "src_ext": "int64 (batch, length): source ids "
                                        "with in-sentence ids for copyable words (the task's src_ext)",
                                        "memory": "the encoder's output",
                                        "past_keys": f"float32 ({L} layers, batch, {H} heads, steps, {D}): "
                                                     "zeros of 0 steps first", "past_values": "as past_keys"}},
            "outputs": {"encoder": {"memory": "float32 (batch, length, d_model)"},
                        "decoder_step": {"logprobs": "float32 (batch, target vocab + length): log-probabilities "
                                         "of the next id; ids past the vocabulary copy source position id - vocab",
                                         "present_keys": "feed back as past_keys", "present_values": "as keys"}}}


def export_generative(loaded: Any, out: Path) -> Path:
    """Write the graph(s) of a GPT or seq2py model and ``FILE.json`` beside them; return ``out``."""
    from zoo.sdk.atomic import atomic_write
    from zoo.interop.onnx_sidecar import FORMAT, PREPROCESS, VERSION, preprocess_source

    kind = family(loaded)
    graphs = export_gpt(loaded, out) if kind == "gpt" else export_seq2seq(loaded, out)
    meta = loaded.metadata
    side = {"format": FORMAT, "version": VERSION, "family": kind, "opset": OPSET, **graphs,
            "zoo_version": meta.get("zoo_version"), "entry": meta.get("entry"), "model": meta.get("model"),
            "task": meta.get("task"), "exported": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "task_config": {k: v for k, v in loaded.resolved.data["task"].items() if k != "name"},
            "sizes": meta.get("sizes", {}), "tokenizers": meta["tokenizers"], "tolerance": TOLERANCE}
    atomic_write(out.with_suffix(".json"), json.dumps(side, indent=1, ensure_ascii=False) + "\n")
    atomic_write(out.parent / PREPROCESS, preprocess_source())  # encodes and decodes a GPT's text
    return out
