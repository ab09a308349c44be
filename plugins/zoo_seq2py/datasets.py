"""English -> Python pairs: CoNaLa (curated) and a user's own JSONL / CSV file.

Every example is ``{"src": intent, "tgt": code}``; CoNaLa examples also carry
``question_id``. Bad input (malformed JSON, a record without ``snippet``, an empty
intent) is a :class:`zoo.DataError` naming the file, and the line or record.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from zoo import SEED, DataError, Dataset, Range, Source, local_path, read_text

Example = dict[str, Any]
# the official archive holds conala-corpus/conala-{train,test}.json
CONALA_URL = "http://www.phontron.com/download/conala-corpus-v1.1.zip"


def _line_of(text: str, index: int, records: list[Any]) -> int:
    """The line where record ``index`` of a JSON array starts (for messages); 0 when unknown."""
    decoder = json.JSONDecoder()
    pos = text.find("[") + 1
    for i in range(index + 1):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if i == index:
            return text.count("\n", 0, pos) + 1
        try:
            _, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return 0
    return 0


def parse_json_records(text: str, where: Path | str) -> list[Any]:
    """A JSON array of records; malformed JSON names the line and column."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}, line {e.lineno}, column {e.colno}: malformed JSON ({e.msg})") from None
    if not isinstance(records, list):
        raise DataError(f"{where}: expected a JSON array of records, found a {type(records).__name__}")
    return records


def conala_examples(text: str, where: Path | str, *, both_intents: bool = False) -> list[Example]:
    """Examples of a CoNaLa JSON file; ``both_intents`` adds an (intent, snippet) example wherever
    the original Stack Overflow title differs from the rewritten intent."""
    records = parse_json_records(text, where)
    out: list[Example] = []
    for i, rec in enumerate(records):
        def bad(what: str) -> DataError:
            return DataError(f"{where}, record {i} (line {_line_of(text, i, records)}): {what}")

        if not isinstance(rec, dict):
            raise bad(f"expected an object, found {type(rec).__name__}")
        snippet = rec.get("snippet")
        if not isinstance(snippet, str) or not snippet.strip():
            raise bad("no 'snippet' (the Python code); every record needs one")
        rewritten, intent = rec.get("rewritten_intent"), rec.get("intent")
        src = rewritten if isinstance(rewritten, str) and rewritten.strip() else intent
        if not isinstance(src, str) or not src.strip():
            raise bad("empty intent: neither 'rewritten_intent' nor 'intent' holds text")
        ex: Example = {"src": src, "tgt": snippet, "question_id": rec.get("question_id", i)}
        out.append(ex)
        if both_intents and isinstance(intent, str) and intent.strip() and intent.strip() != src.strip():
            out.append({**ex, "src": intent, "augmented": True})
    return out


def carve(examples: list[Example], size: int, seed: int, key: str | None = None) -> tuple[list[Example], list[Example]]:
    """Split off about ``size`` examples (whole groups of ``key`` when given) with a fixed seed: (rest, carved)."""
    groups: dict[Any, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.get(key, i) if key else i, []).append(i)
    order = sorted(groups, key=str)
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    for g in order:
        if len(chosen) >= size:
            break
        chosen.update(groups[g])
    return [e for i, e in enumerate(examples) if i not in chosen], [e for i, e in enumerate(examples) if i in chosen]


@dataclass
class CoNaLaConfig:
    # records carved from train for validation (whole question_ids, fixed seed)
    val_size: Annotated[int, Range(1, 100_000)] = 200
    seed: Annotated[int, SEED] = 0  # of the validation carve
    both_intents: bool = False  # augmentation: also train on each record's original title (train split only)
    limit: Annotated[int, Range(1)] | None = None  # keep the first N examples of each split (quick runs and tests)


class CoNaLa(Dataset):
    """CoNaLa curated (Yin et al. 2018): 2,379 train and 500 test English intents with Python snippets."""

    Config = CoNaLaConfig
    folder = "conala"
    sources = (
        Source("conala-train.json", CONALA_URL,
               "790c9d444744717ef88b8b64422b26dafa1bd35af32ff12bdc53ef3cab9aff09", 588603),
        Source("conala-test.json", CONALA_URL,
               "b3f96344efa3bb819e2fe66cfd68be289ca4e4d37f5af19c32cf4ae211e8077e", 124086),
    )

    def load(self, split: str) -> list[Example]:
        self.check_split(split)
        cfg = self.config
        if split == "test":
            path = self.file("conala-test.json")
            examples = conala_examples(read_text(path), path)
        else:
            path = self.file("conala-train.json")
            examples = conala_examples(read_text(path), path, both_intents=cfg.both_intents)
            # the carve counts records, not the extra titles of both_intents: the split is the same with
            # or without them, and validation reads as the test split does (rewritten intents only)
            _, val = carve([e for e in examples if not e.get("augmented")], cfg.val_size, cfg.seed, key="question_id")
            held = {e["question_id"] for e in val}
            examples = val if split == "val" else [e for e in examples if e["question_id"] not in held]
        return examples[: cfg.limit] if cfg.limit is not None else examples


