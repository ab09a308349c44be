"""zoo new-plugin: the generated package installs, is listed, trains its entry and passes the kit as generated."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_kit import kit_args

from zoo import ZooUsageError
from zoo.cli.common import ZooGroup
from zoo.cli.new_plugin import new_plugin_cmd, write_plugin


def new_plugin(*args: str):
    """Run ``zoo new-plugin ARGS`` through a group that turns zoo errors into exit codes, as ``zoo`` does."""
    group = ZooGroup()
    group.add_command(new_plugin_cmd)
    return CliRunner().invoke(group, ["new-plugin", *args])


def test_generated_files_are_complete_and_filled_in(tmp_path):
    out = write_plugin("polarity", tmp_path / "zoo-polarity")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "tests/test_plugin.py", "zoo_polarity/__init__.py",
                     "zoo_polarity/dataset.py", "zoo_polarity/model.py", "zoo_polarity/sample/test.csv",
                     "zoo_polarity/sample/train.csv", "zoo_polarity/sample/val.csv"]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert "{{" not in text, f"{path}: a template field was left unfilled"
            if path.suffix == ".py":
                compile(text, str(path), "exec")
    project = tomllib.loads((out / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "zoo-polarity"
    assert project["project"]["entry-points"]["zoo"] == {"polarity": "zoo_polarity"}
    assert "--zoo-plugin polarity" in project["tool"]["pytest"]["ini_options"]["addopts"]


def test_command_writes_the_package_and_says_what_to_do_next(tmp_path):
    result = new_plugin("polarity", "--dest", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "zoo_polarity" / "model.py").is_file()
    assert "pip install -e" in result.output and "zoo train polarity-demo" in result.output


def test_command_refuses_a_folder_that_is_not_empty_and_leaves_it_alone(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = new_plugin("polarity", "--dest", str(tmp_path))
    assert result.exit_code == 2
    assert "already exists and is not an empty folder" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "p").mkdir()
    assert (write_plugin("polarity", tmp_path / "p") / "pyproject.toml").is_file()


@pytest.mark.parametrize("name,problem", [("Polarity", "lower-case"), ("2fast", "starting with a letter"),
                                          ("a_b", "joined by '-'"), ("classify", "already installed"),
                                          ("zoo", "already installed")])
def test_bad_or_taken_names_are_refused(tmp_path, name, problem):
    with pytest.raises(ZooUsageError, match=problem):
        write_plugin(name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.mark.slow
def test_generated_plugin_installs_lists_trains_and_passes_the_kit(tmp_path):
    """pip-installed into a folder of its own (the way tests/test_third_party.py installs the example)."""
    source = write_plugin("polarity", tmp_path / "zoo-polarity")
    site = tmp_path / "site"
    pip = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                "--target", str(site), str(source)], dict(os.environ), tmp_path)
    assert pip.returncode == 0, pip.stderr
    assert (site / "zoo_polarity" / "sample" / "train.csv").is_file(), "the sample data was not installed"
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    env.pop("ZOO_PLUGINS", None)
    zoo = [sys.executable, "-m", "zoo"]

    listing = _run([*zoo, "list", "polarity:*"], env, tmp_path)
    assert listing.returncode == 0, listing.stderr
    for spec_id in ("polarity:polarity-demo", "polarity:bag-of-embeddings", "polarity:csv-folder"):
        assert spec_id in listing.stdout

    train = _run([*zoo, "train", "polarity-demo", "--out", "run", "--set", "train.epochs=3",
                  "--set", "train.progress=false"], env, tmp_path)
    assert train.returncode == 0, train.stderr
    evaluated = _run([*zoo, "eval", "run", "--json"], env, tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert '"accuracy"' in evaluated.stdout
    exported = _run([*zoo, "export", "run", "--out", "polarity-fp16.safetensors", "--dtype", "float16"], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    predicted = _run([*zoo, "predict", "polarity-fp16.safetensors", "a warm and funny film", "--json"], env, tmp_path)
    assert predicted.returncode == 0 and '"label"' in predicted.stdout, predicted.stderr

    kit = _run([sys.executable, "-m", "pytest", *kit_args(), "-p", "no:cacheprovider", "-v", "-rs"], env, source)
    assert kit.returncode == 0, kit.stdout[-3000:] + kit.stderr[-2000:]
    for passed in ("test_the_demo_model_labels_new_texts", "test_entry_trains_tiny[polarity:polarity-demo]",
                   "test_artifact_matches_trained_model[polarity:polarity-demo]",
                   "test_tokenizer_state_round_trip[polarity:polarity-demo-text]",
                   "test_predict_contract[polarity:polarity-demo]"):
        assert f"{passed} PASSED" in kit.stdout, passed
