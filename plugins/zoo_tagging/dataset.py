"""CoNLL-format tagging data. Every example is ``{"tokens": [word, ...], "tags": [label, ...]}``.

The format: one token per line, its fields in whitespace-separated columns
(``Confidence NN B-NP``), a blank line between sentences. Every line of a file
has the same number of columns; a line that does not is an error naming the
file and the line. ``-DOCSTART-`` lines (CoNLL-2003) are skipped.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from zoo import DataError, Dataset, Range, Source, local_path, read_text

log = logging.getLogger(__name__)

Example = dict[str, list[str]]


def parse_conll(text: str, where: str | Path, word_column: int = 0, label_column: int = -1,
                columns: int | None = None) -> list[Example]:
    """Sentences of CoNLL ``text``; ``where`` (the file) names bad input in errors.

    ``columns``: the number of columns every line must have; none: as many as the
    first token line. Columns are counted from 0; negative ones from the end.
    """
    def check_columns(n: int) -> None:
        for name, col in (("word_column", word_column), ("label_column", label_column)):
            if not -columns <= col < columns:
                raise DataError(f"{where}, line {n}: dataset.{name}={col}, but the file has {columns} columns "
                                f"(0..{columns - 1}, or -1 for the last)")

    sentences: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    first = 0  # line number of the first token line, which fixes the column count
    if columns is not None:
        check_columns(1)
    for n, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if columns is None:
            columns, first = len(fields), n
            check_columns(n)
        if len(fields) != columns:
            fixed = f"as on line {first}" if first else "dataset.columns"
            raise DataError(f"{where}, line {n}: expected {columns} columns ({fixed}), found {len(fields)}: "
                            f"{line.strip()[:80]!r}")
        tokens.append(fields[word_column])
        tags.append(fields[label_column])
    if tokens:  # no blank line after the last sentence
        sentences.append({"tokens": tokens, "tags": tags})
    if not sentences:
        raise DataError(f"{where}: no sentences (the file is empty or holds only blank lines); "
                        "expected one token per line and a blank line between sentences")
    return sentences


def read_conll(path: Path, word_column: int = 0, label_column: int = -1, columns: int | None = None,
               encoding: str = "utf-8") -> list[Example]:
    return parse_conll(read_text(path, encoding), path, word_column, label_column, columns)


# --- CoNLL-2000 -----------------------------------------------------------------------------------

CONLL2000_TRAIN_SENTENCES = 8936  # sentences in CoNLL-2000's train.txt (WSJ sections 15-18)


@dataclass
class CoNLL2000Config:
    label: Literal["pos", "chunk"] = "pos"  # which column is the label: POS tags or chunk tags (BIO, IOB2)
    # move the last N training sentences into a "val" split; 0: splits train and test only
    val_sentences: Annotated[int, Range(0, CONLL2000_TRAIN_SENTENCES - 1,
                                        note=f"the training split has {CONLL2000_TRAIN_SENTENCES} sentences")] = 0
    # keep only the first N sentences of each split (quick tries and tests)
    limit: Annotated[int, Range(1, note="none: every sentence")] | None = None
    # also give every sentence this column as "aux_tags": a second target a model may learn beside the label
    # (task.aux_labels), never an input; none: no second column
    aux_label: Literal["pos", "chunk"] | None = None


class CoNLL2000(Dataset):
    """The CoNLL-2000 chunking data: WSJ sections 15-18 (train) and 20 (test) of the Penn Treebank.

    Columns are ``WORD POS CHUNK``. The POS tags are not the Treebank's: the shared
    task produced them with the Brill tagger. The official files are gzip'd; the
    data dir holds them unzipped (``conll2000/train.txt``, ``conll2000/test.txt``).
    """

    Config = CoNLL2000Config
    folder = "conll2000"
    sources = (
        Source("train.txt", "https://www.clips.uantwerpen.be/conll2000/chunking/train.txt.gz",
               "82033cd7a72b209923a98007793e8f9de3abc1c8b79d646c50648eb949b87cea", size=2_842_164,
               decompress="gzip"),
        Source("test.txt", "https://www.clips.uantwerpen.be/conll2000/chunking/test.txt.gz",
               "73b7b1e565fa75a1e22fe52ecdf41b6624d6f59dacb591d44252bf4d692b1628", size=639_396,
               decompress="gzip"),
    )
    splits = ("train", "val", "test")
    label_columns = {"pos": 1, "chunk": 2}

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        self.splits = ("train", "val", "test") if self.config.val_sentences else ("train", "test")
        self._read: dict[str, list[Example]] = {}

    def _sentences(self, filename: str) -> list[Example]:
        if filename not in self._read:
            cfg = self.config
            sentences = read_conll(self.file(filename), 0, self.label_columns[cfg.label], 3)
            if cfg.aux_label:
                aux = read_conll(self.file(filename), 0, self.label_columns[cfg.aux_label], 3)
                sentences = [{**ex, "aux_tags": other["tags"]} for ex, other in zip(sentences, aux)]
            self._read[filename] = sentences
        return self._read[filename]

    def load(self, split: str) -> list[Example]:
        self.check_split(split)
        cfg = self.config
        if split == "test":
            out = self._sentences("test.txt")
        else:
            train = self._sentences("train.txt")
            cut = len(train) - cfg.val_sentences
            out = train[:cut] if split == "train" else train[cut:]
        return out[: cfg.limit] if cfg.limit else out


# --- the user's own files -------------------------------------------------------------------------

@dataclass
class CoNLLFilesConfig:
    train_file: str = ""  # training sentences, CoNLL format (required)
    val_file: str | None = None  # validation sentences; none: the last val_fraction of train_file's sentences
    test_file: str | None = None  # test sentences; none: no test split (results are reported on val)
    val_fraction: Annotated[float, Range(0, lt=1)] = 0.1  # without val_file; 0: no val split
    word_column: Annotated[int, Range(-1024, 1023)] = 0  # column of the word, counted from 0
    # column of the label, counted from 0; -1: the last column
    label_column: Annotated[int, Range(-1024, 1023, note="-1: the last column")] = -1
    # columns every line must have; none: as many as the first line of each file
    columns: Annotated[int, Range(1, 1024)] | None = None
    encoding: str = "utf-8"

    def validate(self) -> None:
        if not self.train_file:
            raise ValueError("train_file is empty: give your CoNLL file, e.g. --set dataset.train_file=train.conll")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None


class CoNLLFiles(Dataset):
    """A user's own CoNLL-format files: choose the word and label columns, no code needed."""

    Config = CoNLLFilesConfig
    splits = ("train", "val", "test")

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        cfg = self.config
        has_val = bool(cfg.val_file) or cfg.val_fraction > 0
        self.splits = tuple(s for s, on in (("train", True), ("val", has_val), ("test", bool(cfg.test_file))) if on)
        self._read: dict[str, list[Example]] = {}

    def input_files(self) -> list[Path]:
        """The files read (for the prepared-data cache): train_file, and val_file and test_file when given."""
        return self.user_files("train_file", "val_file", "test_file")

    def _sentences(self, key: str) -> list[Example]:
        """The sentences of the file config ``key`` names (train_file, val_file, test_file)."""
        cfg = self.config
        name = str(getattr(cfg, key))
        if name not in self._read:
            path = local_path(name, self.data_dir, key=f"dataset.{key}", kind="file")
            self._read[name] = read_conll(path, cfg.word_column, cfg.label_column, cfg.columns, cfg.encoding)
        return self._read[name]

    def load(self, split: str) -> list[Example]:
        self.check_split(split)
        cfg = self.config
        if not cfg.train_file:
            raise DataError("dataset.train_file is empty: give your CoNLL file")
        if split == "test":
            return self._sentences("test_file")
        if cfg.val_file:
            return self._sentences("train_file" if split == "train" else "val_file")
        train = self._sentences("train_file")
        cut = len(train) - int(len(train) * cfg.val_fraction)
        if split == "val" and cut == len(train) or split == "train" and cut == 0:
            raise DataError(f"{cfg.train_file}: {len(train)} sentences are too few to split off "
                            f"val_fraction={cfg.val_fraction}; add sentences or give dataset.val_file")
        return train[:cut] if split == "train" else train[cut:]
