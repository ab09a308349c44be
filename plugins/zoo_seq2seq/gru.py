"""GRU encoder-decoder (seq2seq) with optional Luong attention.

Encoder: embedding -> dropout -> (bi)GRU over packed sequences.
Decoder: embedding -> dropout -> GRU -> [Luong attention] -> dropout -> linear.
Attention is Luong-style without input feeding, so with full teacher forcing the
whole target sequence runs through the decoder GRU in a single fused call.
"""
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo import Model, Range


@dataclass
class GRUSeq2SeqConfig:
    emb_dim: Annotated[int, Range(1, 65536)] = 128  # token embedding size (encoder and decoder)
    # GRU hidden size (bidirectional encoder: hidden // 2 per direction)
    hidden: Annotated[int, Range(1, 65536)] = 256
    layers: Annotated[int, Range(1, 1024)] = 3  # stacked GRU layers in encoder and decoder
    dropout: Annotated[float, Range(0, lt=1)] = 0.5  # on embeddings, between GRU layers and before the output layer
    # every parameter ~ U(-init_range, init_range); <= 0 keeps PyTorch init
    init_range: Annotated[float, Range(le=10, note="<= 0 keeps PyTorch's init")] = 0.08
    bidirectional_encoder: bool = False  # fwd/bwd final states are concatenated per layer
    attention: Literal["none", "dot", "general"] = "none"  # Luong attention over encoder outputs
    tie_embeddings: bool = False  # decoder output layer shares the decoder embedding (needs emb_dim == hidden)

    def validate(self) -> None:
        if self.bidirectional_encoder and self.hidden % 2:
            raise ValueError(f"bidirectional_encoder needs an even hidden size, got {self.hidden}")
        if self.tie_embeddings and self.emb_dim != self.hidden:
            raise ValueError(f"tie_embeddings needs emb_dim == hidden, got {self.emb_dim} and {self.hidden}")


class Encoder(nn.Module):
    def __init__(self, cfg: GRUSeq2SeqConfig, vocab: int, pad_id: int):
        super().__init__()
        self.bidirectional = cfg.bidirectional_encoder
        self.embed = nn.Embedding(vocab, cfg.emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = nn.GRU(
            cfg.emb_dim,
            cfg.hidden // 2 if self.bidirectional else cfg.hidden,
            num_layers=cfg.layers,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            bidirectional=self.bidirectional,
            batch_first=True,
        )

    def forward(self, src, src_lengths):
        x = self.drop(self.embed(src))  # (B, S, E)
        lengths = src_lengths.cpu()
        if bool((lengths == src.size(1)).all()):
            # No padding anywhere: packing would be a no-op, and on CPU its backward is
            # markedly slower (per-step slices of the packed input each get a full-size grad).
            out, h = self.rnn(x)  # out: (B, S, H), h: (L * D, B, H / D)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, h = self.rnn(packed)  # h: (L * D, B, H / D)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, H)
        if self.bidirectional:
            L, B = self.rnn.num_layers, src.size(0)
            h = h.view(L, 2, B, -1).transpose(1, 2).reshape(L, B, -1)  # (L, B, H)
        return out, h


class LuongAttention(nn.Module):
    """score(h_t, h_s) = h_t . h_s ("dot") or h_t . W h_s ("general"); h~ = tanh(W_c [c; h_t])."""

    def __init__(self, hidden: int, kind: str):
        super().__init__()
        self.proj = nn.Linear(hidden, hidden, bias=False) if kind == "general" else nn.Identity()
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)

    def forward(self, dec_out, enc_out, src_mask):
        keys = self.proj(enc_out)  # (B, S, H)
        scores = torch.bmm(dec_out, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~src_mask[:, None, :], float("-inf"))
        ctx = torch.bmm(scores.softmax(dim=-1), enc_out)  # (B, T, H)
        return torch.tanh(self.combine(torch.cat([ctx, dec_out], dim=-1)))  # (B, T, H)


class Decoder(nn.Module):
    def __init__(self, cfg: GRUSeq2SeqConfig, vocab: int, pad_id: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = nn.GRU(
            cfg.emb_dim,
            cfg.hidden,
            num_layers=cfg.layers,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            batch_first=True,
        )
        self.attn = LuongAttention(cfg.hidden, cfg.attention) if cfg.attention != "none" else None
        self.out = nn.Linear(cfg.hidden, vocab)
        if cfg.tie_embeddings:
            self.out.weight = self.embed.weight

    def forward(self, tgt_in, h, enc_out, src_mask):
        """Runs all T steps of tgt_in at once (or one step when T == 1); returns logits and new state."""
        x = self.drop(self.embed(tgt_in))  # (B, T, E)
        y, h = self.rnn(x, h)  # y: (B, T, H), h: (L, B, H)
        if self.attn is not None:
            y = self.attn(y, enc_out, src_mask)  # (B, T, H)
        return self.out(self.drop(y)), h  # (B, T, V)


class GRUSeq2Seq(Model):
    Config = GRUSeq2SeqConfig
    arch_version = 1

    def __init__(self, config: GRUSeq2SeqConfig, src_vocab: int, tgt_vocab: int, pad_id: int):
        super().__init__(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, pad_id=pad_id)
        self.pad_id = pad_id
        self.encoder = Encoder(config, src_vocab, pad_id)
        self.decoder = Decoder(config, tgt_vocab, pad_id)
        if config.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -config.init_range, config.init_range)

    def encode(self, src, src_lengths):
        enc_out, h = self.encoder(src, src_lengths)  # (B, S, H), (L, B, H)
        src_mask = torch.arange(src.size(1), device=src.device)[None, :] < src_lengths.to(src.device)[:, None]  # (B, S)
        return enc_out, h, src_mask

    def forward(self, src, src_lengths, tgt_in, teacher_forcing: float = 1.0):
        enc_out, h, src_mask = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0:
            logits, _ = self.decoder(tgt_in, h, enc_out, src_mask)  # (B, T, V)
            return logits
        # Scheduled sampling: per step and per example, feed the gold token with
        # probability `teacher_forcing`, else the model's previous argmax.
        B, T = tgt_in.shape
        inp = tgt_in[:, :1]  # (B, 1)
        steps = []
        for t in range(T):
            step_logits, h = self.decoder(inp, h, enc_out, src_mask)  # (B, 1, V)
            steps.append(step_logits)
            if t + 1 < T:
                use_gold = torch.rand(B, 1, device=tgt_in.device) < teacher_forcing
                inp = torch.where(use_gold, tgt_in[:, t + 1 : t + 2], step_logits.argmax(-1))  # (B, 1)
        return torch.cat(steps, dim=1)  # (B, T, V)

    @torch.no_grad()
    def generate(self, src, src_lengths, max_len: int, bos_id: int, eos_id: int):
        """Greedy decoding, one step at a time; positions after an emitted eos hold pad."""
        enc_out, h, src_mask = self.encode(src, src_lengths)
        B = src.size(0)
        inp = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        out = torch.full((B, max_len), self.pad_id, dtype=torch.long, device=src.device)  # (B, max_len)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for t in range(max_len):
            step_logits, h = self.decoder(inp, h, enc_out, src_mask)  # (B, 1, V)
            inp = step_logits.argmax(-1)  # (B, 1)
            out[:, t] = inp[:, 0].masked_fill(done, self.pad_id)
            done |= inp[:, 0] == eos_id
            if bool(done.all()):
                break
        return out
