"""Text corpora: tiny-shakespeare and a user's own documents. Every example is ``{"text": str}``.

Plain-text files are read as bytes and decoded whole, so the text is exactly the file's
content: line endings are kept as they are (no ``\\r\\n`` translation). HTML, PDF and
Word files are read through :mod:`zoo_text.documents`.
"""

from __future__ import annotations

import codecs
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from zoo import DataError, Dataset, Range, Source, TextStream, read_chunks, read_text

from .documents import MissingExtra, expand, extract
from .streaming import head, scan, streamable, tail
from .overlap import WARN_ABOVE, overlap, streamed_overlap

log = logging.getLogger(__name__)


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
    # training documents: paths, globs ("notes/**/*.md") or folders (every .txt .md .html .htm .pdf .docx in them,
    # recursively); .pdf and .docx need the docs extra (pip install 'zoo[docs]')
    files: list[str] = field(default_factory=list)
    # held-out documents, never trained on: text that shares nothing with training (the reference's phase 2/3);
    # when empty, the last val_fraction of each file's characters
    val_files: list[str] = field(default_factory=list)
    val_fraction: Annotated[float, Range(0, lt=1)] = 0.1
    encoding: str = "utf-8"  # of every text and HTML file; any name Python's codecs know
    # a file whose text cannot be had (encrypted or scanned PDF, damaged file, bytes that are not text):
    # refuse: stop, naming it and the reason; skip: leave it out, with a warning naming it
    on_error: Literal["refuse", "skip"] = "refuse"
    # tidy the whitespace of plain-text files too (HTML, PDF and Word text always is); false: their exact text
    normalize_text: bool = False

    def validate(self) -> None:
        # an empty files list is a valid config (a model imported for inference has no training text);
        # reading a split then fails, naming dataset.files
        if not self.val_files and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when no val_files are given, got {self.val_fraction}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None