@dataclass
class PairsConfig:
    train_file: str = ""  # JSONL (one object per line) or CSV (with a header row); required
    val_file: str | None = None  # none: carve val_fraction of train
    test_file: str | None = None  # none: carve test_fraction of train
    src_field: str = "src"  # key (JSONL) or column (CSV) of the English text
    tgt_field: str = "tgt"  # key or column of the code
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.1
    seed: Annotated[int, SEED] = 0  # of the carves

    def validate(self) -> None:
        if not self.train_file:
            raise ValueError("train_file is required: --set dataset.train_file=pairs.jsonl")


def read_pairs(path: Path, src_field: str, tgt_field: str) -> list[Example]:
    """Pairs of a JSONL or CSV file (``.csv`` by its suffix); every bad line is named."""
    text = read_text(path)
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            for row in reader:
                rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: not a CSV row ({exc})") from None
        if reader.fieldnames is None or src_field not in reader.fieldnames or tgt_field not in reader.fieldnames:
            raise DataError(f"{path}, line 1: the header needs columns '{src_field}' and '{tgt_field}', "
                            f"found {_quote(reader.fieldnames)}")
    else:
        for n, line in enumerate(text.split("\n"), 1):  # lines end at \n only: U+0085, U+2028 may be text
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {n}, column {e.colno}: malformed JSON ({e.msg}); "
                                "expected one JSON object per line") from None
    out: list[Example] = []
    for n, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {n}: expected an object with '{src_field}' and '{tgt_field}'")
        src, tgt = row.get(src_field), row.get(tgt_field)
        if not isinstance(tgt, str) or not tgt.strip():
            raise DataError(f"{path}, line {n}: no '{tgt_field}' (the code); every pair needs one")
        if not isinstance(src, str) or not src.strip():
            raise DataError(f"{path}, line {n}: empty '{src_field}' (the English text)")
        out.append({"src": src, "tgt": tgt})
    if not out:
        raise DataError(f"{path}: no pairs found; expected JSONL objects or CSV rows with "
                        f"'{src_field}' and '{tgt_field}'")
    return out


class Pairs(Dataset):
    """Your own English -> code pairs: ``--set dataset.train_file=pairs.jsonl`` (or ``.csv``)."""

    Config = PairsConfig

    def input_files(self) -> list[Path]:
        """The files read (for the prepared-data cache): train_file, and val_file and test_file when given."""
        return self.user_files("train_file", "val_file", "test_file")

    def _path(self, key: str) -> Path:
        """The file config ``key`` names: relative to the working directory, else to the data dir."""
        return local_path(getattr(self.config, key), self.data_dir, key=f"dataset.{key}", kind="file")

    def load(self, split: str) -> list[Example]:
        self.check_split(split)
        cfg = self.config
        named = {"train": cfg.train_file, "val": cfg.val_file, "test": cfg.test_file}
        if split != "train" and named[split]:
            return read_pairs(self._path(f"{split}_file"), cfg.src_field, cfg.tgt_field)
        rest = read_pairs(self._path("train_file"), cfg.src_field, cfg.tgt_field)
        carved: dict[str, list[Example]] = {}
        for name, fraction in (("test", cfg.test_fraction), ("val", cfg.val_fraction)):
            if not named[name]:
                size = max(1, round(fraction * len(rest)))
                if size >= len(rest):
                    raise DataError(f"{cfg.train_file}: {len(rest)} pairs are too few to carve a {name} split; "
                                    f"give dataset.{name}_file")
                rest, carved[name] = carve(rest, size, cfg.seed + (name == "val"))
        return rest if split == "train" else carved[split]


def _quote(value: object, limit: int = 80) -> str:
    """At most ``limit`` characters of ``value``'s text for an error message: a 10 MB line is not quoted whole."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
