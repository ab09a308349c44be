"""The prepared-data cache (issue 28): keys, atomic and locked writes, verification, streaming, the CLI, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import zoo
from zoo import api
from zoo.build.prepare import build as build_run
from zoo.sdk.prepared import PreparedCache
from zoo.sdk.stream import read_chunks, whitespace_cuts
from zoo.sdk.prepared import MANIFEST

from conftest import ROOT

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.  \n"
        "  Indented line,\twith a tab and   spaces.\r\nCRLF line; café, naïve — “quotes” 東京 🙂\n\n\n") * 60


def tiny(files, **more):
    cfg = {
        "dataset": {"files": [str(f) for f in files]},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16},
        "task": {"block_size": 8, "eval_blocks": 8},
        "train": {"epochs": 1, "steps_per_epoch": 4, "batch_size": 4, "eval_batch_size": 8, "threads": 1,
                  "progress": False},
        "optim": {"lr": 3e-3, "warmup_steps": 0},
    }
    return zoo.config.merge(cfg, more)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def cache() -> PreparedCache:
    return PreparedCache()


def entries() -> dict[str, float]:
    """key -> creation time of every complete entry."""
    return {e.key: e.manifest["created"] for e in cache().entries() if e.manifest}


def built(files, entry="text-gpt", states=None, **more):
    resolved = zoo.resolve_entry(entry, tiny(files, **more))
    return build_run(resolved, None, states, ("train", "val"))


# --- streaming is exact ---------------------------------------------------------------------------

def test_chunks_of_a_file_are_its_exact_text_whatever_the_chunk_size(corpus):
    for size in (1, 2, 3, 5, 4096):  # cuts land inside multi-byte characters (é is 2 bytes, 🙂 4)
        assert "".join(read_chunks(corpus, chunk_bytes=size)) == TEXT


def test_an_undecodable_byte_is_named_by_offset_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("ok line\nsecond é line\n".encode() + b"\xff rest\n")
    with pytest.raises(zoo.DataError) as streamed:
        list(read_chunks(path, chunk_bytes=4))
    with pytest.raises(zoo.DataError) as whole:
        zoo.read_text(path)
    assert str(streamed.value) == str(whole.value)
    assert "byte offset 23 (line 3)" in str(streamed.value)


def test_bpe_and_char_encode_chunks_exactly_as_the_whole_text():
    from zoo_tokenizers.bpe import BPEConfig, BPETokenizer
    from zoo_tokenizers.char import CharTokenizer

    pieces = list(whitespace_cuts([TEXT[i:i + 97] for i in range(0, len(TEXT), 97)], min_chars=50))
    assert len(pieces) > 50 and "".join(pieces) == TEXT
    whole, chunked = BPETokenizer(BPEConfig(vocab_size=400)), BPETokenizer(BPEConfig(vocab_size=400))
    whole.fit([TEXT])
    chunked.fit(pieces)
    assert chunked.get_state() == whole.get_state()  # the same merges from the same word counts
    assert [i for ids in whole.encode_batch(pieces) for i in ids] == whole.encode(TEXT)
    char = CharTokenizer()
    char.fit(pieces)
    assert [int(i) for ids in char.encode_batch(pieces) for i in ids] == char.encode(TEXT)
    assert [int(i) for i in char.encode_batch(["xyz\u0100"])[0]] == char.encode("xyz\u0100")  # unseen: <unk>


def test_bpe_chunks_equal_the_whole_text_on_random_text_with_odd_whitespace():
    import random

    from zoo_tokenizers.bpe import BPEConfig, BPETokenizer

    pool = list("ab cd\n\t\r 12'sllve.,!?") + ["\x1c", "\x1f", "\u00a0", "\u2028", "\x0b", "\x0c", "\u0085",
                                                 "\u3000", "é", "🙂", "  ", "\n\n", "'s", "'ll"]
    rng = random.Random(0)
    tok = BPETokenizer(BPEConfig(vocab_size=320))
    tok.fit(["".join(rng.choice(pool) for _ in range(20000))])
    for _ in range(100):
        text = "".join(rng.choice(pool) for _ in range(2000))
        pieces = list(whitespace_cuts([text[i:i + 37] for i in range(0, len(text), 37)], min_chars=rng.randint(5, 200)))
        assert "".join(pieces) == text and len(pieces) > 3
        assert [i for ids in tok.encode_batch(pieces) for i in ids] == tok.encode(text)


def test_chunks_are_never_cut_before_the_separators_u001c_to_u001f():
    """Python calls U+001C-U+001F whitespace, GPT-2's pattern does not: BPE keeps ".\x1c" in one piece."""
    import random

    from zoo import split_text
    from zoo_tokenizers.bpe import BPEConfig, BPETokenizer

    tok = BPETokenizer(BPEConfig(vocab_size=300))
    tok.fit(["x.\x1cy, z!\x1f w.\x1d\n" * 50])
    assert tok.encode(".\x1c") != tok.encode(".") + tok.encode("\x1c")  # cutting there would change the ids
    rng = random.Random(0)
    pool = ["x", "yz", ".", "!,", "\x1c", "\x1d", "\x1e", "\x1f", "é"] * 8 + [" ", "\n", "\t", "\u2028"]
    for _ in range(50):
        text = "".join(rng.choice(pool) for _ in range(3000))
        size = rng.randint(5, 100)
        for pieces in (list(whitespace_cuts([text[i:i + 41] for i in range(0, len(text), 41)], min_chars=size)),
                       list(split_text(text, size))):
            assert "".join(pieces) == text and len(pieces) > 3
            assert not any(p[0] in "\x1c\x1d\x1e\x1f" for p in pieces[1:])
            assert [i for ids in tok.encode_batch(pieces) for i in ids] == tok.encode(text)
    # text whose only whitespace is U+001C-U+001F has no cut point at all: it stays whole
    text = "x.\x1cy!\x1f" * 200
    assert list(whitespace_cuts([text[i:i + 7] for i in range(0, len(text), 7)], min_chars=10)) == [text]
    assert list(split_text(text, 10)) == [text]