class TextFiles(Dataset):
    """A user's own documents: one example per file per split.

    With ``val_files``, the ``files`` are all train and the ``val_files`` all val: the
    protocol of the reference's phases 2 and 3, where the validation text is a document that
    shares nothing with the training text. Without, every file is split on its own: its first
    ``1 - val_fraction`` of characters are train, the rest val. Splitting each file (rather
    than their concatenation) puts the end of every file in val, so that with several files
    (authors, books) the validation text is drawn from all of them; with a single file it is
    exactly the tiny-shakespeare / nanoGPT split.

    Reading logs each file's characters (info), a summary per list of files, and once both
    splits are loaded the share of validation word 8-grams also found in the training text
    (:mod:`zoo_text.overlap`), as a warning when above 1%: validation text the model has seen.
    """

    Config = TextFilesConfig
    splits = ("train", "val")

    def __init__(self, config=None, data_dir=None):
        super().__init__(config, data_dir)
        self._texts: dict[Path, str | None] = {}  # each file is read once; None: skipped as unreadable
        self._kinds: dict[Path, str] = {}
        self._lists: dict[str, list[Path]] = {}
        self._ignored: dict[str, int] = {}  # files in named folders that are no documents
        self._loaded: dict[str, list[str]] = {}
        self._overlap_reported = False
        self._streamed: set[str] = set()
        self._scanned: dict[Path, int | None] = {}  # characters of each plain-text file streamed (checked once)

    def read(self, path: Path) -> str | None:
        """The text of ``path``, or None when it cannot be read and ``on_error`` is skip."""
        if path not in self._texts:
            cfg = self.config
            try:
                text, kind = extract(path, cfg.encoding, cfg.normalize_text)
            except MissingExtra:
                raise
            except DataError as exc:
                if cfg.on_error != "skip":
                    raise DataError(f"{exc} (or set dataset.on_error=skip to leave out files that cannot be "
                                    "read)") from None
                log.warning("skipped %s", exc)
                text, kind = None, "skipped"
            else:
                log.info("read %s: %s characters (%s)", path, f"{len(text):,}", kind)
            self._texts[path], self._kinds[path] = text, kind
        return self._texts[path]

    def paths(self, key: str) -> list[Path]:
        """The files ``dataset.files`` or ``dataset.val_files`` names (see :func:`zoo_text.documents.expand`)."""
        if key not in self._lists:
            paths, ignored = expand(getattr(self.config, key), key)
            for path in ignored:
                log.info("not read: %s (not a document type; name it, or a glob matching it, to read it as text)", path)
            self._lists[key], self._ignored[key] = paths, len(ignored)
        return self._lists[key]

    def texts(self, key: str) -> list[str]:
        """The texts of the files of ``dataset.KEY`` that could be read; a summary is logged the first time."""
        paths = self.paths(key)
        first = any(p not in self._texts for p in paths)
        texts = [self.read(p) for p in paths]
        kept = [t for t in texts if t is not None]
        if first:
            kinds = Counter(self._kinds[p].split(",")[0] for p in paths)
            skipped, ignored = kinds.pop("skipped", 0), self._ignored[key]
            log.info("dataset.%s: %d file(s), %s characters (%s)%s%s", key, len(kept),
                     f"{sum(map(len, kept)):,}", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
                     f"; {skipped} skipped as unreadable" if skipped else "",
                     f"; {ignored} other file(s) in its folders not read" if ignored else "")
        if not kept:
            raise DataError(f"dataset.{key}: every one of its {len(paths)} file(s) was unreadable and skipped; "
                            "see the warnings above")
        return kept

    # -- streaming, for the prepared-data cache: a plain-text file is never whole in memory ---------------
    def input_files(self) -> list[Path]:
        return [*self.paths("files"), *(self.paths("val_files") if self.config.val_files else [])]

    def stream(self, split: str) -> TextStream:
        """The documents of ``split`` as :meth:`load` gives them, each in chunks: plain-text files are read
        twice in chunks (once to check and count their characters, once to hand them on), documents
        (HTML, PDF, Word, or any file with normalize_text) are extracted one at a time."""
        self.check_split(split)
        cfg = self.config
        if not cfg.files:  # an imported model's config names none until the user gives some
            raise DataError("dataset.files is empty: give the text files to read, e.g. "
                            "--set 'dataset.files=[\"corpus.txt\"]'")
        if cfg.val_files:
            self._check_disjoint()
        key, paths, part = self._split_source(split)
        share = 1.0 if part is None else (1.0 - cfg.val_fraction if part == "head" else cfg.val_fraction)
        total = int(sum(p.stat().st_size for p in paths) * share)
        if split == "val" and "train" in self._streamed:  # as load() does once both splits are read
            self._report_streamed_overlap()
        self._streamed.add(split)
        return TextStream(self._documents(key, paths, part), total)

    def _report_streamed_overlap(self) -> None:
        """:meth:`_report_overlap` for streamed splits, from samples of both (bounded memory)."""
        if self._overlap_reported:
            return
        self._overlap_reported = True
        sizes = {}
        for split in ("train", "val"):
            key = "files" if split == "train" or not self.config.val_files else "val_files"
            sizes[split] = sum(p.stat().st_size for p in self.paths(key))
        train, val = (self._documents(*self._split_source(s)) for s in ("train", "val"))
        found, estimate = streamed_overlap(train, val, sizes["train"], sizes["val"])
        what = found.describe() + (" (estimated from samples of both splits: a lower bound)" if estimate else "")
        if found.fraction is not None and found.fraction > WARN_ABOVE:
            log.warning("%s: the validation loss will look better than on unseen text; hold out documents that "
                        "share nothing with the training ones (dataset.val_files)", what)
        else:
            log.info("%s", what)

    def _split_source(self, split: str) -> tuple[str, list[Path], str | None]:
        if self.config.val_files:
            key = "files" if split == "train" else "val_files"
            return key, self.paths(key), None
        return "files", self.paths("files"), ("head" if split == "train" else "tail")

    def _documents(self, key: str, paths: list[Path], part: str | None) -> Iterator[Iterator[str]]:
        cfg, kept = self.config, 0
        for path in paths:
            if streamable(path, cfg.normalize_text):
                n = self._scan(path)
                if n is None:
                    continue
                chunks = lambda p=path: read_chunks(p, cfg.encoding)  # noqa: E731
            else:
                text = self.read(path)
                if text is None:
                    continue
                n, chunks = len(text), (lambda t=text: iter([t]))
            cut = n if part is None else int(n * (1.0 - cfg.val_fraction))
            if part == "tail" and cut < n:
                kept += 1
                yield tail(chunks(), cut)
            elif part != "tail" and cut > 0:
                kept += 1
                yield head(chunks(), cut)
        if not kept:
            split = "val" if part == "tail" or key == "val_files" else "train"
            raise DataError(f"dataset.{key}: no text for the {split} "
                            "split (every file unreadable and skipped, or too short for val_fraction); see the "
                            "warnings above")

    def _scan(self, path: Path) -> int | None:
        """Characters of a plain-text file, every byte checked; None when it cannot be read and on_error is skip."""
        if path in self._scanned:
            return self._scanned[path]
        try:
            n = scan(path, self.config.encoding)
        except DataError as exc:
            if self.config.on_error != "skip":
                raise DataError(f"{exc} (or set dataset.on_error=skip to leave out files that cannot be "
                                "read)") from None
            log.warning("skipped %s", exc)
            self._scanned[path] = None
            return None
        log.info("read %s: %s characters (text, streamed)", path, f"{n:,}")
        self._scanned[path] = n
        return n

    def _check_disjoint(self) -> None:
        both = sorted({p.resolve() for p in self.paths("files")} & {p.resolve() for p in self.paths("val_files")})
        if both:
            raise DataError(f"{both[0]}: listed in both dataset.files and dataset.val_files; "
                            "validation text must not be trained on")

    def load(self, split: str) -> list[dict[str, str]]:
        self.check_split(split)
        texts = self._split_texts(split)
        examples = [{"text": t} for t in texts if t]
        if not examples:  # only when every file is a few characters long
            raise DataError(f"dataset.files: the {split} split is empty (files too short for "
                            f"val_fraction={self.config.val_fraction}); give more text or use val_files")
        self._loaded[split] = texts
        self._report_overlap()
        return examples

    def _split_texts(self, split: str) -> list[str]:
        cfg = self.config
        if not cfg.files:  # validate() says so too; a Config built by hand may skip it
            raise DataError("dataset.files is empty: give the text files to read, e.g. "
                            "--set 'dataset.files=[\"corpus.txt\"]'")
        if cfg.val_files:
            self._check_disjoint()
            return self.texts("files" if split == "train" else "val_files")
        cuts = [int(len(t) * (1.0 - cfg.val_fraction)) for t in self.texts("files")]
        return [t[:c] if split == "train" else t[c:] for t, c in zip(self.texts("files"), cuts)]

    def overlap(self):
        """The word 8-gram overlap of the loaded val split with the loaded train split (both must be loaded)."""
        return overlap(self._loaded["train"], self._loaded["val"])

    def _report_overlap(self) -> None:
        if self._overlap_reported or not {"train", "val"} <= set(self._loaded):
            return
        self._overlap_reported = True
        found = self.overlap()
        if found.fraction is not None and found.fraction > WARN_ABOVE:
            log.warning("%s: the validation loss will look better than on unseen text; hold out documents that "
                        "share nothing with the training ones (dataset.val_files)", found.describe())
        else:
            log.info("%s", found.describe())
