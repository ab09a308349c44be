"""The seq2seq task: examples ``{"src": str, "tgt": str}``.

Models used with it implement::

    forward(src, src_lengths, tgt_in, teacher_forcing=1.0) -> logits (B, T, V)
    generate(src, src_lengths, max_len, bos_id, eos_id) -> ids (B, max_len)

The decoder reads ``<bos> + target`` and predicts ``target + <eos>``.

Inference (:meth:`predict`): the source text as the dataset's ``src`` field holds it (for
subseq-gru ``"START LENGTH D0 .. D7"``); ``{"output": text}`` out, decoded greedily as in
evaluation. A source longer than ``max_src_len`` is cut, with a logged warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

from zoo import ConfigError, DataError, ModelContract, Range, Task, pad_rows

log = logging.getLogger(__name__)


@dataclass
class Seq2SeqConfig:
    # chance of feeding the gold token (not the model's own) while training
    teacher_forcing: Annotated[float, Range(0, 1)] = 1.0
    max_src_len: Annotated[int, Range(1, 2**20)] = 512  # longer sources are cut
    max_tgt_len: Annotated[int, Range(1, 2**20)] = 512  # longer targets are cut (before <eos>)
    label_smoothing: Annotated[float, Range(0, lt=1)] = 0.0
    decode: Literal["greedy"] = "greedy"


class Seq2SeqTask(Task):
    Config = Seq2SeqConfig
    tokenizer_roles = ("src", "tgt")
    metrics = {"loss": "min", "exact_match": "max", "token_accuracy": "max", "perplexity": "min"}
    model_contract = ModelContract(
        sizes={"src_vocab": "ids of the src tokenizer", "tgt_vocab": "V, ids of the tgt tokenizer",
               "pad_id": "the id padding positions hold (src and tgt share it)"},
        forward="forward(src (B, S) long, src_lengths (B,) long, tgt_in (B, T) long, teacher_forcing=1.0): "
                "tgt_in is <bos> + target; teacher_forcing is the chance of feeding the gold token while training",
        returns="logits (B, T, V) predicting target + <eos>, no softmax",
        methods={"generate(src, src_lengths, max_len, bos_id, eos_id)": "greedy decoding for evaluation and "
                 "predict: ids (B, max_len), padding after each row's <eos>"})
    example_fields = {"src": "str: the source text", "tgt": "str: the target text"}

    def texts(self, role: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        return [ex[role] for ex in examples]

    def model_sizes(self) -> dict[str, int]:
        src, tgt = self.tokenizers["src"], self.tokenizers["tgt"]
        if src.pad_id != tgt.pad_id:
            raise DataError("seq2seq: source and target tokenizers must share the pad id")
        return {"src_vocab": src.vocab_size, "tgt_vocab": tgt.vocab_size, "pad_id": tgt.pad_id}

    def encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        cfg, src_tok, tgt_tok = self.config, self.tokenizers["src"], self.tokenizers["tgt"]
        srcs, tgts = [], []
        for i, ex in enumerate(examples):
            s = src_tok.encode(ex["src"])[: cfg.max_src_len]
            if not s:
                raise DataError(f"seq2seq: example {i} has an empty source")
            srcs.append(s)
            tgts.append(tgt_tok.encode(ex["tgt"])[: cfg.max_tgt_len])
        return self._encoded(srcs, tgts)

    def _encoded(self, srcs: list[list[int]], tgts: list[list[int]]) -> dict[str, torch.Tensor]:
        tgt_tok = self.tokenizers["tgt"]
        pad = tgt_tok.pad_id
        return {
            "src": pad_rows(srcs, pad),
            "src_lengths": torch.tensor([len(s) for s in srcs], dtype=torch.long),
            "tgt_in": pad_rows([[tgt_tok.bos_id, *t] for t in tgts], pad),
            "tgt_out": pad_rows([[*t, tgt_tok.eos_id] for t in tgts], pad),
        }

    def num_batches(self, encoded: Mapping[str, torch.Tensor], batch_size: int) -> int:
        return math.ceil(len(encoded["src"]) / batch_size)

    def batches(self, encoded: Mapping[str, torch.Tensor], batch_size: int, *, shuffle: bool,
                seed: int) -> Iterator[dict[str, torch.Tensor]]:
        n = len(encoded["src"])
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        pad = self.tokenizers["tgt"].pad_id
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            lengths = encoded["src_lengths"][idx]
            tgt_out = encoded["tgt_out"][idx]
            t = int((tgt_out != pad).sum(1).max())  # trim padding columns shared by the whole batch
            yield {
                "src": encoded["src"][idx, : int(lengths.max())],
                "src_lengths": lengths,
                "tgt_in": encoded["tgt_in"][idx, :t],
                "tgt_out": tgt_out[:, :t],
            }

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tf = self.config.teacher_forcing if model.training else 1.0
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"], teacher_forcing=tf)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(),
                               ignore_index=self.tokenizers["tgt"].pad_id,
                               label_smoothing=self.config.label_smoothing)

    def batch_weight(self, batch: Mapping[str, torch.Tensor]) -> float:
        return float((batch["tgt_out"] != self.tokenizers["tgt"].pad_id).sum())  # the tokens loss() averages over

    def greedy(self, model: Any, batch: Mapping[str, torch.Tensor], max_len: int) -> torch.Tensor:
        """Greedy decoding of a batch: ids (B, max_len), <eos> then padding after each row's end."""
        tok = self.tokenizers["tgt"]
        return model.generate(batch["src"], batch["src_lengths"], max_len, tok.bos_id, tok.eos_id)

    def eval_batch(self, model: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        pad = self.tokenizers["tgt"].pad_id
        tgt_out = batch["tgt_out"]  # (B, T)
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])  # (B, T, V)
        loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=pad,
                                   reduction="sum")
        mask = tgt_out != pad
        pred = self.greedy(model, batch, tgt_out.size(1))  # (B, T) greedy, own predictions fed back
        hit = (pred == tgt_out) & mask
        return {
            "loss_sum": float(loss_sum),
            "tokens": float(mask.sum()),
            "correct": float(hit.sum()),
            "exact": float((hit.sum(1) == mask.sum(1)).sum()),
            "examples": float(tgt_out.size(0)),
        }

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        tokens = max(sums.get("tokens", 0.0), 1.0)
        loss = sums.get("loss_sum", 0.0) / tokens
        return {
            "loss": loss,
            "exact_match": sums.get("exact", 0.0) / max(sums.get("examples", 0.0), 1.0),
            "token_accuracy": sums.get("correct", 0.0) / tokens,
            "perplexity": math.exp(min(loss, 50.0)),
        }

    # -- inference on raw sources (zoo predict) ------------------------------------------------------
    predict_input = ("the source text as the dataset's 'src' field has it (a str, or a mapping with a 'src' key); "
                     "for subseq-gru 'START LENGTH D0 .. D7', e.g. '2 3 7 1 9 4 4 0 2 8' (spaces optional: the digits "
                     "tokenizer reads digits). Sources longer than task.max_src_len tokens are cut, with a logged "
                     "warning; tokens the source vocabulary lacks read as <unk>, also with a warning")
    predict_record = '{"output": the target text, decoded greedily as in evaluation}'
    predict_options = {"max_len": "tokens to generate at most (default: twice the source's tokens plus 10, "
                                  "at most task.max_tgt_len)"}

    def source_input(self, index: int, value: Any) -> list[int]:
        """The source ids of one raw input, with warnings for a cut or unknown tokens."""
        if isinstance(value, Mapping):
            if "src" not in value:
                raise self.input_error(index, f"a mapping input needs a 'src' key, found {sorted(value)}")
            value = value["src"]
        tok = self.tokenizers["src"]
        ids = tok.encode(self.text_input(index, value, what="source text"))
        if not ids:
            raise self.input_error(index, "the source text has no tokens")
        if len(ids) > self.config.max_src_len:
            log.warning("seq2seq: input %d has %d tokens; the model reads the first task.max_src_len=%d",
                        index, len(ids), self.config.max_src_len)
        if tok.unk_id in ids:
            log.warning("seq2seq: input %d has %d tokens the source vocabulary lacks; they read as <unk>",
                        index, ids.count(tok.unk_id))
        return ids[: self.config.max_src_len]

    @torch.no_grad()
    def predict(self, model: Any, inputs: Sequence[Any], max_len: int | None = None,
                **options: Any) -> list[dict[str, Any]]:
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise ConfigError(f"predict option max_len must be a positive integer, got {max_len!r}")
        srcs = [self.source_input(i, x) for i, x in enumerate(inputs)]
        limits = [max_len or min(self.config.max_tgt_len, 2 * len(s) + 10) for s in srcs]
        batch = self.on_device(model, self._encoded(srcs, [[] for _ in srcs]))
        pred = self.greedy(model, batch, max(limits)).tolist()  # (B, T): <eos>, then padding
        tok = self.tokenizers["tgt"]
        records = []
        for ids, limit in zip(pred, limits):
            ids = ids[:limit]
            if tok.eos_id in ids:
                ids = ids[: ids.index(tok.eos_id)]
            records.append({"output": tok.decode(ids)})
        return records
