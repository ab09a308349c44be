"""An LSTM / GRU text classifier.

Embedding -> dropout -> a (bidirectional) LSTM or GRU run over packed sequences,
so padding never reaches the recurrence of a real token -> pooling over time (the last state,
the mean or the max over real tokens, or several of them concatenated) ->
dropout -> a linear head returning logits (the task applies ``F.cross_entropy``).

``members`` > 1 builds that many independently initialised copies of the network (an ensemble
in one model): training fits each copy to the labels on its own, through the same batches
(``forward(..., each=True)``), and ``forward`` returns the log of their averaged probabilities.
``bag`` > 0 adds a member of another kind (:class:`NgramBag`): a linear classifier over the
distinct words, word pairs and word triples of the text (a bag of n-grams, as NBSVM and fastText
use), trained and averaged the same way; it costs a few per cent of a network's time.

The embedding can start from pretrained vectors: ``vectors`` names a GloVe or
word2vec file, or ``"gensim"`` to train Word2Vec on the training texts first.
The task calls :meth:`RNNClassifier.init_embedding` once, on a fresh model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo import Model, Range

log = logging.getLogger(__name__)

POOLINGS = ("last", "mean", "max")


@dataclass
class RNNClassifierConfig:
    cell: Literal["lstm", "gru"] = "lstm"
    emb_dim: Annotated[int, Range(1, 65536)] = 32
    hidden: Annotated[int, Range(1, 65536)] = 100  # per direction
    layers: Annotated[int, Range(1, 1024)] = 1
    bidirectional: bool = False
    pooling: str = "last"  # "last", "mean", "max", or several joined by "+" (e.g. "max+mean"), concatenated
    dropout: Annotated[float, Range(0, lt=1)] = 0.0  # on the embeddings, between recurrent layers and before the head
    # GloVe / word2vec file (a relative path not found here is looked up in the data dir, $ZOO_DATA_DIR),
    # or "gensim" (Word2Vec trained on the training texts); none: random
    vectors: str | None = None
    freeze_embedding: bool = False  # keep pretrained vectors fixed (words without one stay random, fixed too)
    gensim_epochs: Annotated[int, Range(1, 10_000)] = 5  # Word2Vec passes over the training texts (vectors = "gensim")
    # hashed word-pair embeddings: each word's input also gets the vector of (previous word, word), one of this
    # many buckets (started at zero; a region embedding of size 2); 0: none
    bigrams: Annotated[int, Range(0, 2**24, note="0: none")] = 0
    # the same for the three words ending at each position, a table of its own; 0: none
    trigrams: Annotated[int, Range(0, 2**24, note="0: none")] = 0
    packed: bool = True  # pack_padded_sequence; false: padded tensors laid out so padding still never reaches a
    # real token's state (same outputs, see RNNClassifier): torch 2.x's packed LSTM/GRU backward on CPU is 5-10x slower
    # copies of the whole network, each initialised and fitted on its own; predictions average their probabilities
    members: Annotated[int, Range(1, 64, note="1: one network")] = 1
    # one more member of another kind: a linear classifier over the text's distinct words, and its word pairs and
    # word triples each hashed into this many buckets (NgramBag), fitted on its own loss and averaged in; 0: none
    bag: Annotated[int, Range(0, 2**24, note="0: none")] = 0

    def validate(self) -> None:
        for name in ("bigrams", "trigrams"):  # declared above too; kept for callers of validate() alone
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: none), got {getattr(self, name)}")
        bad = [p for p in self.pooling.split("+") if p not in POOLINGS]
        if bad or not self.pooling:
            raise ValueError(f"pooling: unknown {bad[0] if bad else ''!r}; use last, mean, max or a '+' list of them")


def reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) positions that reverse each row's first ``lengths[b]`` steps and leave its padding in place."""
    t = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    n = lengths[:, None]  # (B, 1)
    return torch.where(t < n, n - 1 - t, t)  # (B, T); its own inverse


def ngram_ids(ids: torch.Tensor, pad_id: int, buckets: int, n: int = 2) -> torch.Tensor:
    """Bucket (B, T) of the n words ending at each position of ``ids`` (B, T); before the first word: padding.

    Position t reads only ids t-n+1 .. t, so the padding after a text never reaches a real position.
    """
    if n not in (2, 3):  # the key below stays inside int64 up to n = 3 (ids < 2**20)
        raise ValueError(f"n-grams of 2 or 3 words are supported, got {n}")
    key = ids
    for back in range(1, n):
        prev = torch.nn.functional.pad(ids, (back, 0), value=pad_id)[:, :ids.size(1)]  # also for T <= back
        key = prev * 1_000_003 ** back + key
    return key % buckets


def flip(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, C) with each row's real steps reversed."""
    return x.gather(1, index[..., None].expand_as(x))


