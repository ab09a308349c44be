"""Transformer encoder-decoder for English -> code, with an optional copy (pointer) mechanism.

Encoder: token + learned position embeddings -> N pre-norm blocks (self-attention, MLP).
Decoder: token + learned position embeddings -> M pre-norm blocks (causal self-attention,
cross-attention over the encoder, MLP) -> final norm -> vocabulary logits.

Copy (pointer-generator, See et al. 2017): one more attention from the decoder's last
state over the encoder's outputs gives a distribution over source positions; a gate
``p_gen`` mixes ``p_gen * softmax(logits)`` with ``(1 - p_gen) * attention`` scattered
onto the target ids of the source tokens. Source words missing from the target
vocabulary get *extended* ids ``V + i`` (``i``: the word's first position in the
source), so the model can emit words it never saw as targets. Because the output is a
mixture of distributions, :meth:`forward` returns log-probabilities (not logits) over
``V + S`` ids, with or without copying.

Decoding runs step by step with cached keys and values: greedy, or beam search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo import Model, Range, attention, float32_linear


@dataclass
class TransformerSeq2SeqConfig:
    d_model: Annotated[int, Range(1, 65536)] = 256
    n_head: Annotated[int, Range(1, 1024)] = 8
    d_ff: Annotated[int, Range(1, 262_144)] = 512  # hidden size of each block's MLP
    enc_layers: Annotated[int, Range(1, 1024)] = 3
    dec_layers: Annotated[int, Range(1, 1024)] = 4
    dropout: Annotated[float, Range(0, lt=1)] = 0.15
    max_len: Annotated[int, Range(1, 2**20)] = 1000  # learned positions, source and target each
    copy: bool = True  # pointer-generator copying from the source

    def validate(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention``; keys/values may come from a cache."""

    def __init__(self, cfg: TransformerSeq2SeqConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # (B, H, T, C/H)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.heads(k), self.heads(v)  # (B, H, S, C/H) each

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                causal: bool = False) -> torch.Tensor:
        b, t, c = x.shape
        q = self.heads(self.q(x))  # (B, H, T, C/H)
        p = self.dropout if self.training else 0.0
        y = attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal and mask is None)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))  # (B, T, C)


class MLP(nn.Sequential):
    def __init__(self, cfg: TransformerSeq2SeqConfig):
        super().__init__(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout),
                         nn.Linear(cfg.d_ff, cfg.d_model))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: TransformerSeq2SeqConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.d_model), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.drop(self.attn(h, *self.attn.keys_values(h), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: TransformerSeq2SeqConfig):
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ln2, self.cross_attn = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ln3, self.mlp = nn.LayerNorm(cfg.d_model), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, self_kv: tuple[torch.Tensor, torch.Tensor], self_mask: torch.Tensor | None,
                mem_kv: tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.ln1(x), *self_kv, self_mask, causal=self_mask is None))
        x = x + self.drop(self.cross_attn(self.ln2(x), *mem_kv, mem_mask))
        return x + self.drop(self.mlp(self.ln3(x)))


