"""The ``code-generation`` task: English intent -> Python code, scored as CoNaLa scores it.

Examples are ``{"src": intent, "tgt": code}``. With ``slots`` on, quoted values in the
intent become slot names in both intent and code (:mod:`zoo_seq2py.slots`) and are put
back into the generated code before it is scored.

Models used with it implement::

    forward(src, src_ext, tgt_in) -> log-probabilities (B, T, V + S)
    greedy(src, src_ext, max_len, bos_id, eos_id) -> list of id lists
    beam_search(src, src_ext, max_len, bos_id, eos_id, beam, length_penalty) -> list of id lists

``src_ext`` holds, for every source position, the target id of the source token, or
``V + i`` (``i``: its first position) when the target vocabulary lacks it; targets that
only the source holds get that extended id too, so a copying model can learn to emit them.

Metrics: token cross-entropy (``loss``) and ``perplexity`` over target tokens with
<eos>, ``bleu`` (corpus BLEU-4, CoNaLa tokenisation, ``smooth=False`` as in
``conala_eval.py``), ``bleu_smooth`` (the same with add-one smoothing) and
``exact_match`` (tokenised hypothesis equals tokenised reference), all in 0..1.

Inference (:meth:`predict`): an English intent in; ``{"code": ...}`` out with the slots'
values put back, and with ``n_best > 1`` also ``candidates`` (code and beam score, best
first). An intent longer than ``max_src_len`` words is cut, with a logged warning.

``direction = "code-to-intent"`` learns the pairs the other way (a snippet in, ``{"intent": ...}``
out): the reconstruction model that ``reranker`` names to rerank an intent-to-code model's beam
(:mod:`zoo_seq2py.rerank`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

from zoo import (
    ConfigError,
    DataError,
    ModelContract,
    Range,
    Task,
    embedding_matrix,
    int_dtype,
    load_vectors,
    local_path,
    pad_ragged,
    pad_rows,
    save_vectors,
    train_vectors,
)

from . import bleu, rerank
from .slots import MAX_SLOTS, restore, slot_code, slot_intent
from .tokenizers import is_space

log = logging.getLogger(__name__)
VECTORS_FILE = "vectors.txt"


@dataclass
class CodeGenConfig:
    slots: bool = True  # CoNaLa preprocessing: quoted values in the intent -> var_N / str_N slots
    # augmentation: chance that a training example's slot numbers are shuffled
    rename_slots: Annotated[float, Range(0, 1)] = 0.0
    max_src_len: Annotated[int, Range(1, 2**20)] = 100  # longer intents are cut
    max_tgt_len: Annotated[int, Range(1, 2**20)] = 200  # longer code is cut (before <eos>)
    label_smoothing: Annotated[float, Range(0, lt=1)] = 0.1
    beam: Annotated[int, Range(1, 1024)] = 5  # beam width at evaluation; 1 is greedy
    length_penalty: Annotated[float, Range(0, 10)] = 1.0  # ended beams rank by log-prob / length ** this
    # generated tokens at most (the longest CoNaLa training snippet has 83)
    max_decode_len: Annotated[int, Range(1, 2**20)] = 100
    # pretrained embeddings: "none", "word2vec" or "fasttext" (trained with gensim on the training
    # intents and code, saved in the run as vectors.txt), or the path of a GloVe / word2vec file
    vectors: str = "word2vec"
    vectors_project: bool = False  # vectors of another size than d_model: project them (PCA / padding) instead of failing
    vectors_epochs: Annotated[int, Range(1, 10_000)] = 20  # gensim training epochs (a small corpus needs many)
    # which way the pairs are learned: "code-to-intent" trains a reconstruction model (code in, its intent
    # out), the scorer task.reranker reads
    direction: Literal["intent-to-code", "code-to-intent"] = "intent-to-code"
    # rerank the beam's hypotheses with a code-to-intent model (its run folder or artifact; "none": off): each
    # scores its beam score + rerank_weight * log p(intent | hypothesis) per intent token (zoo_seq2py.rerank)
    reranker: str = "none"
    rerank_weight: Annotated[float, Range(0, 1000)] = 1.0


class CodeGenTask(Task):
    Config = CodeGenConfig
    tokenizer_roles = ("src", "tgt")
    metrics = {"loss": "min", "bleu": "max", "exact_match": "max", "perplexity": "min", "bleu_smooth": "max"}
    model_contract = ModelContract(
        sizes={"src_vocab": "ids of the src tokenizer", "tgt_vocab": "V, ids of the tgt tokenizer",
               "pad_id": "the id padding positions hold (src and tgt share it)"},
        forward="forward(src (B, S) long, src_ext (B, S) long, tgt_in (B, T) long): src_ext is each source token's "
                "target id, or V + i (i: its first position) where the target vocabulary lacks it; tgt_in is <bos> + "
                "target, a target token only the source holds as its extended id",
        returns="log-probabilities (B, T, V + S) over the target vocabulary and the source positions to copy",
        methods={"greedy(src, src_ext, max_len, bos_id, eos_id)": "list of id lists, for beam = 1",
                 "beam_search(src, src_ext, max_len, bos_id, eos_id, beam=, length_penalty=)": "list of id lists, "
                 "the best hypothesis of each row; with an n_best= keyword, predict can ask for several"},
        optional={"set_embeddings(src_matrix, tgt_matrix)": "called once before training when task.vectors is set "
                  "(config.d_model gives the embedding width)", "config.copy": "true: targets only the source holds "
                  "keep their extended ids (the model copies); false or absent: they read as <unk>"})
    example_fields = {"src": "str: the English intent", "tgt": "str: the Python code"}

    # -- text preparation
    @property
    def reverse(self) -> bool:
        """Whether this task learns code -> intent (a reconstruction model) rather than intent -> code."""
        return self.config.direction == "code-to-intent"

    def prepare(self, ex: Mapping[str, Any], i: int) -> tuple[str, str, dict[str, str]]:
        """(source, target, slots) with slots applied when configured: (intent, code), or (code, intent) when
        :attr:`reverse` (where an empty intent is allowed: the input of ``predict`` is code alone)."""
        src, tgt = ex.get("src"), ex.get("tgt", "")
        if not isinstance(src, str) or not (src.strip() or self.reverse):
            raise DataError(f"code-generation: example {i} has an empty intent")
        slots: dict[str, str] = {}
        if self.config.slots:
            src, slots, code_like = slot_intent(src)
            tgt = slot_code(tgt, slots, code_like)
        return (tgt, src, slots) if self.reverse else (src, tgt, slots)

    def texts(self, role: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        pairs = [self.prepare(ex, i) for i, ex in enumerate(examples)]
        return [p[0] if role == "src" else p[1] for p in pairs]

    def model_sizes(self) -> dict[str, int]:
        src, tgt = self.tokenizers["src"], self.tokenizers["tgt"]
        if src.pad_id != tgt.pad_id:
            raise DataError("code-generation: source and target tokenizers must share the pad id")
        return {"src_vocab": src.vocab_size, "tgt_vocab": tgt.vocab_size, "pad_id": tgt.pad_id}

    # -- encoding
    def encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        rows, meta = self._rows(examples)
        pad = self.tokenizers["tgt"].pad_id
        return {**{key: pad_rows(r, pad) for key, r in rows.items()}, "meta": meta}

    def _rows(self, examples: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[list[int]]], list[dict[str, Any]]]:
        """The id rows of every example (``src``, ``src_ext``, ``tgt_in``, ``tgt_out``, unpadded) and its meta."""
        cfg = self.config
        src_tok, tgt_tok = self.tokenizers["src"], self.tokenizers["tgt"]
        v, unk = tgt_tok.vocab_size, tgt_tok.unk_id
        rows: dict[str, list[list[int]]] = {"src": [], "src_ext": [], "tgt_in": [], "tgt_out": []}
        meta = []
        for i, ex in enumerate(examples):
            s_text, t_text, slots = self.prepare(ex, i)
            s_toks = src_tok.split(s_text)[: cfg.max_src_len]
            if not s_toks:
                raise DataError(f"code-generation: example {i} has an empty {'snippet' if self.reverse else 'intent'}")
            first: dict[str, int] = {}
            for pos, w in enumerate(s_toks):
                first.setdefault(w, pos)
            out = []
            for w in tgt_tok.split(t_text)[: cfg.max_tgt_len]:
                j = tgt_tok.stoi.get(w)
                out.append(j if j is not None else (v + first[w] if w in first else unk))
            rows["src"].append([src_tok.stoi.get(w, src_tok.unk_id) for w in s_toks])
            rows["src_ext"].append([tgt_tok.stoi.get(w, v + first[w]) for w in s_toks])
            rows["tgt_in"].append([tgt_tok.bos_id] + [j if j < v else unk for j in out])
            rows["tgt_out"].append(out + [tgt_tok.eos_id])
            reference = ex["src"] if self.reverse else ex.get("tgt", "")
            meta.append({"intent": ex["src"], "reference": reference, "slots": slots, "src_tokens": s_toks})
        return rows, meta

    # -- the prepared-data cache: the four id arrays as ragged rows (values + offsets), the meta as JSON ----
    prepared_version = "1"

    def prepare_key(self) -> dict[str, Any]:
        cfg = self.config  # what encoding reads: not the training, decoding or word-vector settings
        return {"slots": cfg.slots, "max_src_len": cfg.max_src_len, "max_tgt_len": cfg.max_tgt_len}

    def prepare_split(self, source: Any, out: Any) -> None:
        rows, meta = self._rows(source.examples())
        src_top = self.tokenizers["src"].vocab_size - 1
        tgt_top = self.tokenizers["tgt"].vocab_size + self.config.max_src_len - 1  # ids of copied source words
        for key, r in rows.items():
            out.put_ragged(key, r, int_dtype(src_top if key == "src" else tgt_top))
        out.put_json("meta", meta)

    def load_prepared(self, entry: Any) -> dict[str, Any]:
        pad = self.tokenizers["tgt"].pad_id
        return {**{key: pad_ragged(entry.ragged(key), pad) for key in ("src", "src_ext", "tgt_in", "tgt_out")},
                "meta": entry.json("meta")}

    def num_batches(self, encoded: Mapping[str, Any], batch_size: int) -> int:
        return math.ceil(len(encoded["src"]) / batch_size)

    def batches(self, encoded: Mapping[str, Any], batch_size: int, *, shuffle: bool,
                seed: int) -> Iterator[dict[str, Any]]:
        n = len(encoded["src"])
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        pad = self.tokenizers["tgt"].pad_id
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            src = encoded["src"][idx]
            s = int((src != pad).sum(1).max())
            tgt_out = encoded["tgt_out"][idx]
            t = int((tgt_out != pad).sum(1).max())  # trim padding columns shared by the whole batch
            batch = {"src": src[:, :s], "src_ext": encoded["src_ext"][idx, :s], "tgt_in": encoded["tgt_in"][idx, :t],
                     "tgt_out": tgt_out[:, :t], "meta": [encoded["meta"][i] for i in idx.tolist()]}
            if shuffle and self.config.rename_slots > 0:
                self._rename_slots(batch, gen)
            yield batch

    def _rename_slots(self, batch: dict[str, Any], gen: torch.Generator) -> None:
        """Augmentation: renumber the slots of some examples (var_0 <-> var_3 ...) alike in source and target."""
        src_tok, tgt_tok = self.tokenizers["src"], self.tokenizers["tgt"]
        picked = torch.rand(len(batch["src"]), generator=gen) < self.config.rename_slots
        for kind in ("var", "str"):
            src_ids = torch.tensor([src_tok.stoi[f"{kind}_{k}"] for k in range(MAX_SLOTS)])
            tgt_ids = torch.tensor([tgt_tok.stoi[f"{kind}_{k}"] for k in range(MAX_SLOTS)])
            for row in picked.nonzero().flatten().tolist():
                perm = torch.randperm(MAX_SLOTS, generator=gen)
                for key, ids in (("src", src_ids), ("src_ext", tgt_ids), ("tgt_in", tgt_ids), ("tgt_out", tgt_ids)):
                    x = batch[key][row]
                    hits = x[:, None] == ids[None, :]  # (L, K)
                    found = hits.any(1)
                    if bool(found.any()):
                        x[found] = ids[perm][hits[found].float().argmax(1)]
        for i in picked.nonzero().flatten().tolist():
            batch["meta"][i] = None  # the text no longer matches the ids

    @torch.no_grad()
    def sequence_logprobs(self, model: Any, examples: Sequence[Mapping[str, Any]],
                          batch_size: int = 128) -> list[tuple[float, int]]:
        """(log p(target | source), target tokens with <eos>) of every example, as the model reads it in
        evaluation mode: the reranker's scores when this is a code-to-intent model."""
        out: list[tuple[float, int]] = []
        for batch in self.batches(self.encode(examples), batch_size, shuffle=False, seed=0):
            nll, mask = self._nll(model, self.on_device(model, batch), 0.0, "rows")
            out += zip((-nll).tolist(), mask.sum(1).tolist())
        return out

    # -- loss and evaluation
    def _targets(self, model: Any, tgt_out: torch.Tensor) -> torch.Tensor:
        if getattr(model.config, "copy", False):
            return tgt_out
        tok = self.tokenizers["tgt"]
        return tgt_out.masked_fill(tgt_out >= tok.vocab_size, tok.unk_id)

    def _nll(self, model: Any, batch: Mapping[str, Any], smoothing: float,
             reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token NLL over the targets (``reduction``: "mean" per token, "sum", or "rows": a sum per example)
        and the mask of real target tokens."""
        logp = model(batch["src"], batch["src_ext"], batch["tgt_in"])  # (B, T, V + S) log-probabilities
        target = self._targets(model, batch["tgt_out"])
        pad = self.tokenizers["tgt"].pad_id
        mask = target != pad
        nll = F.nll_loss(logp.flatten(0, 1), target.flatten(), ignore_index=pad, reduction="none").view_as(target)
        if smoothing > 0:  # spread part of the target's mass evenly over the target vocabulary
            v = self.tokenizers["tgt"].vocab_size
            nll = (1 - smoothing) * nll - smoothing * logp[..., :v].mean(-1)
        nll = nll * mask
        if reduction == "rows":  # each example's sum
            return nll.sum(1), mask
        return (nll.sum() / mask.sum().clamp_min(1) if reduction == "mean" else nll.sum()), mask

    def loss(self, model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        return self._nll(model, batch, self.config.label_smoothing, "mean")[0]

    # -- data parallelism: the loss is a mean over target tokens; "meta" is a per-row list
    def batch_weight(self, batch: Mapping[str, Any]) -> float:
        return float((batch["tgt_out"] != self.tokenizers["tgt"].pad_id).sum())

    def split_batch(self, batch: Mapping[str, Any], parts: int) -> list[dict[str, Any]]:
        out = super().split_batch({k: v for k, v in batch.items() if k != "meta"}, parts)
        lo = 0
        for part in out:
            hi = lo + len(part["src"])
            part["meta"] = batch["meta"][lo:hi]
            lo = hi
        return out

    def decode_ids(self, ids: Sequence[int], meta: Mapping[str, Any]) -> str:
        """Code text of generated ids: extended ids are source words, slots get their values back."""
        tok = self.tokenizers["tgt"]
        v, n_special = tok.vocab_size, len(tok.SPECIALS)
        words = []
        for i in ids:
            if i >= v:
                pos = i - v
                if pos < len(meta["src_tokens"]):
                    words.append(meta["src_tokens"][pos])
            elif i >= n_special:
                words.append(tok.itos[i])
        return restore(tok.join(words), meta["slots"])

    def generate_ids(self, model: Any, batch: Mapping[str, Any], *, beam: int | None = None,
                     max_len: int | None = None) -> list[list[int]]:
        """The generated ids of every example: beam search, or greedy with a beam of 1 (default: the config's)."""
        tok, cfg = self.tokenizers["tgt"], self.config
        beam, max_len = beam or cfg.beam, max_len or cfg.max_decode_len
        if beam == 1:
            return model.greedy(batch["src"], batch["src_ext"], max_len, tok.bos_id, tok.eos_id)
        if cfg.reranker != "none":
            return [hyps[0][1] if hyps else [] for hyps in self.n_best_ids(model, batch, 1, beam=beam, max_len=max_len)]
        return model.beam_search(batch["src"], batch["src_ext"], max_len, tok.bos_id, tok.eos_id,
                                 beam=beam, length_penalty=cfg.length_penalty)

    def n_best_ids(self, model: Any, batch: Mapping[str, Any], n_best: int, *, beam: int | None = None,
                   max_len: int | None = None) -> list[list[tuple[float, list[int]]]]:
        """Up to ``n_best`` (score, ids) hypotheses of every example, best first, from a beam of at least
        ``n_best``; the score is the beam's (log-probability / length ** length_penalty), or with
        ``task.reranker`` the reranked one (the whole beam reranked, then cut to ``n_best``)."""
        if "n_best" not in inspect.signature(model.beam_search).parameters:
            raise ConfigError(f"n_best={n_best}: model {type(model).__name__}'s beam_search returns one "
                              "hypothesis per example (it takes no n_best); use n_best=1")
        tok, cfg = self.tokenizers["tgt"], self.config
        beam = max(beam or cfg.beam, n_best)
        reranked = cfg.reranker != "none"
        hyps = model.beam_search(batch["src"], batch["src_ext"], max_len or cfg.max_decode_len, tok.bos_id,
                                 tok.eos_id, beam=beam, length_penalty=cfg.length_penalty,
                                 n_best=beam if reranked else n_best)
        if not reranked:
            return hyps
        scored = rerank.score(self, hyps, batch["meta"], rerank.load_reranker(self, model))
        return [rerank.ranked(cands, cfg.rerank_weight)[:n_best] for cands in scored]

    def eval_outputs(self, model: Any, batch: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        loss_sum, mask = self._nll(model, batch, 0.0, "sum")
        sums: dict[str, float] = {"loss_sum": float(loss_sum), "tokens": float(mask.sum()),
                                  "examples": float(len(batch["src"]))}
        records = []
        for ids, meta in zip(self.generate_ids(model, batch), batch["meta"]):
            code = self.decode_ids(ids, meta)
            hyp, ref = bleu.tokenize_for_bleu(code), bleu.tokenize_for_bleu(meta["reference"])
            for k, x in bleu.ngram_stats(hyp, ref).items():
                sums[k] = sums.get(k, 0.0) + x
            sums["exact"] = sums.get("exact", 0.0) + float(hyp == ref)
            records.append({"intent": meta["intent"], "generated": code, "reference": meta["reference"],
                            "exact": hyp == ref})
        return sums, records

    def eval_batch(self, model: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        return self.eval_outputs(model, batch)[0]

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        loss = sums.get("loss_sum", 0.0) / max(sums.get("tokens", 0.0), 1.0)
        return {
            "loss": loss,
            "bleu": bleu.bleu_from_stats(sums),
            "exact_match": sums.get("exact", 0.0) / max(sums.get("examples", 0.0), 1.0),
            "perplexity": math.exp(min(loss, 50.0)),
            "bleu_smooth": bleu.bleu_from_stats(sums, smooth=True),
        }

    # -- pretrained embeddings
    def vectors(self, train: Mapping[str, Any] | None = None) -> Any:
        """The word vectors ``config.vectors`` names: trained now with gensim on the encoded training split
        ``train`` (:meth:`corpus`), or read from a file."""
        cfg = self.config
        if cfg.vectors in ("word2vec", "fasttext"):
            if train is None:
                raise ConfigError("task.vectors: training word vectors needs the training split (not on resume)")
            return train_vectors(self.corpus(train), self._dim, kind=cfg.vectors, epochs=cfg.vectors_epochs, window=5)
        return load_vectors(local_path(cfg.vectors, self.data_dir, key="task.vectors", kind="file"))

    def corpus(self, train: Mapping[str, Any]) -> list[list[str]]:
        """The sentences word vectors are trained on, read back from the encoded training split (so prepared
        data gives the same vectors): every intent's words, then every snippet's tokens without whitespace
        (a copied word as the source's word, a token the vocabulary lacks as <unk>)."""
        tok = self.tokenizers["tgt"]
        v = tok.vocab_size
        code = []
        for row, n, meta in zip(train["tgt_out"].tolist(), (train["tgt_out"] != tok.pad_id).sum(1).tolist(),
                                train["meta"]):
            words = [tok.itos[i] if i < v else meta["src_tokens"][i - v] for i in row[: n - 1]]  # not <eos>
            code.append([w for w in words if not is_space(w)])
        return [list(meta["src_tokens"]) for meta in train["meta"]] + code

    def init_model(self, model: Any, train: Any = None) -> dict[str, Any]:
        cfg = self.config
        if cfg.vectors == "none":
            return {}
        self._dim = int(model.config.d_model)
        vecs = self.vectors(train)
        if vecs.dim != self._dim and not cfg.vectors_project:
            raise ConfigError(f"task.vectors: {vecs.source} has {vecs.dim}-dimensional vectors but the model's "
                              f"embeddings have {self._dim} (model.d_model); set model.d_model={vecs.dim} or "
                              "task.vectors_project=true")
        pad = self.tokenizers["tgt"].pad_id
        mats = {}
        for role in ("src", "tgt"):
            itos = self.tokenizers[role].itos
            mats[role], found = embedding_matrix(itos, vecs, self._dim, project=cfg.vectors_project, pad_index=pad)
            log.info("%s embeddings: %d of %d tokens from %s", role, found, len(itos), vecs.source)
        model.set_embeddings(mats["src"], mats["tgt"])
        if cfg.vectors in ("word2vec", "fasttext"):
            return {VECTORS_FILE: functools.partial(save_vectors, vecs)}
        return {}

    # -- inference on raw intents (zoo predict) ------------------------------------------------------
    predict_input = ("an English intent (a str, or a mapping with a 'src' key), e.g. "
                     "\"sort list `lst` by key 'name'\"; with task.slots, quoted values become slots and come back "
                     "in the code. Intents longer than task.max_src_len words are cut, with a logged warning")
    predict_record = ('{"code": the generated Python, slots filled back in}; with n_best > 1 also "candidates": '
                      '[{"code": ..., "score": log-probability / length ** task.length_penalty, or the reranked '
                      'score with task.reranker}, ...], best first; a code-to-intent model writes "intent" for "code"')
    predict_options = {"n_best": "hypotheses to return per intent, with scores (default 1: the code only)",
                       "beam": "beam width (default: task.beam; raised to n_best when smaller; 1 is greedy)",
                       "max_len": "tokens to generate at most (default: task.max_decode_len)"}

    def intent_input(self, index: int, value: Any) -> dict[str, str]:
        """One raw intent as an example without code; warns when it is longer than the model reads."""
        if isinstance(value, Mapping):
            if "src" not in value:
                raise self.input_error(index, f"a mapping input needs a 'src' key (the intent), "
                                              f"found {sorted(value)}")
            value = value["src"]
        if self.reverse:  # a code-to-intent model reads a snippet
            return {"src": "", "tgt": self.text_input(index, value, what="snippet")}
        example = {"src": self.text_input(index, value, what="intent"), "tgt": ""}
        n = len(self.tokenizers["src"].split(self.prepare(example, index)[0]))
        if n > self.config.max_src_len:
            log.warning("code-generation: input %d has %d words; the model reads the first task.max_src_len=%d",
                        index, n, self.config.max_src_len)
        return example

    @torch.no_grad()
    def predict(self, model: Any, inputs: Sequence[Any], n_best: int = 1, beam: int | None = None,
                max_len: int | None = None, **options: Any) -> list[dict[str, Any]]:
        for name, value in (("n_best", n_best), ("beam", beam), ("max_len", max_len)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"predict option {name} must be a positive integer, got {value!r}")
        encoded = self.encode([self.intent_input(i, x) for i, x in enumerate(inputs)])
        batch = self.on_device(model, next(self.batches(encoded, len(inputs), shuffle=False, seed=0)))
        key = "intent" if self.reverse else "code"  # what the model writes
        if n_best == 1:
            return [{key: self.decode_ids(ids, meta)}
                    for ids, meta in zip(self.generate_ids(model, batch, beam=beam, max_len=max_len), batch["meta"])]
        records = []
        for hyps, meta in zip(self.n_best_ids(model, batch, n_best, beam=beam, max_len=max_len), batch["meta"]):
            candidates = [{key: self.decode_ids(ids, meta), "score": round(float(score), 6)} for score, ids in hyps]
            records.append({key: candidates[0][key] if candidates else "", "candidates": candidates})
        return records
