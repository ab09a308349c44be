"""A GPT-style decoder-only Transformer.

Token + learned position embeddings, pre-norm blocks of causal self-attention
(``F.scaled_dot_product_attention``) and an MLP, a final LayerNorm, and an output
head tied to the token embedding. Module and parameter names follow GPT-2
(``transformer.wte``, ``transformer.h.0.attn.c_attn``, ...) so that an export to
the Hugging Face GPT-2 layout is a rename plus the transpose of its Conv1D weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Model, Range, attention, float32_linear

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (B, nh, T, hs)


@dataclass
class GPTConfig:
    n_layer: Annotated[int, Range(1, 1024)] = 4
    n_head: Annotated[int, Range(1, 1024)] = 4
    n_embd: Annotated[int, Range(1, 65536)] = 128
    dropout: Annotated[float, Range(0, lt=1)] = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2
    # gelu: exact (erf); gelu_tanh: the tanh approximation, GPT-2's "gelu_new" (F.gelu(approximate="tanh"))
    activation: Literal["gelu", "relu", "gelu_tanh"] = "gelu"
    mlp_ratio: Annotated[int, Range(1, 64)] = 4  # MLP hidden width = mlp_ratio * n_embd
    layer_norm_epsilon: Annotated[float, Range(gt=0, lt=1)] = 1e-5  # every LayerNorm's eps (GPT-2's name)
    scale_attn_weights: bool = True  # attention scores divided by sqrt(head size); GPT-2 lets a config turn it off

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.scale = None if cfg.scale_attn_weights else 1.0  # None: SDPA's 1 / sqrt(head size)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, P + T, hs)
            v = torch.cat([past[1], v], dim=2)
        # with a cache, one new query attends to every cached key: no mask needed
        causal = past is None or T > 1
        if past is not None and T > 1:  # several new queries after a cache: explicit offset mask
            P = k.size(2) - T
            mask = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(diagonal=P)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        else:
            y = attention(q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0, scale=self.scale)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "gelu_tanh": lambda: nn.GELU(approximate="tanh")}


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.act = ACTIVATIONS[cfg.activation]()
        self.c_proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, past=None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT(Model):
    """``GPT(config, vocab_size=V, block_size=T)``; the task owns the context length."""

    Config = GPTConfig
    arch_version = 1

    def __init__(self, config: GPTConfig, vocab_size: int, block_size: int):
        super().__init__(config, vocab_size=vocab_size, block_size=block_size)
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, config.n_embd),
            wpe=nn.Embedding(block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"embeddings": [self.transformer.wte.weight, self.transformer.wpe.weight],
                  "final_norm": list(self.transformer.ln_f.parameters())}
        for i, block in enumerate(self.transformer.h):
            groups[f"block{i}"] = list(block.parameters())
        return groups

    def forward(self, idx: torch.Tensor, past: KVCache | None = None, return_cache: bool = False):
        """Logits (B, T, V) of the tokens ``idx`` (B, T); with ``past``, positions continue after it."""
        B, T = idx.shape
        start = past[0][0].size(2) if past else 0
        if start + T > self.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context of {self.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        cache: KVCache = []
        for i, block in enumerate(self.transformer.h):
            x, kv = block(x, past[i] if past else None)
            cache.append(kv)
        logits = self._logits(x)  # (B, T, V)
        return (logits, cache) if return_cache else logits

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head of :meth:`forward` and :meth:`decode_step`: final norm, tied projection, float32 under autocast."""
        return float32_linear(self.lm_head, self.transformer.ln_f(x))

    @torch.inference_mode()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True,
                 banned: list[int] | None = None) -> Iterator[torch.Tensor]:
        """Yield ``max_new_tokens`` next tokens (B,), one at a time; ids in ``banned`` are never produced.

        With the cache, the prompt is run once (:meth:`forward`) and each new token
        goes through :meth:`decode_step`, which writes its keys and values into a
        preallocated cache. Beyond the context the window slides: without the cache
        the model sees the last ``block_size`` tokens; with it, the cache is rebuilt
        from the last ``block_size // 2`` tokens whenever it is full (positions are
        absolute, so a cache cannot simply drop its oldest entry).
        """
        was_training = self.training
        self.eval()
        try:
            seq = idx[:, -self.block_size:]
            ban = None
            if banned:  # added to the logits: -inf at every banned id
                ban = torch.zeros(self.lm_head.out_features, device=idx.device)
                ban[banned] = float("-inf")
            cache: StaticCache | None = None
            for _ in range(max_new_tokens):
                if not use_cache:
                    logits = self(seq[:, -self.block_size:])[:, -1, :]  # (B, V)
                elif cache is None or cache.length >= self.block_size:
                    context = seq if cache is None else seq[:, -(self.block_size // 2):]
                    logits, past = self(context, return_cache=True)
                    cache = StaticCache.from_past(past, self.block_size)
                    logits = logits[:, -1, :]
                else:
                    logits = self.decode_step(seq[:, -1], cache)
                logits = logits.float() if ban is None else logits.float() + ban
                nxt = sample(logits, temperature, top_k, generator)  # (B,)
                # the window never needs more than block_size tokens
                seq = torch.cat([seq[:, -(self.block_size - 1):], nxt[:, None]], dim=1)
                yield nxt
        finally:
            self.train(was_training)

    def decode_step(self, token: torch.Tensor, cache: StaticCache) -> torch.Tensor:
        """Logits (B, V) after one new token (B,) at position ``cache.length``; appends to ``cache``.

        The same arithmetic as :meth:`forward` with a cache, written with functional
        ops on the modules' own parameters: per generated token it skips about 40
        ``nn.Module`` calls, the dropout calls and the growing ``torch.cat`` of keys
        and values. The head is the forward's (:meth:`_logits`, float32 logits under
        autocast); ``tests/test_gpt.py`` checks it against :meth:`forward`, in float32
        and under bfloat16 autocast.
        """
        cfg, tr = self.config, self.transformer
        pos = cache.length
        B, C, nh = token.size(0), cfg.n_embd, cfg.n_head
        act = tr.h[0].mlp.act  # the MLP's own activation module (n_layer >= 1)
        x = (tr.wte.weight[token] + tr.wpe.weight[pos])[:, None, :]  # (B, 1, C)
        for i, block in enumerate(tr.h):
            ln1, attn, ln2, mlp = block.ln_1, block.attn, block.ln_2, block.mlp
            h = F.layer_norm(x, (C,), ln1.weight, ln1.bias, ln1.eps)
            qkv = _linear(attn.c_attn, h)  # (B, 1, 3C)
            q, k, v = qkv.view(B, 3, nh, 1, C // nh).unbind(1)  # each (B, nh, 1, hs)
            cache.keys[i][:, :, pos : pos + 1] = k
            cache.values[i][:, :, pos : pos + 1] = v
            y = F.scaled_dot_product_attention(q, cache.keys[i][:, :, : pos + 1], cache.values[i][:, :, : pos + 1],
                                               scale=attn.scale)
            x = x + _linear(attn.c_proj, y.reshape(B, 1, C))  # (B, 1, C)
            h = F.layer_norm(x, (C,), ln2.weight, ln2.bias, ln2.eps)
            x = x + _linear(mlp.c_proj, act(_linear(mlp.c_fc, h)))
        cache.length = pos + 1
        return self._logits(x[:, 0])  # (B, V), the forward's own head


def _linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without the module call for a plain ``nn.Linear``; any other layer (e.g. an int8
    dynamically quantized one, see zoo.inference.int8) is called."""
    return F.linear(x, layer.weight, layer.bias) if type(layer) is nn.Linear else layer(x)


class StaticCache:
    """Keys and values of every layer in preallocated (B, nh, block_size, hs) buffers."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int):
        self.keys, self.values, self.length = keys, values, length

    @classmethod
    def from_past(cls, past: KVCache, block_size: int) -> StaticCache:
        keys, values = [], []
        for k, v in past:  # (B, nh, T, hs)
            B, nh, T, hs = k.shape
            kb, vb = k.new_empty(B, nh, block_size, hs), v.new_empty(B, nh, block_size, hs)
            kb[:, :, :T], vb[:, :, :T] = k, v
            keys.append(kb)
            values.append(vb)
        return cls(keys, values, past[0][0].size(2))


def sample(logits: torch.Tensor, temperature: float, top_k: int | None,
           generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``logits`` (B, V): greedy at temperature 0, else top-k sampling.

    Sampling uses the exponential race: ``argmax(p_i / E_i)`` with ``E_i ~ Exp(1)``
    picks ``i`` with probability ``p_i`` (the Gumbel-max trick in another form);
    on a CPU it costs about half of ``torch.multinomial`` per token.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    ids = None
    if top_k is not None and top_k < logits.size(-1):
        logits, ids = torch.topk(logits, top_k, dim=-1)  # (B, k) each
    probs = F.softmax(logits, dim=-1)
    race = torch.empty_like(probs).exponential_(generator=generator)
    choice = (probs / race).argmax(-1, keepdim=True)  # (B, 1)
    return (choice if ids is None else ids.gather(-1, choice))[:, 0]
