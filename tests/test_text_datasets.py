"""The text datasets: tiny-shakespeare (real data, under ZOO_DATA_DIR) and a user's own files."""

from __future__ import annotations

import shutil

import pytest

import zoo
from zoo import config
from zoo_text.datasets import TextFiles, TinyShakespeare

from conftest import data_dir


def text_files(**values) -> TextFiles:
    return TextFiles(config.build(TextFiles.Config, values, "dataset"))


# --- tiny-shakespeare -----------------------------------------------------------------------------

@pytest.fixture
def shakespeare_dir():
    root = data_dir()
    if root is None or not (root / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("ZOO_DATA_DIR is not set or holds no tinyshakespeare/input.txt")
    return root


def test_tinyshakespeare_splits_are_nanogpts(shakespeare_dir):
    ds = TinyShakespeare(data_dir=shakespeare_dir)
    train, val = ds.load("train"), ds.load("val")
    assert len(train) == len(val) == 1
    assert len(train[0]["text"]) == 1_003_854  # int(1_115_394 * 0.9)
    assert len(val[0]["text"]) == 111_540
    whole = (shakespeare_dir / "tinyshakespeare" / "input.txt").read_bytes().decode("utf-8")
    assert train[0]["text"] + val[0]["text"] == whole
    assert train[0]["text"].startswith("First Citizen:\nBefore we proceed")
    with pytest.raises(zoo.ZooError, match="no split 'test'"):
        ds.load("test")


def test_tinyshakespeare_sha256_mismatch_is_a_data_error(shakespeare_dir, tmp_path):
    (tmp_path / "tinyshakespeare").mkdir()
    copy = tmp_path / "tinyshakespeare" / "input.txt"
    shutil.copyfile(shakespeare_dir / "tinyshakespeare" / "input.txt", copy)
    data = bytearray(copy.read_bytes())
    data[1000] ^= 0x01  # one byte changed, size unchanged
    copy.write_bytes(bytes(data))
    with pytest.raises(zoo.DataError, match="sha256.*does not match"):
        TinyShakespeare(data_dir=tmp_path).load("train")


def test_tinyshakespeare_missing_from_data_dir_names_the_file(tmp_path):
    with pytest.raises(zoo.DataError, match=r"tinyshakespeare/input\.txt"):
        TinyShakespeare(data_dir=tmp_path).load("train")


# --- the user's own files -------------------------------------------------------------------------

def test_text_files_val_fraction_splits_the_end_of_each_file(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("0123456789" * 10, encoding="utf-8")  # 100 chars
    b.write_bytes("ab\r\ncd é\n".encode())  # line endings are kept as they are
    ds = text_files(files=[str(a), str(b)], val_fraction=0.2)
    train, val = ds.load("train"), ds.load("val")
    assert [len(e["text"]) for e in train] == [80, 7]
    assert [e["text"] for e in val] == ["0123456789" * 2, "é\n"]
    assert train[1]["text"] + val[1]["text"] == "ab\r\ncd é\n"


def test_text_files_default_val_fraction_matches_tinyshakespeare_split(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("x" * 1234, encoding="utf-8")
    ds = text_files(files=[str(path)])
    assert len(ds.load("train")[0]["text"]) == int(1234 * 0.9)
    assert len(ds.load("val")[0]["text"]) == 1234 - int(1234 * 0.9)


def test_text_files_val_files_and_globs(tmp_path):
    (tmp_path / "books").mkdir()
    for name in ("b.txt", "a.txt", "notes.md"):
        (tmp_path / "books" / name).write_text(f"text of {name}\n", encoding="utf-8")
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("validation text\n", encoding="utf-8")
    ds = text_files(files=[str(tmp_path / "books" / "*.txt")], val_files=[str(held_out)])
    # a glob's matches are sorted; with val_files, train files are used whole
    assert ds.load("train") == [{"text": "text of a.txt\n"}, {"text": "text of b.txt\n"}]
    assert ds.load("val") == [{"text": "validation text\n"}]
    recursive = text_files(files=[str(tmp_path / "**" / "*.md"), str(tmp_path / "books" / "notes.md")])
    # matched twice, used once: 17 characters, the last 17 - int(17 * 0.9) = 2 of them val
    assert recursive.load("train") == [{"text": "text of notes.m"}]
    assert recursive.load("val") == [{"text": "d\n"}]


def test_text_files_are_read_once(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("first version of the text", encoding="utf-8")
    ds = text_files(files=[str(path)])
    train = ds.load("train")
    path.write_text("second version", encoding="utf-8")
    assert ds.load("train") == train


def test_text_files_val_files_overlapping_train_is_an_error(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("some text", encoding="utf-8")
    ds = text_files(files=[str(tmp_path / "*.txt")], val_files=[str(path)])
    with pytest.raises(zoo.DataError, match="both dataset.files and dataset.val_files"):
        ds.load("train")


def test_text_files_empty_file_is_a_data_error_naming_it(tmp_path):
    good, empty = tmp_path / "good.txt", tmp_path / "empty.txt"
    good.write_text("hello", encoding="utf-8")
    empty.write_bytes(b"")
    with pytest.raises(zoo.DataError, match=r"empty\.txt: the file is empty"):
        text_files(files=[str(good), str(empty)]).load("train")


def test_text_files_non_utf8_names_the_file_and_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"hello \xff world")
    with pytest.raises(zoo.DataError) as info:
        text_files(files=[str(path)]).load("train")
    message = str(info.value)
    assert str(path) in message
    assert "byte offset 6" in message and "0xff" in message and "line 1" in message
    assert "dataset.encoding" in message  # says what to do
    # the same file read with the encoding it is written in
    assert text_files(files=[str(path)], encoding="latin-1").load("train")[0]["text"].startswith("hello ÿ")


def test_text_files_bad_byte_line_number(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"line one\nline two\nline \xc3\x28three\n")  # a truncated 2-byte sequence
    with pytest.raises(zoo.DataError, match=r"byte offset 23 \(line 3\)"):
        text_files(files=[str(path)]).load("val")


def test_text_files_missing_file_and_empty_glob_are_data_errors(tmp_path):
    with pytest.raises(zoo.DataError, match=r"nope\.txt: no such file"):
        text_files(files=[str(tmp_path / "nope.txt")]).load("train")
    with pytest.raises(zoo.DataError, match=r"the glob '.*\*\.txt' matches no file"):
        text_files(files=[str(tmp_path / "*.txt")]).load("train")
    (tmp_path / "folder").mkdir()
    with pytest.raises(zoo.DataError, match="is a folder"):
        text_files(files=[str(tmp_path / "folder")]).load("train")


def test_text_files_config_errors():
    empty = config.build(TextFiles.Config, {}, "dataset")  # valid: a model imported for inference has no text
    with pytest.raises(zoo.DataError, match=r"dataset.files is empty: .*--set 'dataset.files="):
        TextFiles(empty).load("val")
    with pytest.raises(zoo.ConfigError, match="val_fraction must be in"):
        config.build(TextFiles.Config, {"files": ["a.txt"], "val_fraction": 1.0}, "dataset")
    with pytest.raises(zoo.ConfigError, match="unknown encoding"):
        config.build(TextFiles.Config, {"files": ["a.txt"], "encoding": "utf-9"}, "dataset")
    with pytest.raises(zoo.DataError, match="dataset.files is empty"):
        TextFiles().load("train")  # a default Config, never validated


def test_read_text_decompresses_gz_and_names_the_line_of_bad_bytes(tmp_path):
    import gzip

    good = tmp_path / "a.jsonl.gz"
    good.write_bytes(gzip.compress("first\nsecond é\n".encode("utf-8")))
    assert zoo.read_text(good) == "first\nsecond é\n"
    bad = tmp_path / "b.txt.gz"
    bad.write_bytes(gzip.compress(b"ok\nbad \xff here\n"))
    with pytest.raises(zoo.DataError, match=r"b.txt.gz: not valid utf-8: byte 0xff .*\(line 2\) after decompression"):
        zoo.read_text(bad)
    broken = tmp_path / "c.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(zoo.DataError, match="c.gz: cannot read it as gzip"):
        zoo.read_text(broken)
