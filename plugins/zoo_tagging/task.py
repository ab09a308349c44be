"""The ``tagging`` task: one label per token. Examples are ``{"tokens": [...], "tags": [...]}``.

Tokenizer roles: ``words`` (word ids), ``tags`` (the label vocabulary, fitted on
the training labels, so it travels in the artifact) and ``chars`` (characters of
the words, for models with character features).

Models used with it implement::

    forward(words (B, T), chars (U, W), char_index (B, T)) -> logits (B, T, n_tags)

``chars`` holds the characters of the U distinct word forms of the batch and
``char_index`` points every token at its form. They are built with the sizes
``vocab_size``, ``n_tags``, ``pad_id``, ``unk_id``, ``char_vocab``,
``char_pad_id`` and ``max_len``.

Labels are classes ``0 .. n_tags - 1`` (the ``tags`` tokenizer's ids minus its
specials). Padding is ``PAD`` and never counts; a label never seen in training is
``UNKNOWN``: it counts as a token the model got wrong and as ``unknown_labels``,
and takes no part in the loss.

Inference (:meth:`predict`): a sentence in (a text split at whitespace, or a list of
words); ``{"words", "tags"}`` out, plus ``spans`` (``start``, ``end`` exclusive, ``type``,
``text``) when the labels are BIO chunk tags. Sentences of any length: longer than
``max_len`` they are tagged in pieces, as in evaluation.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

import zoo
from zoo import (
    DataError,
    ModelContract,
    Range,
    Task,
    class_scores,
    int_dtype,
    length_batches,
    macro_f1,
    pad_ragged,
    pad_rows,
)
from zoo import precision_recall_f1 as prf
from zoo_tagging.decode import viterbi_bio

log = logging.getLogger(__name__)

PAD = -100  # padding positions of ``tags``: ignored everywhere (F.cross_entropy's default ignore_index)
UNKNOWN = -1  # a label the training split never had


@dataclass
class TaggingConfig:
    # tokens per model input: longer sentences are cut into pieces (every token is still tagged)
    max_len: Annotated[int, Range(1, 2**20)] = 128
    # characters per word for character features; longer words keep their two ends
    max_word_chars: Annotated[int, Range(2, 1024)] = 16
    label_smoothing: Annotated[float, Range(0, lt=1)] = 0.0
    bucket: bool = True  # training batches of sentences of similar length (less padding); the order follows the seed
    span_f1: bool | None = None  # chunk precision / recall / F1 (conlleval); none: when every label is O, B-X or I-X
    per_class: bool = False  # also report f1/LABEL of every label among the metrics
    # argmax: each token's best label; bio: the best sequence in which every I-X follows B-X or I-X (IOB2 labels)
    decode: Literal["argmax", "bio"] = "argmax"
    # a second label set learned beside the labels by the model's auxiliary head (e.g. the POS tags while learning
    # chunks), from the examples' "aux_tags"; training only: never an input, never predicted. Empty: none
    aux_labels: list[str] = field(default_factory=list)
    aux_weight: Annotated[float, Range(0, 100)] = 0.5  # the auxiliary loss's weight beside the main loss


def is_bio(labels: Sequence[str]) -> bool:
    """Whether ``labels`` are chunk tags: ``O``, ``B-TYPE`` or ``I-TYPE`` (IOB1 or IOB2), with some B/I."""
    return any(lab != "O" for lab in labels) and all(
        lab == "O" or (lab[:2] in ("B-", "I-") and len(lab) > 2) for lab in labels)


def spans(labels: Sequence[str]) -> set[tuple[str, int, int]]:
    """The chunks ``(type, start, end)`` of BIO ``labels``, as conlleval reads them.

    A chunk starts at ``B-X``, or at ``I-X`` after ``O`` or after a chunk of another
    type; it ends before ``O``, ``B-*`` or a label of another type. Any label that
    is neither ``B-X`` nor ``I-X`` reads as ``O``.
    """
    out: set[tuple[str, int, int]] = set()
    kind, start = None, 0
    for i, lab in enumerate([*labels, "O"]):
        prefix, typ = (lab[0], lab[2:]) if lab[:2] in ("B-", "I-") else ("O", "")
        if kind is not None and (prefix != "I" or typ != kind):
            out.add((kind, start, i))
            kind = None
        if prefix != "O" and kind is None:
            kind, start = typ, i
    return out


class TaggingTask(Task):
    Config = TaggingConfig
    tokenizer_roles = ("words", "tags", "chars")
    metrics = {"accuracy": "max", "loss": "min", "macro_f1": "max", "unknown_labels": "min"}
    shared_keys = ("chars",)  # the batch's distinct words (U, W), indexed by char_index: not per row
    model_contract = ModelContract(
        sizes={"vocab_size": "ids of the words tokenizer", "n_tags": "K, the labels seen in training",
               "pad_id": "the id padding positions of words hold", "unk_id": "the words tokenizer's <unk>",
               "char_vocab": "ids of the chars tokenizer", "char_pad_id": "the id padding positions of chars hold",
               "max_len": "tokens per input row at most (task.max_len): longer sentences come in pieces",
               "n_aux": "the auxiliary labels (task.aux_labels); passed only when there are some"},
        forward="forward(words (B, T) long, chars (U, W) long, char_index (B, T) long): chars holds the characters "
                "of the U distinct word forms of the batch, char_index points each token at its form",
        returns="logits (B, T, K), no softmax; padding positions are ignored. With task.aux_labels, training also "
                "calls forward(..., aux=True), which returns (logits, aux_logits (B, T, n_aux))")
    example_fields = {"tokens": "list[str]: the words of a sentence (no whitespace inside a word)",
                      "tags": "list[str]: one label per word (one unseen in training counts as an error, "
                      "unknown_labels); BIO chunk tags get span precision / recall / F1"}

    def texts(self, role: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        key = "tags" if role == "tags" else "tokens"
        return [" ".join(ex[key]) for ex in examples]

    @property
    def labels(self) -> list[str]:
        """Label of every class, in class order."""
        return self.tokenizers["tags"].itos[len(self.tokenizers["tags"].SPECIALS):]

    @property
    def aux_on(self) -> bool:
        """Whether the model learns ``aux_labels`` too (a head that no loss reaches would break DDP)."""
        return bool(self.config.aux_labels) and self.config.aux_weight > 0

    @property
    def span_f1(self) -> bool:
        return self.config.span_f1 if self.config.span_f1 is not None else is_bio(self.labels)

    def model_sizes(self) -> dict[str, int]:
        words, chars = self.tokenizers["words"], self.tokenizers["chars"]
        sizes = {"vocab_size": words.vocab_size, "n_tags": len(self.labels), "pad_id": words.pad_id,
                 "unk_id": words.unk_id, "char_vocab": chars.vocab_size, "char_pad_id": chars.pad_id,
                 "max_len": self.config.max_len}
        if self.aux_on:
            sizes["n_aux"] = len(self.config.aux_labels)
        return sizes

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Every sentence (or piece of at most ``max_len`` tokens) as a padded row.

        Besides the padded ``words``, ``tags`` and ``form_ids`` (B, T), ``forms`` holds
        the characters of every distinct word of the split (row 0: padding).
        """
        encoded = self._encode(examples)
        self._warn_unknown(encoded["unknown"])
        return encoded

    def _encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not examples:
            raise DataError("tagging: a split has no sentences")
        classes = {lab: k for k, lab in enumerate(self.labels)}
        unknown: Counter[str] = Counter()
        sentences, tag_rows = [], []
        for i, ex in enumerate(examples):
            tokens, tags = list(ex["tokens"]), list(ex["tags"])
            if not tokens:
                raise DataError(f"tagging: sentence {i} has no tokens")
            if len(tokens) != len(tags):
                raise DataError(f"tagging: sentence {i} has {len(tokens)} tokens but {len(tags)} labels")
            tag_ids = [classes.get(t, UNKNOWN) for t in tags]
            if UNKNOWN in tag_ids:
                unknown.update(t for t, k in zip(tags, tag_ids) if k == UNKNOWN)
            sentences.append(tokens)
            tag_rows.append(tag_ids)
        encoded = self.encode_sentences(sentences, tag_rows)
        if self.aux_on:
            encoded["aux"] = self.encode_sentences(sentences, self.aux_rows(examples))["tags"]
        return {**encoded, "unknown": dict(unknown)}

    @staticmethod
    def _warn_unknown(unknown: Mapping[str, int]) -> None:
        if unknown:
            log.warning("tagging: %d tokens carry %d labels never seen in training (%s); they count as errors "
                        "and as unknown_labels", sum(unknown.values()), len(unknown),
                        ", ".join(f"{t} x{n}" for t, n in sorted(unknown.items(), key=lambda tn: -tn[1])[:5]))

    # -- the prepared-data cache: each per-token array as ragged rows (values + offsets), the split's word
    # forms as characters, the labels never seen in training ----------------------------------------------
    prepared_version = "1"

    def prepare_key(self) -> dict[str, Any]:
        cfg = self.config  # what encode reads: not the training or decoding settings
        return {"max_len": cfg.max_len, "max_word_chars": cfg.max_word_chars,
                "aux_labels": list(cfg.aux_labels) if self.aux_on else []}

    def prepare_split(self, source: Any, out: Any) -> None:
        enc = self._encode(source.examples())
        n = enc["lengths"]  # the rows of every per-token array
        out.put_ragged("words", enc["words"], int_dtype(self.tokenizers["words"].vocab_size - 1), lengths=n)
        out.put_ragged("tags", enc["tags"], int_dtype(max(len(self.labels) - 1, 0), UNKNOWN), lengths=n)
        out.put_ragged("form_ids", enc["form_ids"], int_dtype(len(enc["forms"]) - 1), lengths=n)
        if "aux" in enc:
            out.put_ragged("aux", enc["aux"], int_dtype(len(self.config.aux_labels) - 1, PAD), lengths=n)
        out.put("forms", enc["forms"].numpy().astype(int_dtype(self.tokenizers["chars"].vocab_size - 1)))
        out.put_json("unknown", enc["unknown"])

    def load_prepared(self, entry: Any) -> dict[str, Any]:
        words = entry.ragged("words")
        encoded = {"words": pad_ragged(words, self.tokenizers["words"].pad_id),
                   "tags": pad_ragged(entry.ragged("tags"), PAD), "form_ids": pad_ragged(entry.ragged("form_ids"), 0),
                   "lengths": torch.from_numpy(words.lengths),
                   "forms": torch.from_numpy(entry.array("forms").astype("int64"))}
        if self.aux_on:
            encoded["aux"] = pad_ragged(entry.ragged("aux"), PAD)
        encoded["unknown"] = entry.json("unknown")
        self._warn_unknown(encoded["unknown"])
        return encoded

    def aux_rows(self, examples: Sequence[Mapping[str, Any]]) -> list[list[int]]:
        """The auxiliary class ids of every sentence; a label outside ``aux_labels``, or no ``aux_tags``: PAD."""
        aux = {lab: k for k, lab in enumerate(self.config.aux_labels)}
        rows = []
        for i, ex in enumerate(examples):
            tags = list(ex.get("aux_tags") or [])
            if tags and len(tags) != len(ex["tokens"]):
                raise DataError(f"tagging: sentence {i} has {len(ex['tokens'])} tokens but {len(tags)} aux_tags")
            rows.append([aux.get(t, PAD) for t in tags] or [PAD] * len(ex["tokens"]))
        return rows

    def encode_sentences(self, sentences: Sequence[Sequence[str]], tag_ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        """The padded rows of tokenised sentences and their class ids: pieces of at most ``max_len`` tokens."""
        cfg, words_tok, chars_tok = self.config, self.tokenizers["words"], self.tokenizers["chars"]
        forms: dict[str, int] = {"": 0}
        word_rows, tag_rows, form_rows = [], [], []
        for i, (tokens, tags) in enumerate(zip(sentences, tag_ids)):
            ids = words_tok.encode(" ".join(tokens))
            if len(ids) != len(tokens):
                raise DataError(f"tagging: sentence {i} has a token that is empty or holds whitespace: {_quote(tokens)}")
            form_ids = [forms.setdefault(w, len(forms)) for w in tokens]
            for s in range(0, len(tokens), cfg.max_len):
                word_rows.append(ids[s : s + cfg.max_len])
                tag_rows.append(list(tags[s : s + cfg.max_len]))
                form_rows.append(form_ids[s : s + cfg.max_len])
        half = cfg.max_word_chars // 2
        char_rows = [[]] + [ids if len(ids) <= cfg.max_word_chars else ids[:half] + ids[len(ids) - half:]
                            for ids in (chars_tok.encode(w) for w in list(forms)[1:])]
        return {
            "words": pad_rows(word_rows, words_tok.pad_id),
            "tags": pad_rows(tag_rows, PAD),
            "form_ids": pad_rows(form_rows, 0),
            "lengths": torch.tensor([len(r) for r in word_rows], dtype=torch.long),
            "forms": pad_rows(char_rows, chars_tok.pad_id, width=cfg.max_word_chars),
        }

    def num_batches(self, encoded: Mapping[str, Any], batch_size: int) -> int:
        return math.ceil(len(encoded["lengths"]) / batch_size)

    def batches(self, encoded: Mapping[str, Any], batch_size: int, *, shuffle: bool,
                seed: int) -> Iterator[dict[str, torch.Tensor]]:
        groups = length_batches(encoded["lengths"], batch_size, shuffle=shuffle, seed=seed,
                                bucket=self.config.bucket)
        for idx in groups:
            yield self._batch(encoded, idx)

    def _batch(self, encoded: Mapping[str, Any], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        lengths = encoded["lengths"][idx]
        t = int(lengths.max())
        form_ids = encoded["form_ids"][idx, :t]
        uniq, char_index = torch.unique(form_ids, return_inverse=True)  # the batch's distinct words
        chars = encoded["forms"][uniq]  # (U, W)
        w = max(1, int((chars != self.tokenizers["chars"].pad_id).sum(1).max()))  # longest word of the batch
        batch = {"words": encoded["words"][idx, :t], "tags": encoded["tags"][idx, :t], "lengths": lengths,
                 "index": idx, "chars": chars[:, :w], "char_index": char_index}
        if "aux" in encoded:
            batch["aux"] = encoded["aux"][idx, :t]
        return batch

    # -- loss and metrics ---------------------------------------------------------------------
    @staticmethod
    def logits(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["words"], batch["chars"], batch["char_index"])  # (B, T, n_tags)

    def batch_weight(self, batch: Mapping[str, torch.Tensor]) -> float:
        return float((batch["tags"] >= 0).sum())  # the known labels loss() averages over

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over the known tags (plus the aux head's, weighted); an ensemble's members each fit the
        tags on their own: the mean of their losses."""
        aux = "aux" in batch
        m = zoo.ensemble_size(model)
        if m > 1:  # every member's outputs (M, B, T, .), flattened member-major to (M*B, T, .)
            out = model(batch["words"], batch["chars"], batch["char_index"], aux=aux, each=True)
            out = tuple(o.flatten(0, 1) for o in out) if aux else out.flatten(0, 1)
        else:
            out = model(batch["words"], batch["chars"], batch["char_index"], aux=True) if aux else self.logits(model, batch)
        logits, second = out if aux else (out, None)
        tags = batch["tags"].repeat(m, 1)  # (M*B, T), member-major as the logits
        target = tags.masked_fill(tags < 0, PAD)  # unknown labels take no part
        loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD,
                               label_smoothing=self.config.label_smoothing)
        if aux:  # a mean over the known aux labels; a batch without any adds 0 (and still reaches every weight)
            aux_tags = batch["aux"].repeat(m, 1)
            known = (aux_tags != PAD).sum().clamp(min=1)
            aux_sum = F.cross_entropy(second.flatten(0, 1).float(), aux_tags.flatten(), ignore_index=PAD,
                                      reduction="sum")
            loss = loss + self.config.aux_weight * aux_sum / known
        return loss

    def eval_batch(self, model: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        tags = batch["tags"]  # (B, T)
        logits = self.logits(model, batch)  # (B, T, K)
        pred = self.decode(logits, batch["lengths"])  # (B, T)
        known, real = tags >= 0, tags != PAD
        loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), tags.masked_fill(~known, PAD).flatten(),
                                   ignore_index=PAD, reduction="sum")
        sums = {"loss_sum": float(loss_sum), "loss_tokens": float(known.sum()), "tokens": float(real.sum()),
                "correct": float(((pred == tags) & real).sum()), "unknown_labels": float((real & ~known).sum())}
        sums.update(self.class_counts(pred[real], tags[real]))
        if self.span_f1:
            sums.update(self.span_counts(pred, tags, batch["lengths"]))
        return sums

    def decode(self, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class ids ``(B, T)`` from ``logits`` ``(B, T, K)``, as ``task.decode`` says."""
        if self.config.decode == "bio":
            return viterbi_bio(logits, lengths.to(logits.device), self.labels)
        return logits.argmax(-1)

    def class_counts(self, pred: torch.Tensor, gold: torch.Tensor) -> dict[str, float]:
        """``tp/L``, ``fp/L`` and ``fn/L`` of every label L, from the predictions and labels of real tokens."""
        tp, fp, fn = zoo.class_counts(zoo.confusion_matrix(pred, gold, len(self.labels)))
        out: dict[str, float] = {}
        for c, lab in enumerate(self.labels):
            out[f"tp/{lab}"], out[f"fp/{lab}"], out[f"fn/{lab}"] = tp[c], fp[c], fn[c]
        return out

    def span_counts(self, pred: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> dict[str, float]:
        labels = self.labels
        correct = found = gold = 0
        for p, t, n in zip(pred.tolist(), tags.tolist(), lengths.tolist()):
            gs = spans([labels[c] if c >= 0 else "O" for c in t[:n]])  # an unknown gold label reads as O
            ps = spans([labels[c] for c in p[:n]])
            correct, found, gold = correct + len(gs & ps), found + len(ps), gold + len(gs)
        return {"span_correct": correct, "span_found": found, "span_gold": gold}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        tokens = sums.get("tokens", 0.0)
        out = {
            "accuracy": sums.get("correct", 0.0) / max(tokens, 1.0),
            "loss": sums.get("loss_sum", 0.0) / max(sums.get("loss_tokens", 0.0), 1.0),
        }
        rows = self.class_table(sums)
        out["macro_f1"] = macro_f1(rows)
        out["unknown_labels"] = sums.get("unknown_labels", 0.0)
        out["tokens"] = tokens
        if "span_gold" in sums:
            p, r, f = prf(sums["span_correct"], sums["span_found"] - sums["span_correct"],
                          sums["span_gold"] - sums["span_correct"])
            out.update(span_precision=p, span_recall=r, span_f1=f)
        if self.config.per_class:
            out.update({f"f1/{r['label']}": r["f1"] for r in rows})
        return out

    def class_table(self, sums: Mapping[str, float]) -> list[dict[str, Any]]:
        """Per label: support, predicted, precision, recall (its accuracy) and F1; most frequent first."""
        tp, fp, fn = ([sums.get(f"{kind}/{lab}", 0.0) for lab in self.labels] for kind in ("tp", "fp", "fn"))
        return sorted(class_scores(self.labels, tp, fp, fn), key=lambda row: -row["support"])

    # -- inference on raw sentences (zoo predict) ----------------------------------------------------
    predict_input = ("a sentence: a text (str), split into words at whitespace, or a list of words. A list is a batch "
                     "to zoo.load(...).predict, so one word list goes in wrapped: predict([['The', 'cat', 'sat']]). "
                     "Any length: sentences longer than task.max_len are tagged in pieces, as in evaluation")
    predict_record = ('{"words": [word, ...], "tags": [one label per word], and for BIO label sets "spans": '
                      '[{"start": first word, "end": one past the last, "type": chunk type, "text": its words}, ...]}')

    def words_input(self, index: int, value: Any) -> list[str]:
        """The words of one raw sentence: a text split at whitespace, or a list of words (checked)."""
        if isinstance(value, str):
            return self.text_input(index, value, what="sentence").split()
        if not isinstance(value, (list, tuple)):
            raise self.input_error(index, f"expected a sentence (a string or a list of words), got "
                                          f"{type(value).__name__}")
        if not value:
            raise self.input_error(index, "the sentence has no words")
        for k, w in enumerate(value):
            if not isinstance(w, str) or not w or any(c.isspace() for c in w):
                raise self.input_error(index, f"word {k} ({_quote(repr(w))}) is not a non-empty string without whitespace")
        return list(value)

    @torch.no_grad()
    def predict(self, model: Any, inputs: Sequence[Any], **options: Any) -> list[dict[str, Any]]:
        sentences = [self.words_input(i, x) for i, x in enumerate(inputs)]
        encoded = self.encode_sentences(sentences, [[PAD] * len(w) for w in sentences])
        batch = self.on_device(model, self._batch(encoded, torch.arange(len(encoded["lengths"]))))
        pred = self.decode(self.logits(model, batch), batch["lengths"]).tolist()  # (rows, T): a sentence's pieces
        # are consecutive rows
        lengths, labels, bio, row = encoded["lengths"].tolist(), self.labels, is_bio(self.labels), 0
        records = []
        for words in sentences:
            tags: list[str] = []
            while len(tags) < len(words):
                tags += [labels[c] for c in pred[row][: lengths[row]]]
                row += 1
            record: dict[str, Any] = {"words": words, "tags": tags}
            if bio:
                record["spans"] = [{"start": a, "end": b, "type": t, "text": " ".join(words[a:b])}
                                   for t, a, b in sorted(spans(tags), key=lambda sp: sp[1])]
            records.append(record)
        return records


def _quote(value: object, limit: int = 80) -> str:
    """At most ``limit`` characters of ``value``'s text for an error message: a 10 MB line is not quoted whole."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
