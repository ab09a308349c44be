"""Shared fixtures: a fresh plugin state per test, tiny configs, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo import api
from zoo.registry import discovery as plugins

ROOT = Path(__file__).resolve().parent.parent

# Tiny subseq-gru: trains in about a second on one core.
TINY_SUBSEQ = {
    "dataset": {"train_size": 2000, "val_size": 200, "test_size": 200},
    "model": {"emb_dim": 16, "hidden": 32, "layers": 1},
    "train": {"epochs": 2, "batch_size": 64, "eval_batch_size": 200, "progress": False},
}
TINY_SUBSEQ_SETS = [
    "dataset.train_size=2000", "dataset.val_size=200", "dataset.test_size=200",
    "model.emb_dim=16", "model.hidden=32", "model.layers=1",
    "train.epochs=2", "train.batch_size=64", "train.eval_batch_size=200",
]


@pytest.fixture(autouse=True)
def fresh_zoo(monkeypatch, tmp_path):
    """Every test starts with freshly loaded plugins and its own cache folder."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    api.reset()
    yield
    api.reset()


@pytest.fixture
def use_plugins():
    """Install a fresh registry with extra fake plugins: ``use_plugins(("name", module_or_obj), ...)``."""

    def install(*extra, environ=None):
        loaded = plugins.load(extra=extra, environ=environ)
        api.reset(loaded)
        return loaded

    return install


@pytest.fixture
def cli():
    """Run the CLI in-process: ``cli("list")`` -> click Result (exit_code, output)."""
    from zoo.cli import build_cli

    def run(*args: str, **kw):
        api.reset()
        runner = CliRunner()
        return runner.invoke(build_cli(), list(args), catch_exceptions=True, **kw)

    return run


def zoo_on_cores(cores: int) -> list[str]:
    """``python -m zoo`` as on a machine with ``cores`` CPU cores, whatever this one has: ``zoo train --nproc N``
    tests run on any CPU (only the launching process counts cores; the ranks it starts are plain ``-m zoo``)."""
    code = (f"import sys, zoo.runtime.device; zoo.runtime.device.cpu_cores = lambda: {int(cores)}; sys.argv[0] = 'zoo'; "
            "from zoo.cli import main; main()")
    return [sys.executable, "-c", code]


def zoo_subprocess(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m zoo ARGS`` in a real process (for import-cost and traceback checks)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def data_dir() -> Path | None:
    value = os.environ.get("ZOO_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture
def data_dir_or_skip() -> Path:
    """The real-data folder (ZOO_DATA_DIR); the test is skipped when it is not set."""
    found = data_dir()
    if found is None:
        pytest.skip("ZOO_DATA_DIR is not set to the shared data folder")
    return found


@pytest.fixture
def tiny_run(tmp_path_factory):
    """A trained tiny subseq-gru run folder (trained once per test that asks)."""
    out = tmp_path_factory.mktemp("run") / "subseq"
    zoo.train("subseq-gru", TINY_SUBSEQ, out=out)
    return out