@pytest.mark.parametrize("entry, dtype", [("text-gpt", np.uint8), ("gpt-lm", np.uint16)])
def test_prepared_stream_is_a_memory_map_of_the_smallest_dtype_equal_to_encoding_in_memory(corpus, entry, dtype):
    more = {"dataset": {"name": "text:text", "files": [str(corpus)]}, "tokenizer": {"vocab_size": 300}} \
        if entry == "gpt-lm" else {}
    b = built([corpus], entry, **more)
    ids = b.splits["train"]["ids"]
    assert isinstance(ids, np.memmap) and ids.dtype == dtype
    direct = b.task.encode(b.dataset.load("train"))  # the whole text in memory, as before the cache
    assert np.array_equal(np.asarray(ids), direct["ids"])
    assert b.splits["train"]["bytes_per_token"] == direct["bytes_per_token"]


def test_gpt_lm_prepared_on_worker_processes_and_from_a_sample_equals_encoding_the_whole_text(corpus, monkeypatch,
                                                                                             caplog):
    import functools

    import zoo_lm.task
    import zoo_tokenizers.parallel as parallel

    monkeypatch.setattr(parallel, "ALONE_CHARS", 2000)  # past 2,000 characters, on worker processes
    monkeypatch.setattr(zoo_lm.task, "whitespace_cuts", functools.partial(whitespace_cuts, min_chars=500))
    more = {"dataset": {"name": "text:text", "files": [str(corpus)]},
            "tokenizer": {"vocab_size": 300, "fit_sample": 3000}}
    with caplog.at_level("INFO"):
        b = built([corpus], "gpt-lm", **more)
    workers = min(parallel.cores(), parallel.MAX_WORKERS)
    assert f"on {workers} worker processes" in caplog.text or workers < 2
    assert "an even sample" in caplog.text
    tok = b.task.tokenizers["text"]
    for split in ("train", "val"):
        whole = b.dataset.load(split)[0]["text"]
        assert np.array_equal(np.asarray(b.splits[split]["ids"]), tok.encode(whole))


# --- hits and misses: every part of the key ------------------------------------------------------

def test_the_same_data_and_settings_hit_the_cache(corpus):
    built([corpus])
    first = entries()
    assert len(first) == 3  # tokenizers, train, val
    api.reset()
    b = built([corpus], task={"block_size": 4})  # block_size and eval_blocks change nothing prepared
    assert entries() == first
    assert b.task.tokenizers["text"].vocab_size > 4


