"""Plain-text corpora. Every example is ``{"text": str}``.

Files are read as bytes and decoded whole, so the text is exactly the file's
content: line endings are kept as they are (no ``\\r\\n`` translation).
"""

from __future__ import annotations

import codecs
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from zoo import DataError, Dataset, Source, read_text
from zoo.config import Range


def decode_file(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path``: empty files are errors too (see :func:`zoo.read_text`)."""
    return read_text(path, encoding, allow_empty=False)


# --- tiny-shakespeare -----------------------------------------------------------------------------

class TinyShakespeare(Dataset):
    """tiny-shakespeare, split as nanoGPT does: the first 90% of the characters train, the last 10% val.

    Each split is one example holding its whole text.
    """

    folder = "tinyshakespeare"
    sources = (
        Source(
            "input.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
        ),
    )
    splits = ("train", "val")
    train_fraction = 0.9  # nanoGPT's data/shakespeare_char/prepare.py: train = text[:int(n * 0.9)]

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        self._text: str | None = None

    def text(self) -> str:
        """The whole file, read (and checked against its sha256) once."""
        if self._text is None:
            self._text = decode_file(self.file("input.txt"))
        return self._text

    def load(self, split: str) -> list[dict[str, str]]:
        self.check_split(split)
        text = self.text()
        cut = int(len(text) * self.train_fraction)
        return [{"text": text[:cut] if split == "train" else text[cut:]}]


# --- the user's own files -------------------------------------------------------------------------

@dataclass
class TextFilesConfig:
    files: list[str] = field(default_factory=list)  # training files; globs allowed ("corpus/*.txt", "**/*.md")
    val_files: list[str] = field(default_factory=list)  # validation files; when empty, the end of each file
    # without val_files: the last 10% of each file's characters are val
    val_fraction: Annotated[float, Range(0, lt=1)] = 0.1
    encoding: str = "utf-8"  # of every file; any name Python's codecs know

    def validate(self) -> None:
        if not self.files:
            raise ValueError("files is empty: give the text files to train on, e.g. --set 'dataset.files=[\"corpus.txt\"]'")
        if not self.val_files and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when no val_files are given, got {self.val_fraction}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None


def expand(patterns: list[str], key: str) -> list[Path]:
    """The files named by ``patterns`` (paths or globs), in order, each once.

    A glob's matches are sorted; a glob that matches nothing is an error, and so is a
    plain path that does not exist.
    """
    out: dict[Path, None] = {}  # an ordered set
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if glob.has_magic(expanded):
            matches = sorted(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p))
            if not matches:
                raise DataError(f"dataset.{key}: the glob '{pattern}' matches no file (relative to {Path.cwd()})")
            out.update((Path(m), None) for m in matches)
        else:
            path = Path(expanded)
            if not path.exists():
                raise DataError(f"dataset.{key}: {path}: no such file (relative to {Path.cwd()})")
            out[path] = None
    return list(out)


class TextFiles(Dataset):
    """A user's own plain-text corpus: one example per file per split.

    With ``val_files``, the ``files`` are all train and the ``val_files`` all val.
    Without, every file is split on its own: its first ``1 - val_fraction`` of
    characters are train, the rest val. Splitting each file (rather than their
    concatenation) puts the end of every file in val, so that with several files
    (authors, books) the validation text is drawn from all of them; with a single
    file it is exactly the tiny-shakespeare / nanoGPT split.
    """

    Config = TextFilesConfig
    splits = ("train", "val")

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        self._texts: dict[Path, str] = {}  # each file is read once

    def read(self, path: Path) -> str:
        if path not in self._texts:
            self._texts[path] = decode_file(path, self.config.encoding)
        return self._texts[path]

    def load(self, split: str) -> list[dict[str, str]]:
        self.check_split(split)
        cfg = self.config
        if not cfg.files:  # validate() says so too; a Config built by hand may skip it
            raise DataError("dataset.files is empty: give the text files to train on")
        train = expand(cfg.files, "files")
        if cfg.val_files:
            val = expand(cfg.val_files, "val_files")
            both = sorted({p.resolve() for p in train} & {p.resolve() for p in val})
            if both:
                raise DataError(f"{both[0]}: listed in both dataset.files and dataset.val_files; "
                                "validation text must not be trained on")
            texts = [self.read(p) for p in (train if split == "train" else val)]
        else:
            texts = []
            for path in train:
                text = self.read(path)
                cut = int(len(text) * (1.0 - cfg.val_fraction))
                texts.append(text[:cut] if split == "train" else text[cut:])
        examples = [{"text": t} for t in texts if t]
        if not examples:  # only when every file is a few characters long
            raise DataError(f"dataset.files: the {split} split is empty (files too short for "
                            f"val_fraction={cfg.val_fraction}); give more text or use val_files")
        return examples
