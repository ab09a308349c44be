"""An LSTM encoder-decoder with dot attention, for zoo's seq2seq task."""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo import Model


@dataclass
class LSTMSeq2SeqConfig:
    emb_dim: int = 64
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0


class LSTMSeq2Seq(Model):
    Config = LSTMSeq2SeqConfig
    arch_version = 1

    def __init__(self, config: LSTMSeq2SeqConfig, src_vocab: int, tgt_vocab: int, pad_id: int):
        super().__init__(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, pad_id=pad_id)
        c = config
        self.pad_id = pad_id
        self.src_embed = nn.Embedding(src_vocab, c.emb_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, c.emb_dim, padding_idx=pad_id)
        drop = c.dropout if c.layers > 1 else 0.0
        self.encoder = nn.LSTM(c.emb_dim, c.hidden, c.layers, batch_first=True, dropout=drop)
        self.decoder = nn.LSTM(c.emb_dim, c.hidden, c.layers, batch_first=True, dropout=drop)
        self.combine = nn.Linear(2 * c.hidden, c.hidden)
        self.head = nn.Linear(c.hidden, tgt_vocab)

    def encode(self, src, src_lengths):
        packed = pack_padded_sequence(self.src_embed(src), src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, H)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_lengths.to(src.device)[:, None]
        return out, state, mask

    def decode(self, tgt_in, state, enc, mask):
        y, state = self.decoder(self.tgt_embed(tgt_in), state)  # (B, T, H)
        scores = (y @ enc.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf"))  # (B, T, S)
        ctx = scores.softmax(-1) @ enc  # (B, T, H)
        return self.head(torch.tanh(self.combine(torch.cat([ctx, y], -1)))), state  # (B, T, V)

    def forward(self, src, src_lengths, tgt_in, teacher_forcing: float = 1.0):
        enc, state, mask = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0:
            return self.decode(tgt_in, state, enc, mask)[0]
        inp, steps = tgt_in[:, :1], []
        for t in range(tgt_in.size(1)):
            logits, state = self.decode(inp, state, enc, mask)  # (B, 1, V)
            steps.append(logits)
            if t + 1 < tgt_in.size(1):
                gold = torch.rand(tgt_in.size(0), 1, device=tgt_in.device) < teacher_forcing
                inp = torch.where(gold, tgt_in[:, t + 1:t + 2], logits.argmax(-1))
        return torch.cat(steps, 1)

    @torch.no_grad()
    def generate(self, src, src_lengths, max_len: int, bos_id: int, eos_id: int):
        enc, state, mask = self.encode(src, src_lengths)
        inp = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
        out = torch.full((src.size(0), max_len), self.pad_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for t in range(max_len):
            logits, state = self.decode(inp, state, enc, mask)
            inp = logits.argmax(-1)  # (B, 1)
            out[:, t] = inp[:, 0].masked_fill(done, self.pad_id)
            done |= inp[:, 0] == eos_id
            if bool(done.all()):
                break
        return out