@pytest.mark.parametrize("change", ["file", "dataset", "task", "tokenizer", "version"])
def test_each_part_of_the_key_prepares_afresh(corpus, change, monkeypatch):
    built([corpus])
    first = entries()
    more: dict = {}
    if change == "file":
        time.sleep(0.01)
        corpus.write_text(TEXT + "one more line\n", encoding="utf-8")
    elif change == "dataset":
        more = {"dataset": {"val_fraction": 0.2}}
    elif change == "task":
        more = {"task": {"boundaries": "paragraph"}}
    elif change == "tokenizer":
        more = {"tokenizer": {"name": "tokenizers:bpe", "vocab_size": 300}}
    else:
        import zoo._version

        monkeypatch.setattr(zoo._version, "__version__", "999.0")  # what the key records of zoo's version
    api.reset()
    built([corpus], **more)
    now = entries()
    assert set(first) <= set(now) and len(now) == 6  # three new entries, the old ones untouched


def test_restored_tokenizer_states_find_the_split_entries_and_other_states_miss(corpus):
    b = built([corpus])
    states = {role: {"state": tok.get_state()} for role, tok in b.tokenizers.items()}
    first = entries()
    api.reset()
    built([corpus], states=states)  # a resume or zoo eval: no fitting, the same split entries
    assert entries() == first
    api.reset()
    other = {"text": {"state": {"itos": states["text"]["state"]["itos"][:-1]}}}
    built([corpus], states=other)
    assert len(entries()) == 5  # train and val again, for the other vocabulary


# --- bit for bit, with and without the cache -----------------------------------------------------

