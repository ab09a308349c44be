"""An encoder-only Transformer tagger.

Word embeddings (plus, optionally, a character CNN over each word) and learned
position embeddings, pre-norm blocks of bidirectional self-attention
(``F.scaled_dot_product_attention`` with a key-padding mask) and an MLP, a final
LayerNorm and a per-token linear head. The head returns logits: the task applies
``F.cross_entropy`` to them.

With ``rel_pos``, every attention layer also learns a bias per head for each
relative distance (clipped, as in T5 / Shaw et al. 2018), added to the scores.
On CoNLL-2000 it is worth more than a point of accuracy: absolute positions
alone make the model learn "the word just before me" separately at every
position.

``members`` > 1 builds that many independently initialised copies of the tagger
(``members.0``, ``members.1``, ...): training fits each to the tags on its own
through the same batches (``forward(..., each=True)``), and ``forward`` returns
the log of their averaged probabilities per token. One member keeps the single
tagger's layout, so artifacts of before load unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo import Model, Range


@dataclass
class TransformerTaggerConfig:
    n_layer: Annotated[int, Range(1, 1024)] = 3
    n_head: Annotated[int, Range(1, 1024)] = 4
    d_model: Annotated[int, Range(1, 65536)] = 128
    mlp_ratio: Annotated[int, Range(1, 64)] = 4  # MLP hidden width = mlp_ratio * d_model
    dropout: Annotated[float, Range(0, lt=1)] = 0.1  # on embeddings, attention weights and residual branches
    activation: Literal["gelu", "relu"] = "gelu"
    # chance, while training, that a word reads as <unk>: trains the <unk> vector
    word_dropout: Annotated[float, Range(0, lt=1)] = 0.0
    char_features: bool = False  # add a character CNN's view of each word: helps with words never seen in training
    char_dim: Annotated[int, Range(1, 4096)] = 32  # character embedding width
    char_channels: Annotated[int, Range(1, 65536)] = 128  # CNN filters: the width of a word's character features
    char_kernel: Annotated[int, Range(1, 63, note="an odd number")] = 3  # CNN window, in characters
    # also a learned attention bias per head and relative distance, clipped at +-rel_pos (0: none)
    rel_pos: Annotated[int, Range(0, 65536)] = 0
    # the auxiliary head (built when the task has aux_labels) reads the output of this block, 1..n_layer,
    # through a norm of its own; 0: the last block's, as the main head
    aux_layer: Annotated[int, Range(0, 1024)] = 0
    # the blocks after aux_layer also read the auxiliary head's predicted distribution (e.g. a chunker reads
    # its own POS guesses), projected to the model's width and added to the hidden state; needs n_aux
    aux_feed: bool = False
    # copies of the whole tagger, each initialised and fitted on its own; predictions average their probabilities
    members: Annotated[int, Range(1, 64, note="1: one tagger")] = 1

    def validate(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        if self.char_kernel % 2 == 0:
            raise ValueError(f"char_kernel must be odd, got {self.char_kernel}")
        if self.aux_layer > self.n_layer:
            raise ValueError(f"aux_layer ({self.aux_layer}) must be at most n_layer ({self.n_layer}); 0: the last")


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerTaggerConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        # one bias per head and clipped relative distance -rel_pos .. +rel_pos
        self.rel_bias = nn.Embedding(2 * cfg.rel_pos + 1, cfg.n_head) if cfg.rel_pos else None

    def forward(self, x: torch.Tensor, keep: torch.Tensor, rel: torch.Tensor | None = None) -> torch.Tensor:
        """``keep`` (B, 1, 1, T): True for the keys of real tokens; ``rel`` (T, T): bucket of each distance."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        mask = keep
        if self.rel_bias is not None:  # an additive float mask: -inf hides padding
            bias = self.rel_bias(rel).permute(2, 0, 1).to(q.dtype)  # (nh, T, T)
            mask = bias.masked_fill(~keep, float("-inf"))  # (B, nh, T, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerTaggerConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: TransformerTaggerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, rel: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), keep, rel)
        return x + self.mlp(self.ln_2(x))