class NgramBag(nn.Module):
    """``forward(ids (B, T), lengths (B,)) -> logits (B, K)``: a linear classifier over a bag of n-grams.

    Its features are the text's distinct word ids, and its distinct (previous word, word) pairs and
    word triples, each hashed into ``buckets`` (:func:`ngram_ids`); a feature counts once however
    often it occurs (binarised, as in Wang & Manning's NBSVM). A text's logits are the bias plus half
    the sum of its features' weights, which start at zero. Halved because each class has a column:
    an Adam step moves the true class's column up and the others down, so a margin moves by twice
    the learning rate; with the half it moves as a binary logistic model's logit does (on IMDB's
    2,500 validation reviews, alone, at imdb-rnn's lr 0.002: 92.08% halved, 91.52% not). Distinct
    features are found by sorting each row (no ``unique`` per row), so the model exports to ONNX.
    """

    SCALE = 0.5  # see the docstring

    def __init__(self, vocab_size: int, buckets: int, n_classes: int, pad_id: int):
        super().__init__()
        self.vocab_size, self.buckets, self.pad_id = vocab_size, buckets, pad_id
        self.weight = nn.Embedding(vocab_size + 2 * buckets, n_classes)
        self.bias = nn.Parameter(torch.zeros(n_classes))
        nn.init.zeros_(self.weight.weight)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row-sorted feature ids (B, 3T) and a mask (B, 3T) true at each distinct feature of the text."""
        T = ids.size(1)
        t = torch.arange(T, device=ids.device)[None, :]
        real = t < lengths.to(ids.device)[:, None]  # (B, T)
        V, H = self.vocab_size, self.buckets
        feats = torch.cat([ids, V + ngram_ids(ids, self.pad_id, H, 2), V + H + ngram_ids(ids, self.pad_id, H, 3)], 1)
        valid = torch.cat([real, real & (t >= 1), real & (t >= 2)], 1)  # pairs and triples inside the text only
        end = V + 2 * H  # past every feature: sorts last, never counted
        feats = torch.sort(feats.masked_fill(~valid, end), dim=1).values
        first = torch.ones_like(valid[:, :1])
        distinct = torch.cat([first, feats[:, 1:] != feats[:, :-1]], 1) & (feats < end)
        return feats.clamp(max=end - 1), distinct

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, distinct = self.features(ids, lengths)
        w = self.weight(feats)  # (B, 3T, K)
        return self.SCALE * (w * distinct[..., None].to(w.dtype)).sum(1) + self.bias


class RNNClassifier(Model):
    """``forward(ids (B, T), lengths (B,)) -> logits (B, n_classes)``; sizes: vocab_size, n_classes, pad_id.

    Each layer and direction is its own one-directional LSTM / GRU (``rnn.L.fwd``,
    ``rnn.L.bwd``), so the two ways of keeping padding out share weights:

    * ``packed``: every direction runs on a ``PackedSequence`` (the backward one on
      each text reversed within its length), so padded steps are never computed;
    * padded: texts are right-padded for the forward direction and reversed within
      their length for the backward one, so in both the padding comes after every
      real token and no real token's state depends on it; states are read at each
      text's last real step. Outputs equal the packed ones (tested).

    With ``members`` > 1 the copies are ``members.0``, ``members.1``, ... (each an
    ``RNNClassifier`` of one member); with ``bag`` > 0 an :class:`NgramBag` is ``bag``.
    ``forward(..., each=True)`` gives every member's logits (M, B, K), the bag's last; plain
    ``forward`` the log of their mean softmax (B, K).
    """

    Config = RNNClassifierConfig
    arch_version = 1

    def __init__(self, config: RNNClassifierConfig | None = None, *, vocab_size: int, n_classes: int,
                 pad_id: int = 0, **sizes: int):
        super().__init__(config, vocab_size=vocab_size, n_classes=n_classes, pad_id=pad_id, **sizes)
        cfg = self.config
        self.pad_id = pad_id
        self.bag: NgramBag | None = None
        if cfg.members > 1:
            one = replace(cfg, members=1, bag=0)
            self.members = nn.ModuleList(RNNClassifier(one, vocab_size=vocab_size, n_classes=n_classes,
                                                       pad_id=pad_id, **sizes) for _ in range(cfg.members))
        else:
            self._build_network(vocab_size, n_classes, pad_id)
        if cfg.bag:  # built last, so the networks start from the same random numbers with or without it
            self.bag = NgramBag(vocab_size, cfg.bag, n_classes, pad_id)

    def _build_network(self, vocab_size: int, n_classes: int, pad_id: int) -> None:
        cfg = self.config
        self.pooling = cfg.pooling.split("+")
        self.dirs = ("fwd", "bwd") if cfg.bidirectional else ("fwd",)
        self.embedding = nn.Embedding(vocab_size, cfg.emb_dim, padding_idx=pad_id)
        self.bigram = nn.Embedding(cfg.bigrams, cfg.emb_dim) if cfg.bigrams else None
        self.trigram = nn.Embedding(cfg.trigrams, cfg.emb_dim) if cfg.trigrams else None
        for table in (self.bigram, self.trigram):
            if table is not None:  # the model starts as the one without: pairs and triples add what they learn
                nn.init.zeros_(table.weight)
        rnn_cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        width = cfg.hidden * len(self.dirs)
        self.rnn = nn.ModuleList(
            nn.ModuleDict({d: rnn_cls(cfg.emb_dim if i == 0 else width, cfg.hidden, batch_first=True)
                           for d in self.dirs})
            for i in range(cfg.layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width * len(self.pooling), n_classes)
        if cfg.freeze_embedding:
            self.embedding.weight.requires_grad_(False)

    def init_embedding(self, tokens: Sequence[str], sentences: Callable[[], list[list[str]]],
                       data_dir: Path | None = None) -> None:
        """Start the embedding from ``config.vectors`` (no-op without): ``tokens[i]`` is the word of id i.

        ``sentences`` gives the tokenized training texts; it is called only to train gensim vectors.
        A relative vectors file not found in the working directory is read from ``data_dir``
        (the run's ``--data-dir`` or ``ZOO_DATA_DIR``).
        """
        import zoo

        cfg = self.config
        if not cfg.vectors:
            return
        if cfg.members > 1:  # the vectors are made (or read) once; every member starts from them
            self.members[0].init_embedding(tokens, sentences, data_dir)
            for member in self.members[1:]:
                with torch.no_grad():
                    member.embedding.weight.copy_(self.members[0].embedding.weight)
            return
        if cfg.vectors == "gensim":
            vectors = zoo.train_vectors(sentences(), cfg.emb_dim, epochs=cfg.gensim_epochs, min_count=1)
        else:
            vectors = zoo.load_vectors(zoo.local_path(cfg.vectors, data_dir, key="model.vectors", kind="file"))
        matrix, found = zoo.embedding_matrix(list(tokens), vectors, cfg.emb_dim, pad_index=self.pad_id)
        with torch.no_grad():
            self.embedding.weight.copy_(matrix)
        log.info("rnn-classifier: %d of %d words start from %s", found, len(tokens), vectors.source)

    def _run(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """States (B, T, H) of a one-directional ``rnn`` over right-padded ``x`` (B, T, C); zeros at padding
        when packed, values that no real step depends on otherwise."""
        if not self.config.packed:
            return rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]

    @property
    def ensemble_size(self) -> int:
        """How many members' logits ``forward(..., each=True)`` gives: the networks, and the bag if any."""
        return self.config.members + (self.bag is not None)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Freeze groups by part (``embedding``, ``rnn``, ``head``, ``bag``...), across the members of an ensemble."""
        if self.config.members == 1:
            return super().param_groups()
        groups: dict[str, list[nn.Parameter]] = {}
        for member in self.members:
            for name, params in member.param_groups().items():
                groups.setdefault(name, []).extend(params)
        if self.bag is not None:
            groups["bag"] = list(self.bag.parameters())
        return groups

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, each: bool = False) -> torch.Tensor:
        if self.config.members > 1:
            outs = [member(ids, lengths) for member in self.members]
        else:
            outs = [self._forward(ids, lengths)]
        if self.bag is not None:
            outs.append(self.bag(ids, lengths))
        if len(outs) == 1:
            return outs[0][None] if each else outs[0]  # (1, B, K) or (B, K)
        logits = torch.stack(outs)  # (M, B, K)
        if each:
            return logits
        return torch.logsumexp(logits.float().log_softmax(-1), dim=0) - math.log(len(outs))

    def _forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        lengths = lengths.to(ids.device)
        rev = reverse_index(lengths, T) if "bwd" in self.dirs else None
        x = self.embedding(ids)  # (B, T, E)
        if self.bigram is not None:
            x = x + self.bigram(ngram_ids(ids, self.pad_id, self.bigram.num_embeddings, 2))
        if self.trigram is not None:
            x = x + self.trigram(ngram_ids(ids, self.pad_id, self.trigram.num_embeddings, 3))
        x = self.dropout(x)
        for i, layer in enumerate(self.rnn):
            if i:
                x = self.dropout(x)  # between layers, as nn.LSTM's dropout
            outs = [self._run(layer["fwd"], x, lengths)]  # (B, T, H)
            if rev is not None:  # reverse each text within its length, run forward, reverse back
                outs.append(flip(self._run(layer["bwd"], flip(x, rev), lengths), rev))
            x = torch.cat(outs, dim=-1)  # (B, T, dirs*H)
        H = self.config.hidden
        real = torch.arange(T, device=ids.device)[None, :] < lengths[:, None]  # (B, T)
        pooled = []
        for p in self.pooling:
            if p == "last":  # forward: the state after the last token; backward: after the first
                last = x[torch.arange(B, device=ids.device), lengths - 1, :H]  # (B, H)
                pooled.append(torch.cat([last, x[:, 0, H:]], dim=-1) if rev is not None else last)
            elif p == "mean":
                pooled.append(x.masked_fill(~real[..., None], 0.0).sum(1) / lengths[:, None].to(x.dtype))
            else:
                pooled.append(x.masked_fill(~real[..., None], float("-inf")).amax(1))
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))  # (B, n_classes)