class TransformerSeq2Seq(Model):
    """``forward(src, src_ext, tgt_in) -> log-probs (B, T, V + S)``; ``greedy`` / ``beam_search`` decode."""

    Config = TransformerSeq2SeqConfig
    arch_version = 1

    def __init__(self, config: TransformerSeq2SeqConfig | None = None, *, src_vocab: int, tgt_vocab: int,
                 pad_id: int = 0, **sizes: int):
        super().__init__(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, pad_id=pad_id, **sizes)
        cfg = self.config
        self.pad_id, self.tgt_vocab = pad_id, tgt_vocab
        self.src_embed = nn.Embedding(src_vocab, cfg.d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, cfg.d_model, padding_idx=pad_id)
        self.src_pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.tgt_pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.enc_layers))
        self.enc_ln = nn.LayerNorm(cfg.d_model)
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.dec_layers))
        self.dec_ln = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, tgt_vocab)
        if cfg.copy:
            self.copy_q = nn.Linear(cfg.d_model, cfg.d_model)
            self.copy_k = nn.Linear(cfg.d_model, cfg.d_model)
            self.copy_gate = nn.Linear(2 * cfg.d_model, 1)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=cfg.d_model ** -0.5)
            emb.weight.data[pad_id].zero_()
        for pos in (self.src_pos, self.tgt_pos):
            nn.init.normal_(pos.weight, std=0.02)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``embeddings`` (the token embeddings, which pretrained vectors initialise), ``positions``,
        ``encoder``, ``decoder`` and ``output`` (final projection and copy layers)."""
        groups: dict[str, list[nn.Parameter]] = {
            "embeddings": [self.src_embed.weight, self.tgt_embed.weight],
            "positions": [self.src_pos.weight, self.tgt_pos.weight],
            "encoder": [*self.encoder.parameters(), *self.enc_ln.parameters()],
            "decoder": [*self.decoder.parameters(), *self.dec_ln.parameters()],
        }
        seen = {id(p) for ps in groups.values() for p in ps}
        groups["output"] = [p for p in self.parameters() if id(p) not in seen]
        return groups

    def set_embeddings(self, src: torch.Tensor | None, tgt: torch.Tensor | None) -> None:
        """Copy pretrained (V, d_model) matrices into the token embeddings."""
        with torch.no_grad():
            for emb, matrix in ((self.src_embed, src), (self.tgt_embed, tgt)):
                if matrix is not None:
                    emb.weight.copy_(matrix.to(emb.weight.device, emb.weight.dtype))

    # -- encoder
    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs (B, S, C) and the key mask (B, 1, 1, S): True where a real token is."""
        b, s = src.shape
        if s > self.config.max_len:
            raise ValueError(f"source of {s} tokens is longer than max_len={self.config.max_len}")
        mask = (src != self.pad_id)[:, None, None, :]  # (B, 1, 1, S)
        x = self.drop(self.src_embed(src) + self.src_pos(torch.arange(s, device=src.device)))  # (B, S, C)
        for block in self.encoder:
            x = block(x, mask)
        return self.enc_ln(x), mask

    # -- decoder
    def _output(self, h: torch.Tensor, memory: torch.Tensor, mem_mask: torch.Tensor,
                src_ext: torch.Tensor, copy_k: torch.Tensor | None) -> torch.Tensor:
        """Log-probabilities (B, T, V + S) of the next token from decoder states ``h`` (B, T, C)."""
        logits = float32_linear(self.out, h)  # (B, T, V), float32 under autocast
        b, t, _ = h.shape
        s = memory.size(1)
        if copy_k is None:
            logp = F.log_softmax(logits, dim=-1)
            return F.pad(logp, (0, s), value=-1e9)  # extended ids are never emitted without copying
        scores = (self.copy_q(h) @ copy_k.transpose(1, 2)).float() / math.sqrt(h.size(-1))  # (B, T, S)
        scores = scores.masked_fill(~mem_mask[:, 0], float("-inf"))
        attn = scores.softmax(-1)  # a distribution we need as such: the copy probabilities
        context = attn.to(memory.dtype) @ memory  # (B, T, C)
        gate = torch.sigmoid(self.copy_gate(torch.cat([h, context], -1)).float())  # (B, T, 1)
        probs = torch.cat([gate * logits.softmax(-1), logits.new_zeros(b, t, s)], -1)  # (B, T, V + S)
        probs = probs.scatter_add(2, src_ext[:, None, :].expand(b, t, s), (1 - gate) * attn)
        return probs.clamp_min(1e-12).log()

    def _embed_tgt(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        ids = ids.masked_fill(ids >= self.tgt_vocab, 1)  # extended (copied) ids read as <unk> (id 1)
        pos = torch.arange(start, start + ids.size(1), device=ids.device)
        return self.drop(self.tgt_embed(ids) + self.tgt_pos(pos))  # (B, T, C)

    def forward(self, src: torch.Tensor, src_ext: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (B, T, V + S) of the targets after ``tgt_in``."""
        memory, mem_mask = self.encode(src)
        t = tgt_in.size(1)
        if t > self.config.max_len:
            raise ValueError(f"target of {t} tokens is longer than max_len={self.config.max_len}")
        pad = (tgt_in != self.pad_id)[:, None, None, :]  # (B, 1, 1, T)
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()
        self_mask = causal & pad | torch.eye(t, dtype=torch.bool, device=tgt_in.device)  # a row never empty
        x = self._embed_tgt(tgt_in, 0)
        for block in self.decoder:
            h = block.ln1(x)
            x = x + block.drop(block.self_attn(h, *block.self_attn.keys_values(h), self_mask))
            x = x + block.drop(block.cross_attn(block.ln2(x), *block.cross_attn.keys_values(memory), mem_mask))
            x = x + block.drop(block.mlp(block.ln3(x)))
        h = self.dec_ln(x)
        return self._output(h, memory, mem_mask, src_ext, self.copy_k(memory) if self.config.copy else None)

    # -- step-by-step decoding with a key/value cache
    def _start(self, src: torch.Tensor) -> dict[str, object]:
        memory, mem_mask = self.encode(src)
        return {
            "memory": memory, "mem_mask": mem_mask,
            "mem_kv": [block.cross_attn.keys_values(memory) for block in self.decoder],
            "self_kv": [None] * len(self.decoder),
            "copy_k": self.copy_k(memory) if self.config.copy else None,
            "t": 0,
        }

    def _step(self, state: dict, ids: torch.Tensor, src_ext: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V + S) after feeding one token per sequence ``ids`` (N,)."""
        x = self._embed_tgt(ids[:, None], state["t"])  # (N, 1, C)
        for i, block in enumerate(self.decoder):
            h = block.ln1(x)
            k, v = block.self_attn.keys_values(h)  # (N, H, 1, C/H)
            if state["self_kv"][i] is not None:
                pk, pv = state["self_kv"][i]
                k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
            state["self_kv"][i] = (k, v)
            x = x + block.self_attn(h, k, v, None)  # the cache holds only earlier tokens: no mask needed
            x = x + block.cross_attn(block.ln2(x), *state["mem_kv"][i], state["mem_mask"])
            x = x + block.mlp(block.ln3(x))
        state["t"] += 1
        h = self.dec_ln(x)
        return self._output(h, state["memory"], state["mem_mask"], src_ext, state["copy_k"])[:, 0]

    @staticmethod
    def _select(state: dict, index: torch.Tensor, memory: bool = True) -> None:
        """Keep rows ``index`` of the cached tensors (beam reordering); ``memory=False`` leaves the
        encoder's tensors alone (reordering beams within an example does not change them)."""
        if memory:
            for key in ("memory", "mem_mask", "copy_k"):
                if state[key] is not None:
                    state[key] = state[key].index_select(0, index)
            state["mem_kv"] = [(k.index_select(0, index), v.index_select(0, index)) for k, v in state["mem_kv"]]
        state["self_kv"] = [None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))
                            for kv in state["self_kv"]]

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_ext: torch.Tensor, max_len: int, bos_id: int, eos_id: int) -> list[list[int]]:
        """The likeliest token at every step, until <eos> or ``max_len`` tokens; ids without bos/eos."""
        b = src.size(0)
        state = self._start(src)
        ids = torch.full((b,), bos_id, dtype=torch.long, device=src.device)
        out: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for _ in range(min(max_len, self.config.max_len)):
            ids = self._step(state, ids, src_ext).argmax(-1)  # (B,)
            for i in (~done).nonzero().flatten().tolist():
                if ids[i].item() != eos_id:
                    out[i].append(int(ids[i]))
            done |= ids == eos_id
            if bool(done.all()):
                break
        return out

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, src_ext: torch.Tensor, max_len: int, bos_id: int, eos_id: int,
                    beam: int = 5, length_penalty: float = 1.0, n_best: int | None = None) -> list:
        """Beam search; an example stops when ``beam`` hypotheses have ended (so ``beam=1`` is greedy),
        and its ended hypotheses are ranked by log-probability / length ** ``length_penalty``.

        A hypothesis cut off at ``max_len`` without ``<eos>`` is returned only when none ended:
        with length normalisation, a loop of likely tokens (quote after quote) would otherwise outrank
        every complete program. With ``n_best``, every example gets its ``n_best`` best hypotheses
        as (score, ids) pairs, in that order."""
        b, k = src.size(0), beam
        dev = src.device
        rows = torch.arange(b, device=dev).repeat_interleave(k)  # (B*K,) example of each beam row
        state = self._start(src)
        self._select(state, rows)
        ext = src_ext.index_select(0, rows)
        ids = torch.full((b * k,), bos_id, dtype=torch.long, device=dev)
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all beams start identical: only the first one may expand
        history = torch.zeros(b * k, 0, dtype=torch.long, device=dev)
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
        steps = min(max_len, self.config.max_len)
        for t in range(steps):
            logp = self._step(state, ids, ext)  # (B*K, V+S)
            n = logp.size(-1)
            cand = (scores.view(-1, 1) + logp).view(b, k * n)  # (B, K*(V+S))
            top, idx = cand.topk(2 * k, dim=-1)  # twice the beam: finished ones leave, the rest stay
            beam_of, tok = idx // n, idx % n
            new_scores = torch.full((b, k), float("-inf"), device=dev)
            new_rows = torch.zeros(b, k, dtype=torch.long, device=dev)
            new_tok = torch.full((b, k), eos_id, dtype=torch.long, device=dev)
            top_l, beam_l, tok_l = top.tolist(), beam_of.tolist(), tok.tolist()
            for i in range(b):
                if len(finished[i]) >= k:  # this example is done: K hypotheses have ended
                    continue
                j = 0
                for score, bi, ti in zip(top_l[i], beam_l[i], tok_l[i]):
                    if score == float("-inf") or j >= k:
                        break
                    ended = ti == eos_id
                    if ended or t == steps - 1:
                        seq = history[i * k + bi].tolist() + ([] if ended else [ti])
                        finished[i].append((ended, score / max(1, len(seq) + 1) ** length_penalty, seq))
                        if len(finished[i]) >= k:
                            break
                        continue
                    new_scores[i, j], new_rows[i, j], new_tok[i, j] = score, i * k + bi, ti
                    j += 1
                if len(finished[i]) >= k:
                    new_scores[i] = float("-inf")
            if bool(torch.isinf(new_scores).all()):
                break
            flat_rows = new_rows.view(-1)  # rows of the same example: encoder tensors stay as they are
            self._select(state, flat_rows, memory=False)
            history = torch.cat([history.index_select(0, flat_rows), new_tok.view(-1, 1)], 1)
            ids, scores = new_tok.view(-1), new_scores
        ranked = [sorted(f, key=lambda c: c[:2], reverse=True) for f in finished]  # ended first, then score
        if n_best is None:
            return [r[0][2] if r else [] for r in ranked]
        return [[(score, seq) for _, score, seq in r[:n_best]] for r in ranked]
