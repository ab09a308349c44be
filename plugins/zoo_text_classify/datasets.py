"""Datasets of (text, label) examples: IMDB, and a user's own CSV / TSV / JSONL files.

Every example is ``{"text": str, "label": str}`` (plus ``"id"`` where the source has
one), so the ``classification`` task serves both.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import ctypes
import io
import json
import random
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from zoo import SEED, DataError, Dataset, Range, Source, local_path, read_text

# the longest CSV field the C reader can hold: a C long (sys.maxsize overflows it where a long is 32 bits)
CSV_FIELD_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1

# --- IMDB -----------------------------------------------------------------------------------------

TAR = "aclImdb_v1.tar.gz"
MEMBER_RE = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")  # the reviews we read; nothing else


@dataclass
class IMDBConfig:
    # training reviews held out for validation (10%); 0: no val split
    val_size: Annotated[int, Range(0, 24_999, note="IMDB has 25000 training reviews")] = 2500
    split_seed: Annotated[int, SEED] = 0  # which reviews are held out; fixed so every run validates on the same ones
    # keep only this many reviews per split (classes balanced): for quick trials and tests
    limit: Annotated[int, Range(2, note="none: every review")] | None = None
    source: str = "auto"  # "jsonl" (the imdb/*.jsonl.gz mirror), "tar" (aclImdb_v1.tar.gz) or auto: whichever is there

    def validate(self) -> None:
        if self.source not in ("auto", "jsonl", "tar"):
            raise ValueError(f"source must be auto, jsonl or tar, got {self.source!r}")


class IMDB(Dataset):
    """Large Movie Review Dataset v1.0 (Maas et al., ACL 2011): 25,000 train and 25,000 test reviews.

    Read from the data dir's ``imdb/train.jsonl.gz`` / ``test.jsonl.gz`` (one review a
    line: ``id``, ``rating``, ``label`` 1 = pos, ``path``, ``text``), or from the official
    archive ``imdb/aclImdb_v1.tar.gz`` (downloaded into the cache when there is no data
    dir). The archive is never unpacked to disk: each member's name must be a review
    path (``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt``) and pass tarfile's ``data``
    filter (no absolute paths, no ``..``, no links), and only those members are read.
    """

    Config = IMDBConfig
    folder = "imdb"
    sources = (
        Source("train.jsonl.gz", "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
               "bc364d3544e31e3736dbfb85148cfab80740c7079d9ea3320abc2d49a149b8c4", 13147031),
        Source("test.jsonl.gz", "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
               "06d66e7061593e21087d61316ed10a06a4ecd65626b55ac25a88caae33358fbf", 12842478),
        Source(TAR, "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
               "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),
    )

    _cache: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (file, split) -> reviews, per process

    def _use_tar(self) -> bool:
        if self.config.source != "auto":
            return self.config.source == "tar"
        root = self.data_dir
        if root is None:
            return True  # nothing local: the official archive is downloaded into the cache
        return not (root / self.folder / "train.jsonl.gz").is_file() and (root / self.folder / TAR).is_file()

    def input_files(self) -> list[Path]:
        """The files read (for the prepared-data cache): the archive, or the two jsonl.gz files."""
        if self._use_tar():
            return [self.file(TAR)]
        return [self.file("train.jsonl.gz"), self.file("test.jsonl.gz")]

    def reviews(self, part: str) -> list[dict[str, Any]]:
        """All reviews of ``part`` ("train" or "test"), pos then neg, by id."""
        if self._use_tar():
            path = self.file(TAR)
            key = (str(path), part)
            if key not in self._cache:
                for p, rows in read_tar(path).items():
                    self._cache[(str(path), p)] = rows
        else:
            if self.data_dir is None:
                raise DataError("dataset.source=jsonl: the imdb/*.jsonl.gz mirror is read from the data dir only; "
                                "set ZOO_DATA_DIR (or --data-dir), or use dataset.source=tar to download the archive")
            path = self.file(f"{part}.jsonl.gz")
            key = (str(path), part)
            if key not in self._cache:
                self._cache[key] = read_jsonl_gz(path)
        return self._cache[key]

    def load(self, split: str) -> list[dict[str, Any]]:
        self.check_split(split)
        cfg = self.config
        if split == "test":
            rows = self.reviews("test")
        else:
            train = self.reviews("train")
            order = list(range(len(train)))
            random.Random(cfg.split_seed).shuffle(order)
            held = set(order[: cfg.val_size])
            rows = [r for i, r in enumerate(train) if (i in held) == (split == "val")]
        if cfg.limit is not None:
            rows = balanced_head(rows, cfg.limit)
        return rows


def balanced_head(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows taking classes in turn (IMDB files hold all pos, then all neg)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    out: list[dict[str, Any]] = []
    queues = [iter(v) for v in by_label.values()]
    while len(out) < limit and queues:
        for q in list(queues):
            r = next(q, None)
            if r is None:
                queues.remove(q)
            elif len(out) < limit:
                out.append(r)
    return out


def _review(text: str, label: str, path: str, rating: int) -> dict[str, Any]:
    """One review; its ``id`` is its path in the official archive (``test/pos/0_10.txt``), unique."""
    return {"text": text, "label": label, "id": path, "rating": rating}


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():  # the newline that ends the file
            continue
        try:
            obj = json.loads(line)
            label = {1: "pos", 0: "neg"}[obj["label"]]
            rows.append(_review(obj["text"], label, str(obj["path"]), int(obj["rating"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{lineno}: not an IMDB review record ({exc}); replace the file with "
                            "the mirror described in the data dir's README") from None
    return rows


def read_tar(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The reviews of the official archive, by part; rejects members that could escape a folder."""
    parts: dict[str, list[tuple[str, int, dict[str, Any]]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts_ = member.name.split("/")
                if member.name.startswith("/") or ".." in parts_:  # data_filter would only strip a leading "/"
                    raise DataError(f"{path}: unsafe member {member.name!r} (absolute or with '..'); the archive is "
                                    "not the official aclImdb_v1.tar.gz, delete it")
                try:  # the same checks extractall(filter="data") makes: no absolute paths, no "..", no links out
                    tarfile.data_filter(member, "/nonexistent-extract-root")
                except tarfile.FilterError as exc:
                    raise DataError(f"{path}: unsafe member {member.name!r} ({exc}); the archive is not the "
                                    "official aclImdb_v1.tar.gz, delete it") from None
                m = MEMBER_RE.fullmatch(member.name)
                if not m or not member.isfile():
                    continue  # unsup/, *.feat, imdb.vocab, urls: not used
                part, label, rid, rating = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}: member {member.name}: not UTF-8 (byte offset {exc.start})") from None
                parts[part].append((label, rid, _review(text, label, member.name.split("/", 1)[1], rating)))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read it as a .tar.gz archive ({exc}); delete it and download it again") \
            from exc
    out = {}
    for part, rows in parts.items():
        if not rows:
            raise DataError(f"{path}: holds no reviews under aclImdb/{part}/pos or neg; is it aclImdb_v1.tar.gz?")
        rows.sort(key=lambda r: (r[0] != "pos", r[1]))  # the mirror's order: pos then neg, by id
        out[part] = [r for _, _, r in rows]
    return out


# --- your own files --------------------------------------------------------------------------------

@dataclass
class TextClassificationConfig:
    train_file: str = ""  # CSV (.csv), TSV (.tsv) or JSON lines (.jsonl / .jsonl.gz) with a header / keys
    val_file: str | None = None  # none: val_fraction of train is held out
    test_file: str | None = None  # none: no test split (results are reported on val)
    text_column: str = "text"
    label_column: str = "label"
    val_fraction: Annotated[float, Range(0, lt=1)] = 0.1  # without val_file: this share of train, drawn with split_seed
    split_seed: Annotated[int, SEED] = 0
    encoding: str = "utf-8"
    # keep only the first N rows of each split (quick trials)
    limit: Annotated[int, Range(1, note="none: every row")] | None = None

    def validate(self) -> None:
        if not self.train_file:
            raise ValueError("train_file is empty: give your CSV or JSONL file, e.g. "
                             "--set dataset.train_file=reviews.csv")
        if self.val_file is None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1) when no val_file is given, got {self.val_fraction}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None


