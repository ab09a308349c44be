"""Untrusted files cost nothing to refuse (issue 26, sections 3 and 4).

Each case is a hand-made or damaged input that once crashed zoo, allocated tens of
gigabytes or reached the terminal raw. Artifacts are made from one tiny trained run
by rewriting their metadata; the commands that could allocate run in a subprocess
whose address space is capped, so a regression fails fast instead of taking the
machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import zoo
from zoo import api
from zoo.store.artifact import read_header, read_metadata
from zoo.errors import ArtifactError, ZooError

from conftest import TINY_SUBSEQ

ADDRESS_CAP = 6 * 2**30  # bytes of address space a refusing command may use (torch alone maps ~2 GiB)

SMALL = zoo.config.merge(TINY_SUBSEQ, {
    "dataset": {"train_size": 256, "val_size": 64, "test_size": 64},
    "model": {"emb_dim": 8, "hidden": 16},
    "train": {"epochs": 1, "batch_size": 32, "eval_batch_size": 64, "threads": 1},
})
HAMLET = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    api.reset()
    out = zoo.train("subseq-gru", SMALL, out=tmp_path_factory.mktemp("seq") / "run").run_dir
    api.reset()
    return out


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    api.reset()
    root = tmp_path_factory.mktemp("lm")
    (root / "hamlet.txt").write_text(HAMLET, encoding="utf-8")
    cfg = {"dataset": {"files": [str(root / "hamlet.txt")]}, "model": {"n_layer": 1, "n_head": 2, "n_embd": 16},
           "task": {"block_size": 16},
           "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "threads": 1, "progress": False}}
    out = zoo.train("text-gpt", cfg, out=root / "run").run_dir
    api.reset()
    return out


def rewrite(run: Path, dst: Path, **changes: object) -> Path:
    """A copy of ``run``'s artifact with metadata values replaced (dicts as JSON text), weights unchanged."""
    src = run / "model.safetensors"
    _, raw = read_header(src)
    raw.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in changes.items()})
    save_file(load_file(str(src)), str(dst), metadata=raw)
    return dst


def meta_of(run: Path) -> dict:
    return read_metadata(run / "model.safetensors")