@pytest.mark.parametrize("entry", ["text-gpt", "gpt-lm"])
def test_runs_with_and_without_the_cache_train_identical_weights(corpus, tmp_path, entry):
    more = {"dataset": {"name": "text:text", "files": [str(corpus)]}, "tokenizer": {"vocab_size": 300}} \
        if entry == "gpt-lm" else {}
    cfg = tiny([corpus], **more)
    runs = {}
    for name, extra in (("miss", {}), ("hit", {}), ("off", {"train": {"cache": False}})):
        api.reset()
        runs[name] = zoo.train(entry, zoo.config.merge(cfg, extra), out=tmp_path / name).run_dir
    assert len(entries()) == 3  # the run without the cache kept nothing
    assert not list(cache().root.glob(".nocache-*"))  # its scratch folder is gone too
    weights = {k: load_file(str(d / "model.safetensors")) for k, d in runs.items()}
    losses = {k: [json.loads(line)["train_loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]
              for k, d in runs.items()}
    for name in ("hit", "off"):
        assert weights[name].keys() == weights["miss"].keys()
        for key in weights["miss"]:
            assert np.array_equal(weights[name][key], weights["miss"][key]), (name, key)
        assert losses[name] == losses["miss"]


# --- damaged, killed, concurrent -----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_a_damaged_entry_is_detected_and_prepared_again(corpus, damage, caplog):
    ids = np.asarray(built([corpus]).splits["train"]["ids"]).copy()
    entry = next(e for e in cache().entries() if e.manifest["label"]["split"] == "train")
    path = entry.folder / ("ids.bin" if damage != "manifest" else MANIFEST)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[:-3]
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    api.reset()
    again = built([corpus]).splits["train"]["ids"]
    assert np.array_equal(np.asarray(again), ids)  # the damaged copy was never used
    if damage != "manifest":
        assert "damaged" in caplog.text
    assert cache().get(entry.key) is not None


SLOW_PREPARER = textwrap.dedent("""
    import os, sys, time
    from zoo.sdk.prepared import PreparedCache

    def prepare(out):
        with open(sys.argv[2], "a") as log:
            log.write(f"{os.getpid()}\\n")
        for i in range(int(sys.argv[3])):
            out.append("ids", list(range(i, i + 1000)), "uint32")
            out._open["ids"].flush()
            time.sleep(0.02)
        out.meta["by"] = os.getpid()

    entry = PreparedCache(sys.argv[1]).get_or_create("k" * 32, prepare, {"split": "train"})
    print(entry.meta["by"], len(entry.array("ids")))
""")


def _preparer(tmp_path: Path, steps: int) -> subprocess.Popen:
    script = tmp_path / "prep.py"
    script.write_text(SLOW_PREPARER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "c"), str(tmp_path / "log"), str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_a_killed_preparation_leaves_nothing_trusted_and_the_next_run_prepares_again(tmp_path):
    proc = _preparer(tmp_path, 500)
    deadline = time.time() + 60
    while not list((tmp_path / "c").glob(".tmp-*/ids.bin")) or \
            next((tmp_path / "c").glob(".tmp-*/ids.bin")).stat().st_size < 8000:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = PreparedCache(tmp_path / "c")
    assert store.get("k" * 32) is None and store.entries() == []
    assert len(store.stale_temporaries()) == 1
    again = _preparer(tmp_path, 3)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert out.split()[1] == "3000"
    assert not list((tmp_path / "c").glob(".tmp-*"))  # the killed one's leftovers were cleared
    assert len((tmp_path / "log").read_text().split()) == 2


def test_two_concurrent_preparers_of_one_key_prepare_once_and_read_the_same_entry(tmp_path):
    procs = [_preparer(tmp_path, 40) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len((tmp_path / "log").read_text().split()) == 1  # one prepared, the other waited
    assert outs[0][0] == outs[1][0] and outs[0][0].split()[1] == "40000"


# --- the command line ----------------------------------------------------------------------------

def test_zoo_prepare_then_train_hits_and_cache_ls_rm_prune(cli, corpus, tmp_path):
    sets = ["--set", f'dataset.files=["{corpus}"]', "--set", "task.block_size=8"]
    result = cli("prepare", "text-gpt", *sets)
    assert result.exit_code == 0, result.output
    assert "train: " in result.output and "val: " in result.output
    prepared = entries()
    assert len(prepared) == 3
    tiny_sets = sets + ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.n_embd=16",
                        "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2", "--set", "train.progress=false"]
    result = cli("train", "text-gpt", *tiny_sets, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert entries() == prepared  # nothing prepared again
    result = cli("train", "text-gpt", *tiny_sets, "--set", "task.separator=|", "--no-cache",
                 "--out", str(tmp_path / "run2"))
    assert result.exit_code == 0, result.output
    assert entries() == prepared  # --no-cache kept nothing

    listing = cli("cache", "ls")
    assert listing.exit_code == 0 and "3 entries" in listing.output
    assert "text-gpt train" in listing.output and "text-gpt tokenizers" in listing.output
    train_key = next(e.key for e in cache().entries() if e.manifest["label"]["split"] == "train")
    assert cli("cache", "rm", train_key[:10]).exit_code == 0
    assert train_key not in entries() and len(entries()) == 2
    bad = cli("cache", "rm", "nosuchkey")
    assert bad.exit_code != 0 and "nosuchkey" in bad.output and "Traceback" not in bad.output
    assert cli("cache", "prune", "--max-size", "0").exit_code == 0
    assert entries() == {}
    assert "no prepared data" in cli("cache", "ls").output


def test_zoo_prepare_refuses_an_entry_whose_task_does_not_use_the_cache(cli):
    result = cli("prepare", "subseq-gru")
    assert result.exit_code != 0 and "does not use the prepared-data cache" in result.output
    assert "Traceback" not in result.output


def test_prune_keeps_what_was_used_recently(cli, corpus):
    built([corpus])
    assert cli("cache", "prune").exit_code == 0  # default: entries unused for 30 days
    assert len(entries()) == 3
    for e in cache().entries():
        old = time.time() - 40 * 86400
        os.utime(e.folder / MANIFEST, (old, old))
    assert cli("cache", "prune").exit_code == 0
    assert entries() == {}


# --- DDP: one preparation, every rank reads it ---------------------------------------------------

def test_ddp_ranks_share_one_prepared_split(corpus, tmp_path):
    sets = []
    for key, value in (("dataset.files", json.dumps([str(corpus)])), ("model.n_layer", "1"), ("model.n_head", "2"),
                       ("model.n_embd", "16"), ("task.block_size", "8"), ("train.epochs", "1"),
                       ("train.steps_per_epoch", "2"), ("train.batch_size", "4"), ("train.threads", "1"),
                       ("train.progress", "false")):
        sets += ["--set", f"{key}={value}"]
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", "text-gpt", *sets, "--nproc", "2",
                           "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(entries()) == 3  # two ranks, one set of entries: the second waited on the lock and read them
    assert all(cache().get(k) is not None for k in entries())
    assert (tmp_path / "two" / "model.safetensors").is_file()


# --- the validation-overlap check on streamed text -----------------------------------------------

@pytest.mark.parametrize("budget", [None, 2000])
def test_streamed_validation_copied_from_training_is_reported(tmp_path, caplog, monkeypatch, budget):
    import zoo_text.overlap

    if budget is not None:  # a small sample budget: the estimate from samples of both splits
        monkeypatch.setattr(zoo_text.overlap, "SAMPLE_BYTES", budget)
    words = " ".join(f"word{i % 997} other{i % 13}" for i in range(20000))
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text(words, encoding="utf-8")
    val.write_text(words[:20000], encoding="utf-8")
    built([train], dataset={"val_files": [str(val)]})
    warning = [r.getMessage() for r in caplog.records if "also occur in the training text" in r.getMessage()]
    assert warning and "validation loss will look better" in warning[0]
    assert ("estimated from samples" in warning[0]) == (budget is not None)


# --- classification: tokenised reviews, vocabulary and labels prepared once ----------------------

def test_imdb_is_prepared_once_and_reads_back_as_encoded(data_dir_or_skip):
    import torch

    resolved = zoo.resolve_entry("imdb-rnn", {"dataset": {"limit": 120}})
    first = build_run(resolved, None, None, ("train", "test"))
    prepared = entries()
    assert len(prepared) == 3  # tokenizers, train, test
    api.reset()
    again = build_run(zoo.resolve_entry("imdb-rnn", {"dataset": {"limit": 120}}), None, None, ("train", "test"))
    assert entries() == prepared
    assert again.tokenizers["text"].get_state() == first.tokenizers["text"].get_state()
    direct = again.task.encode(again.dataset.load("train"))
    got = again.splits["train"]
    assert len(got["ids"]) == len(direct["ids"]) == 120
    assert all(torch.equal(a, b) for a, b in zip(got["ids"], direct["ids"]))
    assert torch.equal(got["labels"], direct["labels"]) and got["keys"] == direct["keys"]


def test_gensim_vectors_are_trained_once_per_corpus_and_settings():
    import torch

    from zoo.sdk.embeddings import enabled

    sentences = [["the", "film", "was", "good"], ["the", "plot", "was", "bad"], ["good", "acting"]] * 20
    first = zoo.train_vectors(sentences, 8, epochs=2)
    assert len(entries()) == 1
    again = zoo.train_vectors(sentences, 8, epochs=2)
    assert "from the prepared-data cache" in again.source and "cache" not in first.source
    assert again.words == first.words and torch.equal(again.matrix, first.matrix)
    zoo.train_vectors(sentences, 8, epochs=3)  # another setting: trained again
    zoo.train_vectors(sentences[:-1], 8, epochs=2)  # another corpus: trained again
    assert len(entries()) == 3
    with enabled(False):  # train.cache=false
        fresh = zoo.train_vectors(sentences, 8, epochs=2)
    assert "cache" not in fresh.source and torch.equal(fresh.matrix, first.matrix) and len(entries()) == 3


def test_zoo_eval_reads_the_split_the_run_prepared(corpus, tmp_path):
    run = zoo.train("text-gpt", tiny([corpus]), out=tmp_path / "run").run_dir
    prepared = entries()
    api.reset()
    metrics = zoo.evaluate(run, "val")
    assert entries() == prepared  # the run's tokenizer states and data: the same key, nothing prepared
    val = json.loads((run / "metrics.json").read_text())["val"]
    assert metrics["loss"] == pytest.approx(val["loss"], rel=1e-6)


def test_cache_ls_and_prune_handle_an_entry_without_its_manifest(cli, corpus):
    built([corpus])
    entry = next(e for e in cache().entries() if e.manifest["label"]["split"] == "val")
    (entry.folder / MANIFEST).unlink()  # e.g. a folder copied by hand, or a disk that lost it
    listing = cli("cache", "ls")
    assert listing.exit_code == 0 and "(incomplete or damaged)" in listing.output
    assert cli("cache", "prune").exit_code == 0  # removed: it could never be trusted
    assert not entry.folder.exists() and len(entries()) == 2


def test_prune_removes_scratch_folders_of_processes_that_are_gone(cli, corpus):
    built([corpus])
    dead = cache().root / ".nocache-999999999-x"
    dead.mkdir()
    live = cache().root / f".nocache-{os.getpid()}-y"
    live.mkdir()
    assert cli("cache", "prune").exit_code == 0
    assert not dead.exists() and live.exists() and len(entries()) == 3