class TextClassificationFiles(Dataset):
    """Your own labelled texts: one row (CSV / TSV) or one JSON object (JSONL) per example.

    Labels are strings (a JSON number reads as its text). An empty text or label is an
    error naming the file and line, and so is a training file with a single class.
    """

    Config = TextClassificationConfig

    def __init__(self, config: Any = None, data_dir: Path | None = None):
        super().__init__(config, data_dir)
        self.splits = ("train", "val", "test") if self.config.test_file else ("train", "val")
        self._read: dict[str, list[dict[str, Any]]] = {}

    def input_files(self) -> list[Path]:
        """The files read (for the prepared-data cache): train_file, and val_file and test_file when given."""
        return self.user_files("train_file", "val_file", "test_file")

    def rows(self, key: str) -> list[dict[str, Any]]:
        name = getattr(self.config, key)
        if name not in self._read:
            path = local_path(name, self.data_dir, key=f"dataset.{key}", kind="file")
            self._read[name] = read_table(path, self.config)
        return self._read[name]

    def load(self, split: str) -> list[dict[str, Any]]:
        self.check_split(split)
        cfg = self.config
        if split == "test":
            rows = self.rows("test_file")
        elif cfg.val_file is not None:
            rows = self.rows("train_file" if split == "train" else "val_file")
        else:
            train = self.rows("train_file")
            order = list(range(len(train)))
            random.Random(cfg.split_seed).shuffle(order)
            n_val = max(1, round(cfg.val_fraction * len(train)))
            if n_val >= len(train):
                raise DataError(f"{cfg.train_file}: {len(train)} rows are too few to hold out val_fraction="
                                f"{cfg.val_fraction}; add rows or give dataset.val_file")
            held = set(order[:n_val])
            rows = [r for i, r in enumerate(train) if (i in held) == (split == "val")]
        if cfg.limit is not None:
            rows = rows[: cfg.limit]
        if split == "train":
            classes = Counter(r["label"] for r in rows)
            if len(classes) < 2:
                only = next(iter(classes), "")
                raise DataError(f"{cfg.train_file}: column '{cfg.label_column}' has one class only ({_quote(repr(only))} in "
                                f"all {len(rows)} training rows); a classifier needs at least two classes")
        return rows