def capped_zoo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a process that cannot map more than ADDRESS_CAP bytes."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_CAP, ADDRESS_CAP))

    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}  # CUDA maps more than the cap
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=cap, env=env, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single error line of a failed command (no traceback)."""
    assert proc.returncode in (1, 2), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [s for s in proc.stderr.splitlines() if s.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


# --- 1. sizes are estimated before anything is allocated ----------------------------------------------

def test_a_huge_hidden_size_is_refused_before_allocating(seq_run, tmp_path):
    cfg = meta_of(seq_run)["config"]
    cfg["model"]["hidden"] = 65536  # 12 GiB in the first GRU layer alone
    bad = rewrite(seq_run, tmp_path / "big.safetensors", config=cfg)
    assert bad.stat().st_size < 100_000
    for args in (["eval", str(bad), "--device", "cpu"], ["predict", str(bad), "123"], ["serve", str(bad), "--port", "0"]):
        line = one_line_error(capped_zoo(*args))
        assert str(bad) in line and "parameters" in line and "weights hold 3,086 values" in line


def test_a_huge_vocabulary_in_sizes_is_refused_naming_the_key(seq_run, tmp_path):
    bad = rewrite(seq_run, tmp_path / "vocab.safetensors",
                  sizes={"pad_id": 0, "src_vocab": 2_000_000_000, "tgt_vocab": 14})
    line = one_line_error(capped_zoo("eval", str(bad), "--device", "cpu"))
    assert str(bad) in line and "'sizes.src_vocab'" in line and "2000000000" in line


def test_a_model_beyond_memory_names_the_estimate_and_the_memory(seq_run):
    from zoo.runtime.untrusted import check_build

    resolved = zoo.resolve_entry("subseq-gru", {"model": {"hidden": 4096}})
    cls, cfg = resolved.cls("model"), resolved.configs["model"]
    sizes = {"pad_id": 0, "src_vocab": 14, "tgt_vocab": 14}
    check_build("m.safetensors", cls, cfg, sizes, stored=None, available=2**40)  # a terabyte: fits
    with pytest.raises(ArtifactError, match=r"m.safetensors: the model it describes \(.* parameters\) needs about "
                                            r"[\d.]+ MiB to load; this machine has 1 MiB available"):
        check_build("m.safetensors", cls, cfg, sizes, stored=None, available=2**20)


def test_zoo_load_refuses_a_model_bigger_than_its_weights(seq_run, tmp_path):
    cfg = meta_of(seq_run)["config"]
    cfg["model"]["hidden"] = 64
    bad = rewrite(seq_run, tmp_path / "m.safetensors", config=cfg)
    with pytest.raises(ArtifactError, match="weights do not fit model seq2seq:gru-seq2seq: .* describe .* parameters, "
                                           "but its weights hold 3,086 values"):
        zoo.load(bad)


# --- 5. crafted sizes and deep JSON are one line each ---------------------------------------------------

@pytest.mark.parametrize("sizes, message", [
    ({"pad_id": 0, "src_vocab": 14, "tgt_vocab": 14, "foo": 1}, "'sizes.foo' is not a size"),
    ({"pad_id": 0, "src_vocab": 14}, "'sizes' has no 'tgt_vocab'"),
    ({"pad_id": 0, "src_vocab": -14, "tgt_vocab": 14}, "'sizes.src_vocab' must be a non-negative integer"),
    ({"pad_id": 0, "src_vocab": 14, "tgt_vocab": [14]}, "'sizes.tgt_vocab' must be an integer"),
])
def test_crafted_sizes_are_one_line(seq_run, tmp_path, sizes, message):
    bad = rewrite(seq_run, tmp_path / "s.safetensors", sizes=sizes)
    line = one_line_error(capped_zoo("eval", str(bad), "--device", "cpu"))
    assert str(bad) in line and message in line


def test_a_missing_tokenizer_role_is_one_line(seq_run, tmp_path):
    tokenizers = {"src": meta_of(seq_run)["tokenizers"]["src"]}
    bad = rewrite(seq_run, tmp_path / "role.safetensors", tokenizers=tokenizers)
    line = one_line_error(capped_zoo("eval", str(bad), "--device", "cpu"))
    assert str(bad) in line and "'tokenizers' has no state for role 'tgt'" in line


def _deep_header_file(path: Path) -> Path:
    """A safetensors file whose header holds a 100,000-deep list (no zoo code writes one)."""
    raw = json.dumps({"__metadata__": {"format": "zoo-model"}}).encode()[:-1] + b', "x": ' + \
        b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    return path


def test_deeply_nested_json_is_one_line(seq_run, tmp_path):
    deep_value = rewrite(seq_run, tmp_path / "deep.safetensors", config="[" * 100_000 + "]" * 100_000)
    deep_header = _deep_header_file(tmp_path / "deep_header.safetensors")
    for path, key in ((deep_value, "metadata 'config'"), (deep_header, "header")):
        for cmd in ("info", "eval"):
            line = one_line_error(capped_zoo(cmd, str(path)))
            assert str(path) in line and key in line and "nested deeper than" in line


# --- 3. nothing from a file reaches the terminal raw ----------------------------------------------------

def test_info_escapes_control_characters_from_the_file(seq_run, tmp_path, cli):
    evil = "\x1b]0;owned\x07\x1b[2J\u202eevil"
    bad = rewrite(seq_run, tmp_path / "esc.safetensors", entry=evil, created=evil,
                  metrics={"val": {evil: 1.0}})
    result = cli("info", str(bad), color=True)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output
    assert "entry: \\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in result.output


def test_predict_table_escapes_labels_from_the_file():
    from zoo.cli.predict import Item, Readable

    class Task:
        labels = ["\x1b[31mneg", "pos"]  # class names come from the artifact's tokenizer state

    class Loaded:
        task = Task()

    record = {"label": "\x1b[31mneg", "probability": 0.9, "probabilities": {"\x1b[31mneg": 0.9, "pos": 0.1}}
    text = Readable(Loaded()).line(Item("a", "good\x1b[2J"), record)
    assert "\x1b" not in text and "\\x1b[31mneg" in text and "good\\x1b[2J" in text


# --- 4. a line of predict input is bounded ---------------------------------------------------------------

def test_predict_from_dev_zero_stops_at_the_line_limit(seq_run):
    line = one_line_error(capped_zoo("predict", str(seq_run), "--input", "/dev/zero", "--max-line-bytes", "100000"))
    assert "/dev/zero:1:" in line and "100000 bytes" in line and "--max-line-bytes" in line


def test_predict_names_the_line_that_is_too_long(seq_run, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"123\n456\n" + b"7" * 3_000_000 + b"\n89\n")
    line = one_line_error(capped_zoo("predict", str(seq_run), "--input", str(src), "--max-line-bytes", "1000000"))
    assert f"{src}:3:" in line and "1000000 bytes" in line and len(line) < 400
    ok = capped_zoo("predict", str(seq_run), "--input", str(src), "--max-line-bytes", "4000000", "--json")
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 4, ok.stderr[-2000:]


def test_predict_line_limit_has_a_sane_default(seq_run, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"12\n" + b"7" * (17 * 2**20) + b"\n")  # the default is 16 MiB
    line = one_line_error(capped_zoo("predict", str(seq_run), "--input", str(src)))
    assert f"{src}:2:" in line and "--max-line-bytes" in line


# --- 6. damaged tokenizer metadata --------------------------------------------------------------------

def _lm_tokenizers(state: object) -> dict:
    return {"text": {"name": "tokenizers:char", "state": state}}


DAMAGED_TOKENIZERS = [
    (_lm_tokenizers({"itos": ["<pad>", "<unk>", "<bos>", "<eos>", 5, None, [1], "a"]}), "tokenizers.text"),
    (_lm_tokenizers({"itos": ["<pad>", "<unk>", "<bos>", "<eos>", "a", "a"]}), "tokenizers.text"),
    (_lm_tokenizers({"itos": ["<pad>", "<unk>", "<bos>", "<eos>"] + [chr(0x4e00 + i) for i in 256 * [0]]}),
     "tokenizers.text"),
    (_lm_tokenizers({"itos": ["<pad>", "<unk>", "<bos>", "<eos>"] + [chr(0x4e00 + i) for i in range(300)]}),
     "'sizes.vocab_size'"),
    (_lm_tokenizers({"nothing": 1}), "tokenizers.text"),
]


@pytest.mark.parametrize("tokenizers, key", DAMAGED_TOKENIZERS, ids=["not-strings", "duplicates", "many-duplicates",
                                                                      "longer-than-sizes", "no-itos"])
def test_damaged_tokenizer_metadata_is_one_line_naming_file_and_key(lm_run, tmp_path, tokenizers, key):
    bad = rewrite(lm_run, tmp_path / "tok.safetensors", tokenizers=tokenizers)
    for args in (["eval", str(bad), "--device", "cpu"], ["generate", str(bad), "--max-new-tokens", "3"],
                 ["export", str(bad), "--out", str(tmp_path / "copy.safetensors")]):
        line = one_line_error(capped_zoo(*args))
        assert str(bad) in line and key in line, (args, line)
    assert not (tmp_path / "copy.safetensors").exists()


# --- 6. errors quote a bounded prefix of a bad line ---------------------------------------------------

def test_a_huge_csv_header_is_not_quoted_whole(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("x" * 2_000_000 + ",y\nhello,pos\n", encoding="utf-8")
    with pytest.raises(ZooError) as err:
        zoo.train("text-rnn", {"dataset": {"train_file": str(big)}}, out=tmp_path / "run")
    assert str(big) in str(err.value) and "no column" in str(err.value) and len(str(err.value)) < 500


def test_a_huge_jsonl_label_is_not_quoted_whole(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "hello", "label": list(range(300_000))}) + "\n", encoding="utf-8")
    with pytest.raises(ZooError) as err:
        zoo.train("text-rnn", {"dataset": {"train_file": str(big)}}, out=tmp_path / "run")
    assert f"{big}:1:" in str(err.value) and "..." in str(err.value) and len(str(err.value)) < 500


def test_a_huge_pairs_csv_header_is_not_quoted_whole(tmp_path):
    from zoo_seq2py.datasets import read_pairs

    big = tmp_path / "pairs.csv"
    big.write_text("a" * 1_000_000 + ",b\nx,y\n", encoding="utf-8")
    with pytest.raises(ZooError) as err:
        read_pairs(big, "intent", "snippet")
    assert str(big) in str(err.value) and len(str(err.value)) < 500


def test_a_sentence_with_a_bad_token_is_not_quoted_whole(tmp_path):
    from zoo.build.pieces import make_task

    conll = tmp_path / "train.conll"
    conll.write_text("a O\n\nb O\n", encoding="utf-8")
    resolved = zoo.resolve_entry("conll-tagger", {"dataset": {"train_file": str(conll), "label_column": 1}})
    task, _ = make_task(resolved, None)
    tokens = ["word"] * 200_000 + ["bad token"]
    with pytest.raises(ZooError) as err:
        task.encode_sentences([tokens], [[4] * len(tokens)])
    assert "sentence 0" in str(err.value) and len(str(err.value)) < 500


# --- zoo import hf: sizes before allocation, files inside the folder ------------------------------------

@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A GPT-2 folder as zoo exports one (byte-level BPE, so it imports back)."""
    from zoo.interop import export_hf

    pytest.importorskip("tokenizers")
    api.reset()
    root = tmp_path_factory.mktemp("hf")
    (root / "hamlet.txt").write_text(HAMLET, encoding="utf-8")
    cfg = {"dataset": {"files": [str(root / "hamlet.txt")]}, "model": {"n_layer": 1, "n_head": 2, "n_embd": 16},
           "task": {"block_size": 16}, "tokenizer": {"name": "bpe", "vocab_size": 280},
           "train": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 8, "threads": 1, "progress": False}}
    run = zoo.train("text-gpt", cfg, out=root / "run").run_dir
    folder = export_hf(zoo.load(run), root / "gpt2")
    api.reset()
    return folder, root / "hamlet.txt"


