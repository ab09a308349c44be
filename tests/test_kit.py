"""The conformance kit (zoo.testing) run as a plugin author runs it: pytest --zoo-plugin NAME, in a new process.

It must pass the example third-party plugin and small built-in plugins, and it must fail a
plugin that breaks the contracts: a model whose reload changes its outputs (state kept
outside its weights, which comparing two loads of the same file cannot see), a factory path
that does not import, a dataset whose declared-disjoint splits overlap, a plugin that does not
import at all.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path
import textwrap

import pytest

pytest_plugins = ["pytester"]


def kit_args() -> list[str]:
    """``-p zoo.testing``, unless pytest already loads the kit through zoo's ``pytest11`` entry point.

    Passing ``-p`` for a module that an entry point of another name also registers makes pytest
    refuse to start, so the flag is given only when it is needed.
    """
    autoload = not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    if autoload and any(ep.value == "zoo.testing" for ep in md.entry_points(group="pytest11")):
        return []
    return ["-p", "zoo.testing"]


def run_kit(pytester: pytest.Pytester, *plugins: str, extra: tuple[str, ...] = ()) -> pytest.RunResult:
    args = [*kit_args(), "-v", "-rs", "-p", "no:cacheprovider", *extra]
    for name in plugins:
        args += ["--zoo-plugin", name]
    return pytester.runpytest_subprocess(*args, timeout=240)


@pytest.mark.slow
def test_kit_passes_the_example_third_party_plugin(pytester, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "lstm,seq2seq,subseq,tokenizers")
    result = run_kit(pytester, "lstm")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert "failed" not in outcomes and "errors" not in outcomes
    result.stdout.fnmatch_lines([
        "*test_plugin_loads?lstm? PASSED*",
        "*test_factory_imports?model:lstm:lstm-seq2seq? PASSED*",
        "*test_entry_trains_tiny?lstm:subseq-lstm? PASSED*",
        "*test_artifact_matches_trained_model?lstm:subseq-lstm? PASSED*",
        "*test_tokenizer_state_round_trip?lstm:subseq-lstm-src? PASSED*",
        "*test_dataset_splits_are_deterministic?lstm:subseq-lstm? PASSED*",
    ])
    assert outcomes["passed"] >= 10


@pytest.mark.slow
def test_kit_passes_built_in_plugins_through_entries_of_other_plugins(pytester, monkeypatch):
    """subseq registers only a dataset and seq2seq no entry: the kit trains an entry that uses them."""
    monkeypatch.setenv("ZOO_PLUGINS", "seq2seq,subseq,tokenizers")
    pytester.makepyfile(test_other="def test_other():\n    assert False\n")
    result = run_kit(pytester, "subseq", "seq2seq", extra=("-m", "zoo_kit"))  # the kit's tests only
    outcomes = result.parseoutcomes()
    assert outcomes.get("deselected") == 1
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert "failed" not in outcomes and "errors" not in outcomes
    result.stdout.fnmatch_lines([
        "*test_factory_imports?dataset:subseq:subseq? PASSED*",
        "*test_factory_imports?task:seq2seq:seq2seq? PASSED*",
        "*test_config_defaults_validate?model:seq2seq:gru-seq2seq? PASSED*",
        "*test_artifact_matches_trained_model?*subseq-gru? PASSED*",
    ])
    assert "test_predict_contract" in result.stdout.str()


BROKEN_INIT = '''
from zoo import hookimpl

@hookimpl
def zoo_register_models(register):
    register("drifting-seq2seq", "zoofake_kitbroken.model:Drifting")

@hookimpl
def zoo_register_tokenizers(register):
    register("missing", "zoofake_kitbroken.nowhere:Tokenizer")  # no such module

@hookimpl
def zoo_register_datasets(register):
    register("overlapping", "zoofake_kitbroken.data:Overlapping")

@hookimpl
def zoo_register_entries(register):
    register("drift", {"model": "drifting-seq2seq", "task": "seq2seq", "dataset": "overlapping",
                       "tokenizer": "digits", "tiny": {"train": {"epochs": 2, "batch_size": 16}}})
'''

BROKEN_MODEL = '''
from dataclasses import dataclass

import torch
from torch import nn

from zoo import Model


@dataclass
class DriftingConfig:
    dim: int = 16


class Drifting(Model):
    """Keeps a learned output scale in a plain attribute, which no artifact can carry."""

    Config = DriftingConfig

    def __init__(self, config, src_vocab, tgt_vocab, pad_id):
        super().__init__(config, src_vocab=src_vocab, tgt_vocab=tgt_vocab, pad_id=pad_id)
        self.src = nn.Embedding(src_vocab, config.dim)
        self.tgt = nn.Embedding(tgt_vocab, config.dim)
        self.head = nn.Linear(config.dim, tgt_vocab)
        self.scale = 1.0

    def forward(self, src, src_lengths, tgt_in, teacher_forcing=1.0):
        if self.training:
            self.scale += 0.5
        context = self.src(src).mean(1, keepdim=True)  # (B, 1, D)
        return self.head(self.tgt(tgt_in) + context) * self.scale  # (B, T, V)

    @torch.no_grad()
    def generate(self, src, src_lengths, max_len, bos_id, eos_id):
        ids = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
        for _ in range(max_len):
            ids = torch.cat([ids, self(src, src_lengths, ids)[:, -1:].argmax(-1)], 1)
        return ids[:, 1:]
'''

BROKEN_DATA = '''
import random

from zoo import Dataset


class Overlapping(Dataset):
    """Declares its splits disjoint by source, but validates on training examples."""

    disjoint_splits = "src"

    def load(self, split):
        self.check_split(split)
        rng = random.Random({"train": 0, "val": 0, "test": 2}[split])
        rows = []
        for _ in range(48 if split == "train" else 16):
            digits = [str(rng.randrange(10)) for _ in range(4)]
            rows.append({"src": " ".join(digits), "tgt": " ".join(reversed(digits))})
        return rows
'''


def install_broken_plugins(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fake distributions on PYTHONPATH: ``kitbroken`` (breaks three contracts), ``kitnoimport``."""
    site = pytester.mkdir("site")
    package = site / "zoofake_kitbroken"
    package.mkdir()
    for name, text in (("__init__", BROKEN_INIT), ("model", BROKEN_MODEL), ("data", BROKEN_DATA)):
        (package / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    dist = site / "zoofake_kitbroken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoofake-kitbroken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zoo]\nkitbroken = zoofake_kitbroken\nkitnoimport = zoofake_nosuch\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ZOO_PLUGINS", "kitbroken,kitnoimport,seq2seq,tokenizers")