def read_table(path: Path, cfg: TextClassificationConfig) -> list[dict[str, Any]]:
    name = path.name.lower()
    text = read_text(path, cfg.encoding)  # a .jsonl.gz is decompressed there
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        rows = _read_jsonl(path, text, cfg)
    elif name.endswith((".csv", ".tsv")):
        rows = _read_csv(path, text, cfg, "\t" if name.endswith(".tsv") else ",")
    else:
        raise DataError(f"{path}: unknown format; name the file .csv, .tsv, .jsonl or .jsonl.gz")
    if not rows:
        raise DataError(f"{path}: holds no examples")
    return rows


def _check(path: Path, line: int, text: Any, label: Any, cfg: TextClassificationConfig) -> dict[str, Any]:
    for col, value in ((cfg.text_column, text), (cfg.label_column, label)):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{path}:{line}: missing {col!r} (the {'text' if col == cfg.text_column else 'label'} "
                            "column); fill it in or remove the row")
    if not isinstance(text, str):
        raise DataError(f"{path}:{line}: {cfg.text_column!r} must be a string, got {type(text).__name__}")
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise DataError(f"{path}:{line}: {cfg.label_column!r} must be a string or a number, got {_quote(label)}")
    return {"text": text, "label": str(label).strip(), "id": line}


def _read_csv(path: Path, text: str, cfg: TextClassificationConfig, delimiter: str) -> list[dict[str, Any]]:
    with _csv_fields_unlimited():  # a review may be longer than csv's default limit of 131,072 characters
        return _read_csv_rows(path, text, cfg, delimiter)


def _read_csv_rows(path: Path, text: str, cfg: TextClassificationConfig, delimiter: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty; it needs a header row naming its columns") from None
    except csv.Error as exc:
        raise DataError(f"{path}:1: {exc}") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    for col in (cfg.text_column, cfg.label_column):
        if col not in header:
            raise DataError(f"{path}:1: no column {col!r} in the header ({_quote(', '.join(header))}); set "
                            f"dataset.text_column / dataset.label_column")
    ti, li = header.index(cfg.text_column), header.index(cfg.label_column)
    rows = []
    try:
        for fields in reader:
            line = reader.line_num  # the line the row ends on (a quoted text may span lines)
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            text_v = fields[ti] if ti < len(fields) else None
            label_v = fields[li] if li < len(fields) else None
            rows.append(_check(path, line, text_v, label_v, cfg))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    return rows


@contextlib.contextmanager
def _csv_fields_unlimited() -> Iterator[None]:
    """csv's field size limit raised to the largest the C reader can count, for one read (the limit is global)."""
    before = csv.field_size_limit()
    csv.field_size_limit(CSV_FIELD_MAX)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_jsonl(path: Path, text: str, cfg: TextClassificationConfig) -> list[dict[str, Any]]:
    rows = []
    for line, raw in enumerate(text.split("\n"), 1):  # JSON Lines ends lines at \n only: U+0085, U+2028 may be text
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise DataError(f"{path}:{line}: not a JSON object ({exc})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{line}: expected a JSON object with keys {cfg.text_column!r} and "
                            f"{cfg.label_column!r}")
        rows.append(_check(path, line, obj.get(cfg.text_column), obj.get(cfg.label_column), cfg))
    return rows


def _quote(value: object, limit: int = 80) -> str:
    """At most ``limit`` characters of ``value``'s text for an error message: a 10 MB line is not quoted whole."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