def _copy(folder: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, dst))


def _import(src: Path, corpus: Path, out: Path) -> subprocess.CompletedProcess:
    return capped_zoo("import", "hf", str(src), "--out", str(out), "--set", f'dataset.files=["{corpus}"]')


def test_the_hf_fixture_imports(hf_folder, tmp_path):
    folder, corpus = hf_folder
    proc = _import(folder, corpus, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("change", [{"n_embd": 65536, "n_inner": 4 * 65536, "n_head": 2},
                                    {"n_embd": 8192, "n_inner": 8192, "n_head": 2, "n_positions": 1_000_000}],
                         ids=["n_embd", "n_positions"])
def test_an_hf_config_with_huge_sizes_is_refused_before_allocating(hf_folder, tmp_path, change):
    folder, corpus = hf_folder
    src = _copy(folder, tmp_path / "gpt2")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, **change}))
    line = one_line_error(_import(src, corpus, tmp_path / "run"))
    assert str(src) in line and "parameters" in line
    assert not (tmp_path / "run").exists()


def _shard_index(src: Path, weights: Path, shard: str) -> None:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        names = list(fh.keys())
    (src / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {n: shard for n in names}}))


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_hf_shard_names_stay_inside_the_folder(hf_folder, tmp_path, where):
    folder, corpus = hf_folder
    src = _copy(folder, tmp_path / "gpt2")
    outside = tmp_path / "outside.safetensors"
    (src / "model.safetensors").rename(outside)
    _shard_index(src, outside, "../outside.safetensors" if where == "parent" else str(outside))
    line = one_line_error(_import(src, corpus, tmp_path / "run"))
    assert "model.safetensors.index.json" in line and "outside.safetensors" in line and "outside" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_hf_symlinks_out_of_the_folder_are_refused(hf_folder, tmp_path, name):
    folder, corpus = hf_folder
    src = _copy(folder, tmp_path / "gpt2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (src / name).rename(elsewhere / name)
    (src / name).symlink_to(elsewhere / name)
    line = one_line_error(_import(src, corpus, tmp_path / "run"))
    assert name in line and "outside" in line
    assert not (tmp_path / "run").exists()


def test_hf_symlinks_inside_the_folder_and_the_hub_cache_layout_import(hf_folder, tmp_path):
    folder, corpus = hf_folder
    repo = tmp_path / "models--me--gpt2"  # the Hugging Face cache: snapshots/REV/* link to ../../blobs/*
    snap = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (repo / "blobs" / f.name).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../blobs") / f.name)
    proc = _import(snap, corpus, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_zoo_plugins_escapes_control_characters(monkeypatch, cli, caplog):
    import types

    from zoo.registry import discovery as plugins
    from zoo.hookspecs import hookimpl

    def evil_models(register):
        raise ValueError("\x1b]0;owned\x07\x1b[2J boom")

    real_load = plugins.load

    def load(entry_points=None, environ=None, extra=()):
        evil = types.SimpleNamespace(zoo_register_models=hookimpl(evil_models))
        return real_load(entry_points=entry_points, environ=environ, extra=(*extra, ("evil", evil)))

    monkeypatch.setattr(plugins, "load", load)
    result = cli("plugins", color=True)
    assert "boom" in result.output and "\x1b" not in result.output and "\x07" not in result.output
    logged = [r.getMessage() for r in caplog.records if "evil" in r.getMessage()]
    assert logged and all("boom" in m and "\x1b" not in m for m in logged)  # the warning on stderr too
    assert "\\x1b]0;owned\\x07" in result.output


def test_a_huge_only_class_is_not_quoted_whole(tmp_path):
    big = tmp_path / "one.csv"
    label = "L" * 1_000_000
    big.write_text("text,label\n" + "".join(f"row {i},{label}\n" for i in range(10)), encoding="utf-8")
    with pytest.raises(ZooError) as err:
        zoo.train("text-rnn", {"dataset": {"train_file": str(big)}}, out=tmp_path / "run")
    assert "one class only" in str(err.value) and len(str(err.value)) < 500


def test_predict_input_and_serve_bodies_nested_too_deep_are_one_line(seq_run, tmp_path):
    import asyncio

    pytest.importorskip("starlette")
    from zoo.serve.requests import RequestError, read_json

    deep = '{"input": ' + "[" * 100_000 + "]" * 100_000 + "}"
    src = tmp_path / "deep.jsonl"
    src.write_text(deep + "\n", encoding="utf-8")
    line = one_line_error(capped_zoo("predict", str(seq_run), "--input", str(src)))
    assert f"{src}:1:" in line and "nested deeper than" in line

    async def body():
        yield deep.encode()

    with pytest.raises(RequestError, match="nests arrays/objects deeper than") as err:
        asyncio.run(read_json(body(), None, 10**6))
    assert err.value.status == 400


def test_a_checkpoint_with_damaged_state_is_one_line(tmp_path):
    from zoo.store.checkpoint import load_checkpoint
    from zoo.errors import RunDirError

    for state in ("[" * 100_000 + "]" * 100_000, "{not json"):
        path = tmp_path / "checkpoint.safetensors"
        save_file({"w": __import__("torch").zeros(2)}, str(path), metadata={"format": "zoo-checkpoint", "state": state})
        with pytest.raises(RunDirError, match="damaged checkpoint: metadata 'state'"):
            load_checkpoint(path)


def test_printable_escapes_controls_and_bidi_marks_but_keeps_joiners():
    from zoo.runtime.untrusted import clip, printable

    assert printable("a\x1b[31mb\u202ec\x9bd") == "a\\x1b[31mb\\u202ec\\x9bd"
    assert printable("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert printable("def f():\n\treturn 1", keep="\n\t") == "def f():\n\treturn 1"
    assert clip("x" * 1000) == "x" * 80 + "..." and clip("short") == "short"