class CharCNN(nn.Module):
    """A word's characters -> one vector: embeddings, a convolution, max over the characters."""

    def __init__(self, cfg: TransformerTaggerConfig, char_vocab: int, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        self.emb = nn.Embedding(char_vocab, cfg.char_dim, padding_idx=pad_id)
        self.conv = nn.Conv1d(cfg.char_dim, cfg.char_channels, cfg.char_kernel, padding=cfg.char_kernel // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """``chars`` (U, W) -> (U, char_channels)."""
        real = chars != self.pad_id  # (U, W)
        h = self.conv(self.emb(chars).transpose(1, 2))  # (U, channels, W)
        h = F.relu(h).masked_fill(~real[:, None, :], 0.0)  # after ReLU every value is >= 0: 0 is a neutral pad
        return h.amax(dim=2)  # (U, channels)


class TransformerTagger(Model):
    """``TransformerTagger(config, vocab_size=V, n_tags=K, pad_id=0, max_len=T, ...)``."""

    Config = TransformerTaggerConfig
    arch_version = 1

    def __init__(self, config: TransformerTaggerConfig, vocab_size: int, n_tags: int, pad_id: int = 0,
                 unk_id: int = 1, char_vocab: int = 0, char_pad_id: int = 0, max_len: int = 128, n_aux: int = 0):
        super().__init__(config, vocab_size=vocab_size, n_tags=n_tags, pad_id=pad_id, unk_id=unk_id,
                         char_vocab=char_vocab, char_pad_id=char_pad_id, max_len=max_len, n_aux=n_aux)
        self.pad_id, self.unk_id, self.max_len = pad_id, unk_id, max_len
        if config.members > 1:
            one = replace(config, members=1)
            self.members = nn.ModuleList(
                TransformerTagger(one, vocab_size=vocab_size, n_tags=n_tags, pad_id=pad_id, unk_id=unk_id,
                                  char_vocab=char_vocab, char_pad_id=char_pad_id, max_len=max_len, n_aux=n_aux)
                for _ in range(config.members))
            return
        c = config.d_model
        self.wte = nn.Embedding(vocab_size, c)
        self.wpe = nn.Embedding(max_len, c)
        if config.char_features:
            if char_vocab < 1:
                raise ValueError("char_features needs char_vocab > 0 (the task's chars tokenizer)")
            self.chars = CharCNN(config, char_vocab, char_pad_id)
            self.char_proj = nn.Linear(config.char_channels, c)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(c)
        self.head = nn.Linear(c, n_tags)
        if n_aux:  # a second label set learned beside the first (e.g. POS tags for a chunker)
            self.aux_ln, self.aux_head = nn.LayerNorm(c), nn.Linear(c, n_aux)
        if config.aux_feed:
            if not n_aux:
                raise ValueError("model.aux_feed needs an auxiliary head: give the task aux_labels")
            self.aux_proj = nn.Linear(n_aux, c)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight") and name.startswith("blocks."):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * max(1, config.n_layer)))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.padding_idx is not None:  # a zero pad row: a word's features never see its batch's width
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Freeze groups by part (``embeddings``, ``chars``, ``blockI``, ``head``), across the members of an ensemble."""
        if self.config.members > 1:
            merged: dict[str, list[nn.Parameter]] = {}
            for member in self.members:
                for name, params in member.param_groups().items():
                    merged.setdefault(name, []).extend(params)
            return merged
        groups = {"embeddings": [self.wte.weight, self.wpe.weight], "head": [*self.ln_f.parameters(),
                                                                           *self.head.parameters()]}
        if self.config.char_features:
            groups["chars"] = [*self.chars.parameters(), *self.char_proj.parameters()]
        for i, block in enumerate(self.blocks):
            groups[f"block{i}"] = list(block.parameters())
        return groups

    def forward(self, words: torch.Tensor, chars: torch.Tensor | None = None, char_index: torch.Tensor | None = None,
                aux: bool = False, each: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, n_tags) of ``words`` (B, T); ``chars`` (U, W), ``char_index`` (B, T) as the task makes them.

        ``aux``: also the auxiliary head's logits (B, T, n_aux), as a second value. ``each``: every member's
        logits, (M, B, T, n_tags) (and (M, B, T, n_aux)); otherwise an ensemble gives the log of its members'
        mean probabilities.
        """
        if self.config.members == 1:
            out = self._forward(words, chars, char_index, aux)
            if not each:
                return out
            return tuple(o[None] for o in out) if aux else out[None]
        outs = [member(words, chars, char_index, aux=aux) for member in self.members]
        if not aux:
            return torch.stack(outs) if each else _mean_probs(outs)
        main, second = [o[0] for o in outs], [o[1] for o in outs]
        if each:
            return torch.stack(main), torch.stack(second)
        return _mean_probs(main), _mean_probs(second)

    def _forward(self, words: torch.Tensor, chars: torch.Tensor | None, char_index: torch.Tensor | None,
                 aux: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        B, T = words.shape
        if T > self.max_len:
            raise ValueError(f"a sentence of {T} tokens exceeds max_len {self.max_len}; the task cuts longer ones")
        real = words != self.pad_id  # (B, T)
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.config.word_dropout
            words = words.masked_fill(drop & real, self.unk_id)
        x = self.wte(words) + self.wpe(torch.arange(T, device=words.device))  # (B, T, C)
        if self.config.char_features:
            if chars is None or char_index is None:
                raise ValueError("this model has char_features: pass chars and char_index")
            x = x + self.char_proj(self.chars(chars))[char_index]  # (U, C) gathered to (B, T, C)
        x = self.drop(x)
        keep = real[:, None, None, :]  # (B, 1, 1, T): no query attends to padding
        rel = None
        if self.config.rel_pos:
            pos = torch.arange(T, device=words.device)
            rel = (pos[None, :] - pos[:, None]).clamp(-self.config.rel_pos, self.config.rel_pos) + self.config.rel_pos
        if aux and not hasattr(self, "aux_head"):
            raise ValueError("this model has no auxiliary head: it was built without n_aux (task.aux_labels)")
        aux_at = self.config.aux_layer or len(self.blocks)
        second = None
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, keep, rel)
            if i == aux_at and (aux or self.config.aux_feed):
                second = self.aux_head(self.aux_ln(x))  # (B, T, n_aux)
                if self.config.aux_feed:  # the later blocks read the predicted distribution
                    x = x + self.aux_proj(second.softmax(-1))
        logits = self.head(self.ln_f(x))  # (B, T, n_tags)
        return (logits, second) if aux else logits


def _mean_probs(logits: list[torch.Tensor]) -> torch.Tensor:
    """The log of the members' mean probabilities: ``logits`` M tensors (..., K) -> (..., K)."""
    stacked = torch.stack(logits).float().log_softmax(-1)
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))
