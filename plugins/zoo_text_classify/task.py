"""The ``classification`` task: one label per text. Examples are ``{"text": str, "label": str}``.

Tokenizer roles: ``text`` (word ids) and ``labels`` (the class names seen in
training; it travels in the artifact, so a loaded model names its classes).

Models used with it implement ``forward(ids (B, T), lengths (B,)) -> logits (B, K)``
and are built with ``vocab_size``, ``n_classes`` and ``pad_id``. A model with an
``init_embedding(tokens, sentences)`` method gets it called once, before training,
with the text vocabulary (pretrained vectors).

A text longer than ``max_len`` tokens keeps its first ``max_len`` (or, with
``truncate = "head+tail"``, its first and last halves: reviews often end with the
verdict). A label never seen in training counts as an error (``unknown_labels``)
and takes no part in the loss.

Inference (:meth:`predict`): a text in; ``{"label", "probability", "probabilities"}`` out,
every class's probability listed likeliest first. A text longer than ``max_len`` is cut
as in training, with a logged warning.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

from zoo import (
    DataError,
    ModelContract,
    Range,
    Task,
    class_counts,
    class_scores,
    confusion_matrix,
    ensemble_size,
    int_dtype,
    length_batches,
    macro_f1,
    pad_rows,
    ragged_rows,
)

log = logging.getLogger(__name__)

UNKNOWN = -1  # a label the training split never had


@dataclass
class ClassificationConfig:
    # tokens per text the model reads (IMDB reviews: median ~230 words)
    max_len: Annotated[int, Range(2, 2**20)] = 400
    truncate: Literal["head", "head+tail"] = "head"  # which tokens of a longer text are kept
    bucket: bool = True  # training batches of texts of similar length (cheap packing); the order follows the seed
    label_smoothing: Annotated[float, Range(0, lt=1)] = 0.0


class ClassificationTask(Task):
    Config = ClassificationConfig
    tokenizer_roles = ("text", "labels")
    metrics = {"accuracy": "max", "loss": "min", "macro_f1": "max", "unknown_labels": "min"}
    model_contract = ModelContract(
        sizes={"vocab_size": "ids of the text tokenizer (specials included)", "n_classes": "K, the classes seen in "
               "training", "pad_id": "the id padding positions of ids hold"},
        forward="forward(ids (B, T) long, lengths (B,) long): each row's first lengths[b] ids are the text",
        returns="logits (B, K), no softmax (the task applies cross-entropy)",
        optional={"init_embedding(tokens, sentences, data_dir=None)": "called once before training (not on resume): "
                  "tokens is the text vocabulary in id order, sentences() returns the training texts as token "
                  "lists, data_dir the run's data dir (passed when the method takes it); for pretrained vectors",
                  "forward(ids, lengths, each=True)": "an ensemble (its ensemble_size, else config.members, > 1): "
                  "logits (M, B, K) of each member; the training loss is the mean of the members' own losses, and plain forward returns "
                  "the log of their mean softmax"})
    example_fields = {"text": "str: the text", "label": "str: its class (one unseen in training counts as an error, "
                      "unknown_labels, and takes no part in the loss)", "id": "optional: the example's key"}

    def texts(self, role: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        return [str(ex["label"] if role == "labels" else ex["text"]) for ex in examples]

    @property
    def labels(self) -> list[str]:
        """Name of every class, in class order."""
        tok = self.tokenizers["labels"]
        return tok.itos[len(tok.SPECIALS):]

    def model_sizes(self) -> dict[str, int]:
        text = self.tokenizers["text"]
        return {"vocab_size": text.vocab_size, "n_classes": len(self.labels), "pad_id": text.pad_id}

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not examples:
            raise DataError("classification: a split has no examples")
        classes = {lab: k for k, lab in enumerate(self.labels)}
        rows, labels = [], []
        for ex in examples:
            rows.append(self.text_ids(str(ex["text"]))[0])
            labels.append(classes.get(str(ex["label"]), UNKNOWN))
        return self._encoded(rows, labels, [ex.get("id", i) for i, ex in enumerate(examples)])

    # -- the prepared-data cache: tokenised texts as ragged rows (ids + offsets), labels, keys ------------
    prepared_version = "2"  # 2: zoo's ragged layout (ids_offsets), keys.json, labels in the smallest dtype

    def prepare_key(self) -> dict[str, Any]:
        return {"max_len": self.config.max_len, "truncate": self.config.truncate}  # not the training settings

    def prepare_split(self, source: Any, out: Any) -> None:
        enc = self.encode(source.examples())
        out.put_ragged("ids", enc["ids"], int_dtype(self.tokenizers["text"].vocab_size - 1))
        out.append("labels", enc["labels"].numpy(), int_dtype(len(self.labels) - 1, UNKNOWN))
        out.put_json("keys", list(enc["keys"]))

    def load_prepared(self, entry: Any) -> dict[str, Any]:
        return self._encoded(ragged_rows(entry.ragged("ids")), entry.array("labels").tolist(), entry.json("keys"))

    def text_ids(self, text: str) -> tuple[torch.Tensor, int]:
        """The ids the model reads for ``text`` (at most ``max_len``), and how many tokens the text has."""
        tok, cfg = self.tokenizers["text"], self.config
        ids = tok.encode(text) or [tok.unk_id]  # a text with no word still has a length
        n = len(ids)
        if n > cfg.max_len:
            if cfg.truncate == "head":
                ids = ids[: cfg.max_len]
            else:
                half = cfg.max_len // 2
                ids = ids[:half] + ids[n - (cfg.max_len - half):]
        return torch.tensor(ids, dtype=torch.long), n

    @staticmethod
    def _encoded(rows: list[torch.Tensor], labels: list[int], keys: list[Any]) -> dict[str, Any]:
        return {"ids": rows, "lengths": torch.tensor([len(r) for r in rows], dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long), "keys": keys}

    def num_batches(self, encoded: Mapping[str, Any], batch_size: int) -> int:
        return math.ceil(len(encoded["lengths"]) / batch_size)

    def batches(self, encoded: Mapping[str, Any], batch_size: int, *, shuffle: bool,
                seed: int) -> Iterator[dict[str, torch.Tensor]]:
        groups = length_batches(encoded["lengths"], batch_size, shuffle=shuffle, seed=seed,
                                bucket=self.config.bucket, shuffle_inside=True)
        for idx in groups:
            yield self._batch(encoded, idx)

    def _batch(self, encoded: Mapping[str, Any], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        lengths = encoded["lengths"][idx]
        pad = self.tokenizers["text"].pad_id
        ids = pad_rows([encoded["ids"][i] for i in idx.tolist()], pad)  # (B, T)
        return {"ids": ids, "lengths": lengths, "labels": encoded["labels"][idx], "index": idx}

    # -- model hooks, loss and metrics -----------------------------------------------------------
    def init_model(self, model: Any, train: Mapping[str, Any] | None) -> dict[str, Any]:
        init = getattr(model, "init_embedding", None)
        if init is None or train is None:
            return {}
        itos = self.tokenizers["text"].itos
        sentences = lambda: [[itos[i] for i in row.tolist()] for row in train["ids"]]  # noqa: E731
        if "data_dir" in inspect.signature(init).parameters:
            init(list(itos), sentences, data_dir=self.data_dir)
        else:  # a model written before init_embedding took the data dir
            init(list(itos), sentences)
        return {}

    @staticmethod
    def logits(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["ids"], batch["lengths"])  # (B, K)

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        if ensemble_size(model) > 1:  # each member fits the labels on its own: the mean of their losses
            each = model(batch["ids"], batch["lengths"], each=True).float()  # (M, B, K)
            logits, labels = each.flatten(0, 1), labels.repeat(each.size(0))
        else:
            logits = self.logits(model, batch).float()
        return F.cross_entropy(logits, labels, ignore_index=UNKNOWN, label_smoothing=self.config.label_smoothing)

    def batch_weight(self, batch: Mapping[str, torch.Tensor]) -> float:
        """DDP: the loss is a mean over examples with a known label."""
        return float((batch["labels"] >= 0).sum())

    def eval_batch(self, model: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return self._sums(self.logits(model, batch).float(), batch["labels"])

    def _sums(self, logits: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
        pred = logits.argmax(-1)  # logits (B, K), gold (B,)
        known = gold >= 0
        loss_sum = F.cross_entropy(logits, gold, ignore_index=UNKNOWN, reduction="sum")
        sums = {"loss_sum": float(loss_sum), "known": float(known.sum()), "examples": float(len(gold)),
                "correct": float((pred == gold).sum()), "unknown_labels": float((~known).sum())}
        sums.update(self.confusion_counts(pred, gold))
        return sums

    def confusion_counts(self, pred: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
        """``cm/G/P``: examples of gold class G predicted as P (G = ``?`` for labels unseen in training)."""
        k = len(self.labels)
        counts = confusion_matrix(pred, gold, k).tolist()  # (K + 1, K): a last row for unseen labels
        names = [*self.labels, "?"]
        return {f"cm/{names[a]}/{names[b]}": counts[a][b] for a in range(k + 1) for b in range(k) if counts[a][b]}

    def confusion(self, sums: Mapping[str, float]) -> list[list[int]]:
        """[gold][predicted] counts over the classes, from :meth:`eval_batch` sums."""
        return [[int(sums.get(f"cm/{g}/{p}", 0)) for p in self.labels] for g in self.labels]

    def class_table(self, sums: Mapping[str, float]) -> list[dict[str, Any]]:
        """Per class: support, predicted, precision, recall and F1, in class order."""
        cm = [*self.confusion(sums), [int(sums.get(f"cm/?/{p}", 0)) for p in self.labels]]
        return class_scores(self.labels, *class_counts(cm))

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        n = sums.get("examples", 0.0)
        out = {"accuracy": sums.get("correct", 0.0) / max(n, 1.0),
               "loss": sums.get("loss_sum", 0.0) / max(sums.get("known", 0.0), 1.0)}
        rows = self.class_table(sums)
        out["macro_f1"] = macro_f1(rows)
        out["unknown_labels"] = sums.get("unknown_labels", 0.0)
        out["examples"] = n
        for r in rows:
            for m in ("precision", "recall", "f1"):
                out[f"{m}/{r['label']}"] = r[m]
        for g, row in zip(self.labels, self.confusion(sums)):  # confusion/GOLD/PREDICTED: example counts
            for p, count in zip(self.labels, row):
                out[f"confusion/{g}/{p}"] = float(count)
        return out

    # -- per-example records zoo train / zoo eval write (outputs.SPLIT.jsonl) ----------------------
    def eval_outputs(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """:meth:`eval_batch`'s sums, and per example: its position in the split, the gold and
        predicted labels (``?`` for a label unseen in training) and one probability per class."""
        gold = batch["labels"]  # (B,)
        logits = self.logits(model, batch).float()  # (B, K)
        sums = self._sums(logits, gold)
        names = self.labels
        records = []
        for i, g, row in zip(batch["index"].tolist(), gold.tolist(), self.probabilities(logits)):
            probs = dict(row)
            records.append({"index": i, "label": names[g] if g >= 0 else "?", "predicted": row[0][0],
                            "probabilities": {lab: round(probs[lab], 6) for lab in names}})
        return sums, records

    def probabilities(self, logits: torch.Tensor) -> list[list[tuple[str, float]]]:
        """Per row of ``logits`` (B, K): (label, probability) of every class, likeliest first
        (equal ones in class order, so the first is the argmax)."""
        names = self.labels
        return [sorted(zip(names, row), key=lambda r: -r[1]) for row in torch.softmax(logits.float(), -1).tolist()]

    # -- inference on raw texts (zoo predict) --------------------------------------------------------
    predict_input = ("a text (str), read as in training: its first task.max_len tokens (or first and last halves "
                     "with task.truncate = 'head+tail'); a longer text is cut with a logged warning")
    predict_record = ('{"label": the likeliest class, "probability": its probability, "probabilities": '
                      '[{"label": ..., "probability": ...} for every class, likeliest first]}')

    @torch.no_grad()
    def predict(self, model: Any, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        rows, cut = [], []
        for i, value in enumerate(inputs):
            ids, n = self.text_ids(self.text_input(i, value))
            rows.append(ids)
            if n > len(ids):
                cut.append(f"input {i} ({n} tokens)")
        if cut:
            log.warning("classification: %s longer than task.max_len=%d tokens; the model reads %s of %s",
                        ", ".join(cut[:5]) + (f" and {len(cut) - 5} more" if len(cut) > 5 else ""),
                        self.config.max_len, self.config.truncate, "them" if len(cut) > 1 else "it")
        encoded = self._encoded(rows, [UNKNOWN] * len(rows), list(range(len(rows))))
        batch = self.on_device(model, self._batch(encoded, torch.arange(len(rows))))
        return [{"label": row[0][0], "probability": round(row[0][1], 6),
                 "probabilities": [{"label": lab, "probability": round(p, 6)} for lab, p in row]}
                for row in self.probabilities(self.logits(model, batch))]
