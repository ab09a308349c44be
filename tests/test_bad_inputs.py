"""Bad config values are refused before any data or model is built.

The corpus is generated from the config dataclasses: for every config class that
a built-in entry uses (model, task, dataset, tokenizer.ROLE, train, optim) and
every field, bad values are derived from the field's type and its declared
:class:`zoo.config.Range` (below the minimum, above the maximum, the wrong type,
nan / inf, a list for a scalar...). Each must make ``zoo.resolve_entry`` raise a
one-line ConfigError naming the key. Resolution reads no data and builds no
model, so the whole corpus runs in about a second. A second part sends the
issue's examples through the real CLI in a subprocess (slow: one interpreter
each) and checks the exit code, the message and that an existing run folder is
left byte for byte as it was.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import re
import subprocess
import sys
import types
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pytest

import zoo
from zoo import api, config
from zoo.runtime import memory as limits
from zoo.config import SEED, Range, build, field_ranges, load_toml
from zoo.errors import ConfigError
from zoo.registry.resolve import entry_config

# --- deriving bad values from a field's type and ranges --------------------------------------------


def _plain(tp: Any) -> Any:
    """The field's type without Annotated and without ``| None``."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return _plain(arms[0]) if len(arms) == 1 else tp
    return tp


def _outside(r: Range, integer: bool) -> list[Any]:
    """Values just outside each end of ``r``, and one far outside."""
    step = 1 if integer else 0.5
    out: list[Any] = []
    if r.ge is not None:
        out.append(r.ge - step)
    if r.gt is not None:
        out += [r.gt, r.gt - step]
    if r.le is not None:
        out += [r.le + step, r.le * 1000 + 1000]
    if r.lt is not None:
        out.append(r.lt)
    return [int(v) if integer else float(v) for v in out]


def bad_values(tp: Any, ranges: tuple[Range, ...]) -> list[Any]:
    """Values that a field of type ``tp`` with ``ranges`` must refuse."""
    tp = _plain(tp)
    origin = typing.get_origin(tp)
    if tp is int:
        return ["abc", [1, 2], 1.5, True, 2**64, *(v for r in ranges for v in _outside(r, True))]
    if tp is float:
        return ["abc", [0.5], True, math.nan, math.inf, -math.inf, 10**400,
                *(v for r in ranges for v in _outside(r, False))]
    if tp is bool:
        return ["yes", 1, [True]]
    if tp is str:
        return [5, 1.5, ["a"], True]
    if origin is Literal:
        return ["no-such-choice", 5, [typing.get_args(tp)[0]]]
    if origin is tuple:
        n = len(typing.get_args(tp))
        inside = [0.5] * n
        out: list[Any] = ["abc", 0.5, [0.5] * (n + 1), ["x"] + inside[1:], [math.nan] + inside[1:]]
        return out + [[v] + inside[1:] for r in ranges for v in _outside(r, False)]
    if origin is list:
        return [5, "abc", [5]]
    if origin is dict:
        return [5, [1], {"g": "x"}, *({"g": v} for r in ranges for v in _outside(r, True))]
    raise AssertionError(f"no bad values for {tp!r}: teach this corpus the new type")


# --- the corpus: one case per (config class, field), each with all its bad values -------------------


def _builtin_entries() -> list[str]:
    """The entries that ship with zoo, as registry.toml indexes them (each lives in its plugin)."""
    from zoo.registry import catalog

    return [f"{row['plugin']}:{name}" for name, row in catalog.read_index().items()]


def _base(entry: str) -> dict[str, Any]:
    """The entry's tiny overrides: some entries need a file name to resolve at all."""
    return config.merge(zoo.get_registry().get("entry", entry).data.get("tiny") or {}, {})


def _override(entry: str, section: str, key: str, value: Any) -> tuple[dict[str, Any], str]:
    """The overrides that set ``section.key`` (tokenizer.ROLE included), and a regex of the key's name."""
    if not section.startswith("tokenizer."):
        return {section: {key: value}}, re.escape(f"{section}.{key}")
    tok = entry_config(entry)[1].get("tokenizer", {})
    if isinstance(tok.get("name"), str):  # one tokenizer for every role: set it for all
        return {"tokenizer": {key: value}}, rf"tokenizer\.\w+\.{re.escape(key)}\b"
    return {"tokenizer": {section.split(".", 1)[1]: {key: value}}}, re.escape(f"{section}.{key}")


