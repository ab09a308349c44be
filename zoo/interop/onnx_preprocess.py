"""Raw text -> the inputs of a zoo ONNX export, with the standard library and numpy only.

``zoo export RUN --format onnx --out model.onnx`` writes this file beside the model
as ``zoo_onnx_preprocess.py``, with ``model.json`` (the sidecar: tokenizer states,
labels, task settings). It tokenizes, cuts and pads exactly as zoo does for that
model, so ONNX Runtime gives zoo's answers without zoo or torch installed::

    import onnxruntime as ort
    from zoo_onnx_preprocess import Preprocessor

    pre = Preprocessor("model.json")
    session = ort.InferenceSession("model.onnx")
    probs = session.run(["probabilities"], pre.classification(["A warm, funny film."]))[0]
    print(pre.labels[int(probs[0].argmax())])

Classifiers' hashed word-pair and word-triple ids (imdb-rnn) are computed inside
the graph from the word ids; nothing here needs to know about them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0-3 of every zoo vocabulary
PAD, UNK = 0, 1


class Tokenizer:
    """One role's tokenizer, rebuilt from its sidecar entry (name, config, state)."""

    def __init__(self, spec: dict[str, Any]):
        self.name, self.config, state = spec["name"], spec.get("config", {}), spec["state"]
        self.bpe = None
        self.specials = sorted(set((state.get("specials") or {}).values())) or list(range(len(SPECIALS)))
        if self.name == "tokenizers:bpe":  # a byte-level BPE needs the tokenizers library (no zoo, no torch)
            from tokenizers import Tokenizer as BPE

            self.bpe = BPE.from_str(state["tokenizer_json"])
            self.bpe.encode_special_tokens = True  # as zoo: text is never read as a special id
        self.itos = list(state.get("itos", []))
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.stop = frozenset(state.get("stopwords", []))
        patterns = spec.get("patterns", {})
        self.word_re = re.compile(patterns["word"]) if "word" in patterns else None
        self.html_re = re.compile(patterns["html_break"], re.IGNORECASE) if "html_break" in patterns else None

    def tokens(self, text: str) -> list[str]:
        if self.name == "classify:word":
            if self.config.get("strip_html", True):
                text = self.html_re.sub(" ", text)
            if self.config.get("lowercase", True):
                text = text.lower()
            return [w for w in self.word_re.findall(text) if w not in self.stop]
        if self.name == "tagging:conll-words":
            return [self.normalize(w) for w in text.split()]
        if self.name == "tokenizers:digits":
            return [c for c in text if not c.isspace()]
        if self.name == "tokenizers:char":
            return list(text)
        raise ValueError(f"tokenizer {self.name} is not supported by this preprocessing")

    def normalize(self, word: str) -> str:
        if self.config.get("lowercase", False):
            word = word.lower()
        if self.config.get("digits_to_zero", False):
            word = "".join("0" if c.isdigit() else c for c in word)
        return word

    def encode(self, text: str) -> list[int]:
        if self.bpe is not None:
            return self.bpe.encode(text, add_special_tokens=False).ids
        ids = [self.stoi.get(t, UNK) for t in self.tokens(text)]
        if self.name in ("classify:word", "tagging:conll-words"):  # a word spelling a special reads as <unk>
            ids = [i if i >= len(SPECIALS) else UNK for i in ids]
        return ids


    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special ids left out (a language model's char or BPE tokenizer)."""
        ids = [int(i) for i in ids if int(i) not in self.specials]
        if self.bpe is not None:
            return self.bpe.decode(ids, skip_special_tokens=True)
        return "".join(self.itos[i] for i in ids if 0 <= i < len(self.itos))


def pad(rows: list[list[int]], width: int | None = None) -> np.ndarray:
    """Rows right-padded with 0 into one int64 array (batch, width)."""
    width = width or max(1, max((len(r) for r in rows), default=1))
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class Preprocessor:
    """The inputs of one exported model, from its sidecar JSON (a path or the loaded dict)."""

    def __init__(self, sidecar: str | Path | dict[str, Any]):
        if not isinstance(sidecar, dict):
            sidecar = json.loads(Path(sidecar).read_text(encoding="utf-8"))
        self.meta = sidecar
        self.family: str = sidecar["family"]
        self.labels: list[str] = list(sidecar.get("labels", []))
        self.task: dict[str, Any] = sidecar.get("task_config", {})
        self.tok = {role: Tokenizer(spec) for role, spec in sidecar["tokenizers"].items()
                    if spec["name"] not in ("classify:labels", "tagging:conll-tags") and role != "tgt"}

    def classification(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``ids`` and ``lengths`` of texts, cut to ``max_len`` tokens as zoo does (head, or head+tail)."""
        max_len, how = int(self.task.get("max_len", 400)), self.task.get("truncate", "head")
        rows = []
        for text in texts:
            ids = self.tok["text"].encode(text) or [UNK]  # a text with no word still has a length
            if len(ids) > max_len:
                half = max_len // 2
                ids = ids[:max_len] if how == "head" else ids[:half] + ids[len(ids) - (max_len - half):]
            rows.append(ids)
        return {"ids": pad(rows), "lengths": np.array([len(r) for r in rows], dtype=np.int64)}

    def tagging(self, sentences: list[str | list[str]]) -> tuple[dict[str, np.ndarray], list[int]]:
        """(``words`` [and ``chars``], rows per sentence): sentences longer than ``max_len`` take several rows."""
        max_len, max_chars = int(self.task.get("max_len", 128)), int(self.task.get("max_word_chars", 16))
        words_rows, char_rows, counts = [], [], []
        for sentence in sentences:
            words = sentence.split() if isinstance(sentence, str) else list(sentence)
            if not words:
                raise ValueError("a sentence has no words")
            ids = self.tok["words"].encode(" ".join(words))
            chars = [self.word_chars(w, max_chars) for w in words]
            pieces = range(0, len(words), max_len)
            words_rows += [ids[s : s + max_len] for s in pieces]
            char_rows += [chars[s : s + max_len] for s in pieces]
            counts.append(len(pieces))
        feeds = {"words": pad(words_rows)}
        if "chars" in self.meta["inputs"]:
            width = max(1, max(len(c) for row in char_rows for c in row))  # the longest word of the batch
            chars_arr = np.zeros((len(char_rows), feeds["words"].shape[1], width), dtype=np.int64)
            for i, row in enumerate(char_rows):
                for j, c in enumerate(row):
                    chars_arr[i, j, : len(c)] = c
            feeds["chars"] = chars_arr
        return feeds, counts

    def word_chars(self, word: str, max_chars: int) -> list[int]:
        ids = self.tok["chars"].encode(word) if "chars" in self.tok else []
        if len(ids) > max_chars:  # a long word keeps its two ends
            half = max_chars // 2
            ids = ids[:half] + ids[len(ids) - half:]
        return ids

    def tag_labels(self, tags: np.ndarray, counts: list[int], sentences: list[str | list[str]]) -> list[list[str]]:
        """One label per word of each sentence, from the graph's ``tags`` and :meth:`tagging`'s row counts."""
        out, row, per_row = [], 0, int(self.task.get("max_len", 128))
        for sentence, n in zip(sentences, counts):
            left = len(sentence.split() if isinstance(sentence, str) else sentence)
            labels = []
            for r in range(row, row + n):  # each row holds the next piece of at most max_len words
                labels += [self.labels[int(t)] for t in tags[r][: min(per_row, left)]]
                left -= per_row
            out.append(labels)
            row += n
        return out

    def seq2seq(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``src`` and ``src_lengths`` of source texts, cut to ``max_src_len`` tokens."""
        max_len = int(self.task.get("max_src_len", 512))
        rows = [self.tok["src"].encode(t)[:max_len] for t in texts]
        empty = [i for i, r in enumerate(rows) if not r]
        if empty:
            raise ValueError(f"source {empty[0]} has no tokens")
        return {"src": pad(rows), "src_lengths": np.array([len(r) for r in rows], dtype=np.int64)}

    def gpt(self, prompt: str) -> dict[str, np.ndarray]:
        """The first feeds of a GPT graph: the prompt's ``ids`` (1, T) and empty ``past_keys`` / ``past_values``.

        Generate by feeding ``present_*`` back as ``past_*`` with the chosen id; zoo never picks the ids
        in ``self.tok["text"].specials``. Prompt plus new tokens must fit ``sizes.block_size``.
        """
        sizes, layers = self.meta["sizes"], self.meta["cache_shape"]
        ids = self.tok["text"].encode(prompt) or self.tok["text"].encode("\n")
        empty = np.zeros((layers[0], 1, layers[1], 0, layers[2]), dtype=np.float32)
        if len(ids) > sizes["block_size"]:
            ids = ids[-sizes["block_size"]:]
        return {"ids": np.array([ids], dtype=np.int64), "past_keys": empty, "past_values": empty}
