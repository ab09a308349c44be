"""The ``lm`` task: next-token prediction over contiguous blocks of text.

Examples are ``{"text": str}``; a split is the concatenation of its examples
(joined by ``separator``), or with ``boundaries`` the concatenation of units of text
(documents, paragraphs or sentences), each as ``<bos> ... <eos>``, as reference
system 2 marks its sentences. Training draws random blocks; evaluation uses a fixed
set of non-overlapping blocks (``eval_blocks`` of them at most, evenly spaced), so
numbers are comparable between runs, taken in a fixed shuffled order so that an
evaluation cut short by ``train.max_eval_time`` still samples the whole split.

Models used with it implement ``forward(idx) -> logits (B, T, V)`` and, for
``zoo generate``, ``generate(idx, max_new_tokens, temperature, top_k, generator,
use_cache) -> iterator of next tokens (B,)``. They are built with the sizes
``vocab_size`` and ``block_size`` (the task owns the context length).

Inference (:meth:`predict`): a prompt in (``""`` starts from nothing); ``{"text": ...}`` out,
the continuation sampled with ``zoo generate``'s options (seed 0 unless told otherwise).
A model trained with ``boundaries`` starts every prompt with ``<bos>``, shows each
``<eos>`` as the gap between units (a space between sentences, a blank line between
paragraphs, ``separator`` between documents), and with ``stop_at_eos`` ends there.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

from zoo import ConfigError, DataError, ModelContract, Range, Task, whitespace_cuts

LN2 = math.log(2)
_BATCH = 8  # chunks of text handed to the tokenizer's encode_batch at a time


@dataclass
class LMConfig:
    block_size: Annotated[int, Range(1, 2**20)] = 64  # tokens per block: the model's context length
    # blocks per evaluation, evenly spaced over the split; none: every non-overlapping block. On a large validation
    # file this bounds the time of each evaluation (so does train.max_eval_time); the epoch record's eval_examples
    # says how many blocks an evaluation took
    eval_blocks: Annotated[int, Range(1, note="none: every block")] | None = None
    separator: str = "\n"  # joins the examples of a split (without boundaries)
    # mark units of text with <bos> ... <eos> in the token stream: each example (document), each paragraph
    # (split at blank lines) or each sentence (split after . ! or ? and whitespace); none: one plain stream
    boundaries: Literal["none", "document", "paragraph", "sentence"] = "none"


_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")  # a blank line (spaces allowed on it) and what follows
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]\u201d\u2019])\s+")  # after . ! ? (and a closing quote)


def units(text: str, boundaries: str) -> list[str]:
    """The pieces of ``text`` that ``boundaries`` marks, without the whitespace between them; none empty."""
    if boundaries == "document":
        pieces = [text]
    else:
        pieces = [p.strip() for p in _PARAGRAPH.split(text)]
        if boundaries == "sentence":
            pieces = [s for p in pieces for s in _SENTENCE.split(p)]
    return [p for p in pieces if p.strip()]


class LMTask(Task):
    Config = LMConfig
    tokenizer_roles = ("text",)
    metrics = {"loss": "min", "perplexity": "min", "bits_per_byte": "min", "bits_per_token": "min"}
    model_contract = ModelContract(
        sizes={"vocab_size": "V, ids of the text tokenizer (specials included)",
               "block_size": "T_max, the context: the longest block the task feeds (task.block_size)"},
        forward="forward(idx (B, T) long), T <= block_size: token ids of a block",
        returns="logits (B, T, V) of the next token at every position, no softmax",
        methods={"generate(idx (1, T), max_new_tokens, temperature, top_k, generator=, use_cache=, banned=)":
                 "an iterator of the next token (1,) per step, never one of the banned ids; for zoo generate and "
                 "predict"})
    example_fields = {"text": "str: a document (or the whole corpus) of the split"}

    def texts(self, role: str, examples: Sequence[Mapping[str, Any]]) -> list[str]:
        return [ex["text"] for ex in examples]

    def model_sizes(self) -> dict[str, int]:
        return {"vocab_size": self.tokenizers["text"].vocab_size, "block_size": self.config.block_size}

    def encode(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The split's token ids (a numpy array of the smallest unsigned dtype that holds the vocabulary);
        bits per byte count the bytes of its text (without the gaps between units)."""
        import numpy as np

        pieces = list(self._token_pieces([ex["text"]] for ex in examples))
        ids = np.concatenate([np.asarray(p, dtype=self._dtype()) for p, _ in pieces] or [np.zeros(0, self._dtype())])
        return self._encoded(ids, sum(n for _, n in pieces))

    # -- the prepared-data cache: the token stream as a memory-mapped array ---------------------------------
    prepared_version = "1"

    def prepare_key(self) -> dict[str, Any]:
        return {"separator": self.config.separator, "boundaries": self.config.boundaries}  # not block_size

    def fit_tokenizers_from(self, source: Any) -> None:
        """Fit on the train split's documents streamed in chunks (never a whole file in memory)."""
        self.tokenizers["text"].fit(chunk for doc in source.documents() for chunk in whitespace_cuts(doc))

    def prepare_split(self, source: Any, out: Any) -> None:
        n_tokens, n_bytes, dtype = 0, 0, self._dtype()
        for ids, nb in self._token_pieces(source.documents()):
            out.append("ids", ids, dtype)
            n_tokens, n_bytes = n_tokens + len(ids), n_bytes + nb
        if n_tokens == 0:
            out.append("ids", [], dtype)
        out.meta.update(tokens=n_tokens, bytes=n_bytes)

    def load_prepared(self, entry: Any) -> dict[str, Any]:
        return self._encoded(entry.array("ids"), entry.meta["bytes"])

    def _dtype(self) -> str:
        """The smallest unsigned dtype that holds every id."""
        top = self.tokenizers["text"].vocab_size - 1
        return "uint8" if top < 2**8 else "uint16" if top < 2**16 else "uint32"

    def _encoded(self, ids: Any, n_bytes: int) -> dict[str, Any]:
        if len(ids) < self.config.block_size + 1:
            raise DataError(f"lm: a split has {len(ids)} tokens, fewer than one block of "
                            f"{self.config.block_size} + 1; use a smaller task.block_size or more text")
        return {"ids": ids, "bytes_per_token": n_bytes / len(ids)}

    def _token_pieces(self, documents: Iterable[Iterable[str]]) -> Iterator[tuple[Sequence[int], int]]:
        """(ids, bytes of text) of the split's token stream, piece by piece: without boundaries the documents
        joined by the separator, cut where encoding piecewise equals encoding the whole; with them, each unit
        as <bos> ... <eos> (a document is held whole while it is cut into units)."""
        tok, cfg = self.tokenizers["text"], self.config
        if cfg.boundaries == "none":
            def text() -> Iterator[str]:
                for i, doc in enumerate(documents):
                    if i:
                        yield cfg.separator
                    yield from doc

            sizes: collections.deque[int] = collections.deque()  # bytes of the chunks handed on, not yet encoded

            def chunks() -> Iterator[str]:
                for chunk in whitespace_cuts(text()):
                    sizes.append(len(chunk.encode("utf-8")))
                    yield chunk

            for ids in tok.encode_stream(chunks(), _BATCH):
                yield ids, sizes.popleft()
            return
        for doc in documents:
            for unit in units("".join(doc), cfg.boundaries):
                yield [tok.bos_id, *tok.encode(unit), tok.eos_id], len(unit.encode("utf-8"))

    def _offsets(self, encoded: Mapping[str, Any]) -> torch.Tensor:
        """Start of every evaluation block: non-overlapping, or ``eval_blocks`` evenly spaced; in a fixed
        shuffled order, so that the first batches of an evaluation cut short cover the whole split."""
        T, n = self.config.block_size, len(encoded["ids"]) - 1
        starts = torch.arange(0, n - T + 1, T)
        if self.config.eval_blocks is not None and self.config.eval_blocks < len(starts):
            pick = torch.linspace(0, len(starts) - 1, self.config.eval_blocks).round().long()
            starts = starts[pick]
        return starts[torch.randperm(len(starts), generator=torch.Generator().manual_seed(0))]

    def num_batches(self, encoded: Mapping[str, Any], batch_size: int) -> int:
        return max(1, (len(encoded["ids"]) - 1) // (self.config.block_size * batch_size))

    def batches(self, encoded: Mapping[str, Any], batch_size: int, *, shuffle: bool,
                seed: int) -> Iterator[dict[str, Any]]:
        """Blocks gathered from the token array (memory-mapped when prepared: only the blocks drawn are read)."""
        import numpy as np

        ids, T = encoded["ids"], self.config.block_size
        if shuffle:  # one "epoch" covers about as many tokens as the split holds
            g = torch.Generator().manual_seed(seed)
            starts = torch.randint(len(ids) - T, (self.num_batches(encoded, batch_size) * batch_size,), generator=g)
        else:
            starts = self._offsets(encoded)
        cols = torch.arange(T)
        for i in range(0, len(starts), batch_size):
            index = (starts[i : i + batch_size, None] + cols).numpy()  # (B, T)
            yield {"x": torch.from_numpy(np.asarray(ids[index], dtype=np.int64)),
                   "y": torch.from_numpy(np.asarray(ids[index + 1], dtype=np.int64)),
                   "bytes_per_token": encoded["bytes_per_token"]}

    def loss(self, model: Any, batch: Mapping[str, Any]) -> torch.Tensor:
        logits = model(batch["x"])  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["y"].flatten())

    def eval_batch(self, model: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        logits = model(batch["x"])  # (B, T, V)
        loss_sum = F.cross_entropy(logits.flatten(0, 1).float(), batch["y"].flatten(), reduction="sum")
        tokens = batch["y"].numel()
        return {"loss_sum": float(loss_sum), "tokens": float(tokens), "bytes": tokens * batch["bytes_per_token"]}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
        nats, tokens = sums.get("loss_sum", 0.0), max(sums.get("tokens", 0.0), 1.0)
        loss = nats / tokens
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_token": loss / LN2,
            "bits_per_byte": nats / LN2 / max(sums.get("bytes", 0.0), 1.0),
        }

    # -- generation ---------------------------------------------------------------------------
    def generate(self, model: Any, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, use_cache: bool = True,
                 stop_at_eos: bool = False) -> Iterator[str]:
        """Yield the text of each new token as it is produced (whole characters only).

        A model trained with ``boundaries`` sees ``<bos>`` before the prompt; its ``<eos>``
        shows as the gap between units, or with ``stop_at_eos`` ends the text.
        """
        tok, marked = self.tokenizers["text"], self.config.boundaries != "none"
        if stop_at_eos and not marked:
            raise ConfigError("stop_at_eos: this model was trained without task.boundaries, so it never learned to "
                              "end a text with <eos>; train it with task.boundaries=sentence (or paragraph, document)")
        ids = tok.encode(prompt) if prompt else []
        if marked:  # every unit of its training text began with <bos>
            ids = [tok.bos_id, *ids]
        elif not ids:  # no prompt: start from a newline, the most neutral context there is
            ids = tok.encode("\n") or [tok.bos_id]
        device = next(model.parameters()).device
        g = torch.Generator(device=device)
        if seed is not None:
            g.manual_seed(seed)
        # specials that never occur as targets in training are never produced
        banned = sorted({tok.pad_id, tok.unk_id} | (set() if marked else {tok.bos_id, tok.eos_id}))
        stream = (int(nxt[0]) for nxt in model.generate(torch.tensor([ids], dtype=torch.long, device=device),
                                                        max_new_tokens, temperature, top_k, generator=g,
                                                        use_cache=use_cache, banned=banned))
        yield from self._text_pieces(stream, stop_at_eos)

    def _text_pieces(self, stream: Iterator[int], stop_at_eos: bool) -> Iterator[str]:
        """Text of the ids in ``stream``, piece by piece; <bos> shows as nothing, <eos> as the gap between units."""
        tok = self.tokenizers["text"]
        gap = {"sentence": " ", "paragraph": "\n\n"}.get(self.config.boundaries, self.config.separator)
        pending: list[int] = []  # ids produced but not shown yet
        for t in stream:
            if t in (tok.bos_id, tok.eos_id):  # only produced by a model trained with boundaries
                if pending:
                    yield tok.decode(pending)
                    pending.clear()
                if t == tok.eos_id:
                    if stop_at_eos:
                        return
                    yield gap
                continue
            pending.append(t)
            # char and byte-level tokenizers decode piecewise; only a token that ends inside a
            # multi-byte character waits for the rest of it
            text = tok.decode(pending)
            if text.endswith("\ufffd"):
                continue
            pending.clear()
            yield text
        if pending:
            yield tok.decode(pending)

    # -- inference on raw prompts (zoo predict) ------------------------------------------------------
    predict_input = ("a prompt (str) to continue; '' starts from nothing, as zoo generate does. A prompt longer than "
                     "task.block_size tokens is allowed: the model sees its last block_size tokens")
    predict_record = '{"text": the continuation of the prompt (without the prompt)}'
    predict_options = {
        "max_new_tokens": "tokens to generate (default 200, as zoo generate)",
        "temperature": "sampling temperature; 0 is greedy (default 0.8, as zoo generate)",
        "top_k": "sample among the k likeliest tokens (default: all)",
        "seed": "seed of each prompt's sampler (default 0: the same prompt gives the same text; None: a fresh draw)",
        "stop_at_eos": "end the text at the first <eos>: one sentence, paragraph or document (models trained with "
                       "task.boundaries; default false)",
    }

    @torch.no_grad()
    def predict(self, model: Any, inputs: Sequence[Any], max_new_tokens: int = 200, temperature: float = 0.8,
                top_k: int | None = None, seed: int | None = 0, stop_at_eos: bool = False,
                **options: Any) -> list[dict[str, Any]]:
        """One prompt at a time (prompts differ in length), each with its own sampler seeded alike."""
        check_sampling(max_new_tokens, temperature, top_k, seed)
        if not isinstance(stop_at_eos, bool):
            raise ConfigError(f"predict option stop_at_eos must be true or false, got {stop_at_eos!r}")
        prompts = [self.text_input(i, x, what="prompt", empty_ok=True) for i, x in enumerate(inputs)]
        return [{"text": "".join(self.generate(model, p, max_new_tokens=max_new_tokens, temperature=temperature,
                                               top_k=top_k, seed=seed, stop_at_eos=stop_at_eos))} for p in prompts]


def check_sampling(max_new_tokens: Any, temperature: Any, top_k: Any, seed: Any) -> None:
    """Refuse sampling options of the wrong type or range, naming the option."""
    def bad(name: str, value: Any, want: str) -> ConfigError:
        return ConfigError(f"predict option {name} must be {want}, got {value!r}")

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise bad("max_new_tokens", max_new_tokens, "an integer >= 0")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise bad("temperature", temperature, "a number >= 0")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise bad("top_k", top_k, "an integer >= 1 or None")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("seed", seed, "an integer or None")