def _corpus() -> list[tuple[str, str, str, list[Any]]]:
    """(entry, section, field, bad values): each config class once, in the first entry that uses it."""
    api.reset()
    seen: set[tuple[str, type]] = set()
    cases = []
    for entry in _builtin_entries():
        resolved = zoo.resolve_entry(entry, _base(entry))
        for section, cfg in resolved.configs.items():
            cls = type(cfg)
            if (section.split(".")[0], cls) in seen:
                continue
            seen.add((section.split(".")[0], cls))
            hints, ranges = typing.get_type_hints(cls), field_ranges(cls)
            for f in dataclasses.fields(cls):
                cases.append((entry, section, f.name, bad_values(hints[f.name], ranges[f.name])))
    api.reset()
    return cases


CORPUS = _corpus()


def test_corpus_covers_every_section_and_several_hundred_values():
    sections = {section.split(".")[0] for _, section, _, _ in CORPUS}
    assert sections == {"model", "task", "dataset", "tokenizer", "train", "optim"}
    assert sum(len(values) for *_, values in CORPUS) >= 500


@pytest.mark.parametrize("entry, section, key, values", CORPUS,
                         ids=[f"{e.split(':')[-1]}/{s}.{k}" for e, s, k, _ in CORPUS])
def test_bad_value_is_refused_naming_the_key(entry, section, key, values):
    base = _base(entry)
    accepted, unnamed = [], []
    for value in values:
        overrides, name = _override(entry, section, key, value)
        try:
            zoo.resolve_entry(entry, config.merge(base, overrides))
        except ConfigError as exc:
            msg = str(exc)
            if not re.search(name, msg) or "\n" in msg:
                unnamed.append((value, msg))
        else:
            accepted.append(value)
    assert not accepted, f"{section}.{key} accepted {accepted!r}"
    assert not unnamed, f"{section}.{key}: messages that do not name it on one line: {unnamed!r}"


def test_shipped_configs_and_defaults_lie_inside_their_ranges():
    for entry in _builtin_entries():
        resolved = zoo.resolve_entry(entry, _base(entry))  # the entry's config and its tiny overrides
        for section, cfg in resolved.configs.items():
            defaults = type(cfg)()
            hints = typing.get_type_hints(type(cfg), include_extras=True)
            for f in dataclasses.fields(cfg):
                config.check(getattr(defaults, f.name), hints[f.name], f"{section}.{f.name}")
        try:
            zoo.resolve_entry(entry)  # the shipped config alone
        except ConfigError as exc:  # only entries that train on the user's own file need one named
            assert re.search(r"files? is (empty|required)", str(exc)), str(exc)


# --- the Range facility itself ---------------------------------------------------------------------


@dataclasses.dataclass
class Sized:
    hidden: Annotated[int, Range(1, 65536)] = 256
    lr: Annotated[float, Range(gt=0)] = 1e-3
    dropout: Annotated[float, Range(0, lt=1)] = 0.1
    clip: Annotated[float, Range(gt=0, note="none: no clipping")] | None = 1.0
    betas: Annotated[tuple[float, float], Range(0, lt=1)] = (0.9, 0.999)
    freeze: Annotated[dict[str, int], Range(0)] = dataclasses.field(default_factory=dict)
    horizon: Annotated[float, Range(gt=0, finite=False)] = math.inf
    seed: Annotated[int, SEED] = 0
    plain: float = 0.0
    count: int = 0


@pytest.mark.parametrize("values, message", [
    ({"hidden": 0}, "model.hidden must be in [1, 65536], got 0"),
    ({"hidden": 100_000_000}, "model.hidden must be in [1, 65536], got 100000000"),
    ({"lr": 0}, "model.lr must be > 0, got 0.0"),
    ({"lr": math.nan}, "model.lr must be a finite number > 0, got nan"),
    ({"dropout": 1.0}, "model.dropout must be in [0, 1), got 1.0"),
    ({"clip": -1}, "model.clip must be > 0, got -1.0 (none: no clipping)"),
    ({"betas": [2, 3]}, "model.betas[0] must be in [0, 1), got 2.0"),
    ({"betas": [0.9, math.inf]}, "model.betas[1] must be a finite number in [0, 1), got inf"),
    ({"freeze": {"encoder": -1}}, "model.freeze.encoder must be >= 0, got -1"),
    ({"seed": 99999999999999999999}, "model.seed must be in [0, 4294967295], got 99999999999999999999"),
    ({"plain": -math.inf}, "model.plain must be a finite number, got -inf"),
    ({"count": 2**63}, "model.count must fit in a signed 64-bit integer, got 9223372036854775808"),
    ({"plain": 10**400}, "'model.plain' is too large for a float"),
    ({"horizon": math.nan}, "model.horizon must be > 0, got nan"),
])
def test_range_messages_name_key_value_and_range(values, message):
    with pytest.raises(ConfigError) as err:
        build(Sized, values, "model")
    assert message in str(err.value)