@pytest.mark.slow
def test_kit_fails_a_plugin_that_breaks_the_contracts(pytester, monkeypatch):
    install_broken_plugins(pytester, monkeypatch)
    result = run_kit(pytester, "kitbroken", "kitnoimport")
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines_random([
        "*test_plugin_loads?kitbroken? PASSED*",
        "*test_plugin_loads?kitnoimport? FAILED*",
        "*test_factory_imports?tokenizer:kitbroken:missing? FAILED*",
        "*test_factory_imports?model:kitbroken:drifting-seq2seq? PASSED*",
        "*test_entry_trains_tiny?kitbroken:drift? PASSED*",
        "*test_artifact_matches_trained_model?kitbroken:drift? FAILED*",
        "*test_dataset_splits_are_deterministic?kitbroken:drift? PASSED*",
        "*test_dataset_splits_are_disjoint?kitbroken:drift? FAILED*",
    ])
    out = result.stdout.str()
    assert "cannot import 'zoofake_kitbroken.nowhere:Tokenizer'" in out
    assert "outputs of the reloaded model" in out and "values differ" in out
    assert "splits 'train' and 'val' share 16 example(s)" in out


def test_unknown_plugin_name_is_a_usage_error(pytester):
    result = run_kit(pytester, "no-such-plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--zoo-plugin no-such-plugin: no zoo plugin of that name is installed*"])


def test_without_the_option_the_kit_adds_no_tests(pytester):
    pytester.makepyfile(test_mine="def test_mine(tiny_run, zoo_plugin_specs):\n    assert callable(tiny_run)\n")
    result = pytester.runpytest_subprocess(*kit_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_kit_passes_every_built_in_plugin_and_the_example():
    """The contract tests over everything zoo ships, run from the repository root as CI runs them
    (some tiny configs name files of the repository by relative path)."""
    import subprocess
    import sys

    import zoo

    root = Path(__file__).resolve().parent.parent
    names = sorted(n for n, info in zoo.plugin_state().plugins.items()
                   if info.status == "ok" and (info.module.startswith("zoo_") or n == "lstm"))
    assert {"classify", "lm", "seq2seq", "seq2py", "subseq", "tagging", "text", "tokenizers", "lstm"} <= set(names)
    args = [sys.executable, "-m", "pytest", *kit_args(), "-q", "-p", "no:cacheprovider", "-m", "zoo_kit", "-rs"]
    for name in names:
        args += ["--zoo-plugin", name]
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