def test_range_lets_none_bounds_and_declared_infinity_through():
    cfg = build(Sized, {"hidden": 65536, "lr": 1e9, "dropout": 0, "clip": None, "horizon": math.inf,
                        "seed": 2**32 - 1, "count": -(2**63)}, "model")
    assert (cfg.hidden, cfg.clip, cfg.horizon, cfg.seed) == (65536, None, math.inf, 2**32 - 1)


def test_field_ranges_and_describe():
    ranges = field_ranges(Sized)
    assert [r.describe() for r in ranges["hidden"]] == ["in [1, 65536]"]
    assert [r.describe() for r in ranges["clip"]] == ["> 0"]
    assert ranges["plain"] == () and ranges["betas"][0].describe() == "in [0, 1)"
    assert 1.0 not in Range(0, lt=1) and 0.0 in Range(0, lt=1) and math.nan not in Range(0)


# --- config files that are not UTF-8 or not TOML ---------------------------------------------------


def test_load_toml_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[model]\nhidden = 3\nname = \"caf\u00e9\"\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_toml(path)
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "UTF-8" in msg and "\n" not in msg


def test_load_toml_reads_a_byte_order_mark_and_names_bad_toml_lines(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[train]\nepochs = 2\n")
    assert load_toml(path) == {"train": {"epochs": 2}}
    path.write_text("[train]\nepochs = = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bom\.toml: invalid TOML: .*line 2"):
        load_toml(path)


# --- CSV fields longer than csv's default limit ----------------------------------------------------


def test_csv_with_a_200000_character_field_loads(tmp_path):
    path = tmp_path / "long.csv"
    long = "word " * 40_000  # 200,000 characters: csv's default limit is 131,072
    path.write_text("text,label\n" + f'"{long}",pos\n' + "short,neg\nfine,pos\n" * 10, encoding="utf-8")
    cls = zoo.get_registry().get("dataset", "text-classification").load()
    before = csv.field_size_limit()
    dataset = cls(build(cls.Config, {"train_file": str(path), "val_fraction": 0.2}, "dataset"), data_dir=None)
    texts = [e["text"] for split in ("train", "val") for e in dataset.load(split)]
    assert len(texts) == 21 and max(map(len, texts)) >= 199_999
    assert csv.field_size_limit() == before  # the module-wide limit is left as it was


# --- zoo.runtime.memory: a model's size from its config, against the machine's memory ----------------------


def _subseq_model(overrides: dict[str, Any]):
    resolved = zoo.resolve_entry("subseq-gru", {"model": overrides})
    return resolved.cls("model"), resolved.configs["model"], {"src_vocab": 14, "tgt_vocab": 14, "pad_id": 0}


def test_estimate_parameters_matches_the_real_model_and_takes_no_memory():
    import torch

    cls, cfg, sizes = _subseq_model({"emb_dim": 16, "hidden": 32, "layers": 2})
    real = cls(cfg, **sizes)
    expected = sum(p.numel() for p in real.parameters()) + sum(b.numel() for b in real.buffers())
    assert limits.estimate_parameters(cls, cfg, sizes) == expected
    big = _subseq_model({"emb_dim": 65536, "hidden": 65536, "layers": 8})
    n = limits.estimate_parameters(*big)  # hundreds of billions of parameters, on the meta device
    assert n is not None and n > 10**11
    assert torch.empty(1).device.type == "cpu"  # the meta device did not leak out


def test_estimate_parameters_is_none_when_the_model_cannot_be_built_on_meta():
    class Broken:
        def __init__(self, cfg, **sizes):
            raise RuntimeError("reads a file")

    assert limits.estimate_parameters(Broken, None, {}) is None


def test_check_fits_refuses_a_model_beyond_memory_with_the_estimate():
    cls, cfg, sizes = _subseq_model({"hidden": 65536})
    with pytest.raises(ConfigError) as err:
        limits.check_model_fits(cls, cfg, sizes, available=8 * limits.GIB)
    msg = str(err.value)
    assert "model.hidden=65536" in msg and "billion parameters" in msg and "GiB" in msg
    assert "8.0 GiB available" in msg and "\n" not in msg
    cls, cfg, sizes = _subseq_model({"hidden": 32})
    assert limits.check_model_fits(cls, cfg, sizes, available=8 * limits.GIB) < 10**6
    limits.check_fits(10**6, available=16 * 10**6)  # exactly enough
    with pytest.raises(ConfigError, match="about 1.0 million parameters, about 15 MiB .* has 15 MiB available"):
        limits.check_fits(10**6 + 1, available=16 * 10**6)


def test_available_memory_is_a_positive_byte_count():
    found = limits.available_memory()
    if sys.platform.startswith("linux"):
        assert found is not None and 2**20 < found < 2**60


# --- the same refusals through the real command line -----------------------------------------------

CLI_CASES = [
    ("model.hidden=0", "model.hidden"), ("model.emb_dim=-1", "model.emb_dim"),
    ("model.hidden=100000000", "model.hidden"), ("model.layers=100000", "model.layers"),
    ("model.dropout=1.0", "model.dropout"), ("optim.lr=nan", "optim.lr"), ("optim.lr=inf", "optim.lr"),
    ("optim.lr=1e400", "optim.lr"), ("optim.betas=[2,3]", "optim.betas"), ("optim.eps=-1", "optim.eps"),
    ("optim.weight_decay=-1", "optim.weight_decay"), ("optim.momentum=1.5", "optim.momentum"),
    ("optim.warmup_steps=-5", "optim.warmup_steps"), ("train.clip_norm=-1", "train.clip_norm"),
    ("train.clip_norm=0", "train.clip_norm"), ("train.threads=-1", "train.threads"),
    ("train.seed=99999999999999999999", "train.seed"), ("train.steps_per_epoch=0", "train.steps_per_epoch"),
    ("train.eval_batch_size=0", "train.eval_batch_size"), ("train.max_time=-1", "train.max_time"),
    ("train.batch_size=abc", "train.batch_size"), ("dataset.train_size=0", "dataset.train_size"),
    ("task.label_smoothing=2", "task.label_smoothing"),
]


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _make_old_run(root: Path) -> Path:
    """A folder that looks like an earlier run (its files are not read: the config is refused first)."""
    run = root / "run"
    run.mkdir()
    (run / "config.toml").write_text('entry = "zoo:subseq-gru"\n', encoding="utf-8")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n', encoding="utf-8")
    for name in ("model.safetensors", "checkpoint.safetensors"):
        (run / name).write_bytes(os.urandom(256))
    return run


@pytest.fixture
def old_run(tmp_path) -> Path:
    return _make_old_run(tmp_path)


def _zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def _error_lines(stderr: str) -> list[str]:
    """stderr without click's usage banner ("Usage: ...", "Try 'zoo --help' ...")."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(("Usage:", "Try '"))]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, str, str]]:
    """Every CLI case run once, a few processes at a time: setting -> (result, tree hash before, after)."""
    roots = {setting: tmp_path_factory.mktemp("cli") for setting, _ in CLI_CASES}

    def one(setting: str) -> tuple[str, tuple[subprocess.CompletedProcess, str, str]]:
        run = _make_old_run(roots[setting])
        before = _hash_tree(run)
        result = _zoo("train", "subseq-gru", "--set", setting, "--out", str(run), "--force", cwd=roots[setting])
        return setting, (result, before, _hash_tree(run))

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(pool.map(one, roots))


@pytest.mark.slow
@pytest.mark.parametrize("setting, key", CLI_CASES, ids=[s for s, _ in CLI_CASES])
def test_cli_refuses_bad_value_and_leaves_the_old_run_alone(setting, key, cli_runs):
    result, before, after = cli_runs[setting]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = _error_lines(result.stderr)
    assert 1 <= len(lines) <= 2 and key in lines[0], result.stderr
    assert after == before  # --force with a refused value leaves the earlier run byte for byte


@pytest.mark.slow
def test_cli_config_file_not_utf8_is_one_line_naming_it(old_run, tmp_path):
    bad = tmp_path / "over.toml"
    bad.write_bytes(b"[model]\nhidden = 32\n# \xff\xfe not UTF-8\n")
    before = _hash_tree(old_run)
    result = _zoo("train", "subseq-gru", "--config", str(bad), "--out", str(old_run), "--force", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and str(bad) in lines[0] and "line 3" in lines[0], result.stderr
    assert _hash_tree(old_run) == before
