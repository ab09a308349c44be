"""``zoo tune`` (plugin zoo_tune): search spaces as data, studies that resume, clear errors.

Studies run the tiny subseq-gru on one thread with a search space over keys the
tiny settings leave alone (optim.lr, model.attention); each trial takes a second or two.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo import api

from conftest import ROOT, TINY_SUBSEQ_SETS

optuna = pytest.importorskip("optuna")

TINY_SETS = [*TINY_SUBSEQ_SETS, "train.threads=1", "train.progress=false"]
SPACE = """
[tune]
seed = 0

[space."optim.lr"]
type = "float"
low = 1e-3
high = 3e-2
log = true

[space."model.attention"]
type = "categorical"
choices = ["dot", "general", "none"]
"""


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def error_line(result) -> str:
    """The one-line error of a failed command (no traceback)."""
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    out = result.output
    assert out.count("Error: ") == 1, out
    err = out[out.index("Error: "):].rstrip("\n")
    assert "\n" not in err, err
    return err


def tune_args(out: Path, space: Path, trials: int, *extra: str) -> list[str]:
    return ["tune", "subseq-gru", "--trials", str(trials), "--space", str(space), "--out", str(out),
            *sets(TINY_SETS), *extra]


def states(out: Path, study: str = "subseq-gru") -> dict[int, str]:
    s = optuna.load_study(study_name=study, storage=f"sqlite:///{out / 'study.db'}")
    return {t.number: t.state.name for t in s.get_trials()}


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


def write_space(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad-space.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-trial study, run once; tests copy its folder before changing anything."""
    base = tmp_path_factory.mktemp("tune")
    space = base / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    out = base / "study"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(base / "cache"))
        api.reset()
        from zoo.cli import build_cli

        result = CliRunner().invoke(build_cli(), tune_args(out, space, 3))
        api.reset()
    assert result.exit_code == 0, result.output
    return result, out, space


@pytest.fixture
def study_copy(study, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(study[1], out)
    return out


# --- a study end to end ---------------------------------------------------------------------------

def test_study_prints_the_table_and_writes_best_toml_csv_and_plot(study):
    result, out, _ = study
    lines = result.stdout.splitlines()
    head = next(line for line in lines if line.startswith("trial  state"))
    for column in ("val_exact_match", "epochs", "optim.lr", "model.attention"):
        assert column in head
    rows = [line for line in lines if line[:1].isdigit()]
    assert len(rows) == 3 and sum("*best" in r for r in rows) == 1
    assert "(baseline)" in rows[0]  # the entry's own lr and attention lie inside the space: trial 0 tries them
    assert set(states(out).values()) <= {"COMPLETE", "PRUNED"} and len(states(out)) == 3
    assert [d.name for d in sorted(out.glob("trial-*"))] == ["trial-0", "trial-1", "trial-2"]

    best = tomllib.loads((out / "best.toml").read_text())
    assert set(best) == {"optim", "model"} and set(best["optim"]) == {"lr"} and set(best["model"]) == {"attention"}
    assert 1e-3 <= best["optim"]["lr"] <= 3e-2 and best["model"]["attention"] in ("dot", "general", "none")
    with open(out / "trials.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["trial"] for r in table] == ["0", "1", "2"]
    complete = [r for r in table if r["state"] == "complete"]
    best_number = next(r for r in rows if "*best" in r).split()[0]
    assert max(complete, key=lambda r: float(r["val_exact_match"]))["trial"] == best_number
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # written atomically


def test_baseline_trial_is_the_entry_configuration(study):
    _, out, _ = study
    s = optuna.load_study(study_name="subseq-gru", storage=f"sqlite:///{out / 'study.db'}")
    first = s.trials[0]
    assert first.params == {"optim.lr": 0.01, "model.attention": "dot"} and first.user_attrs["baseline"] is True


def test_best_toml_is_accepted_by_zoo_train(cli, study, tmp_path):
    _, out, _ = study
    result = cli("train", "subseq-gru", "--config", str(out / "best.toml"), *sets(TINY_SETS),
                 "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    used = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    best = tomllib.loads((out / "best.toml").read_text())
    assert used["optim"]["lr"] == best["optim"]["lr"] and used["model"]["attention"] == best["model"]["attention"]


def test_every_trial_is_a_zoo_run_that_reported_each_epoch(study):
    _, out, _ = study
    s = optuna.load_study(study_name="subseq-gru", storage=f"sqlite:///{out / 'study.db'}")
    for t in s.trials:
        records = [json.loads(line) for line in (out / f"trial-{t.number}" / "metrics.jsonl").read_text().splitlines()]
        assert {r["epoch"]: r["val_exact_match"] for r in records} == t.intermediate_values
        if t.state.name == "COMPLETE":
            assert (out / f"trial-{t.number}" / "model.safetensors").is_file()
            assert t.value == max(t.intermediate_values.values())  # the best epoch's metric


def test_resuming_adds_trials_instead_of_starting_over(cli, study, study_copy):
    _, _, space = study
    before = optuna.load_study(study_name="subseq-gru", storage=f"sqlite:///{study_copy / 'study.db'}").trials
    result = cli(*tune_args(study_copy, space, 5))
    assert result.exit_code == 0, result.output
    assert "2 run now" in result.stdout
    after = optuna.load_study(study_name="subseq-gru", storage=f"sqlite:///{study_copy / 'study.db'}").trials
    assert [t.number for t in after] == [0, 1, 2, 3, 4]
    assert [(t.params, t.value) for t in after[:3]] == [(t.params, t.value) for t in before]
    assert not any(t.user_attrs.get("baseline") for t in after[3:])  # the baseline is tried once per study
    again = cli(*tune_args(study_copy, space, 5))  # the target is reached: nothing more to run
    assert again.exit_code == 0 and "0 run now" in again.stdout
    assert len(states(study_copy)) == 5


def test_resuming_with_another_space_is_refused(cli, study, study_copy, tmp_path):
    other = write_space(tmp_path, SPACE.replace("high = 3e-2", "high = 5e-2"))
    result = cli(*tune_args(study_copy, other, 5))
    err = error_line(result)
    assert "another search space" in err and "--study" in err
    assert len(states(study_copy)) == 3


def test_resuming_with_other_fixed_settings_is_refused(cli, study, study_copy):
    _, _, space = study
    err = error_line(cli(*tune_args(study_copy, space, 5, "--set", "train.epochs=3")))
    assert "train.epochs=2" in err and "train.epochs=3" in err and "--study" in err
    assert len(states(study_copy)) == 3
    # per-machine settings may differ between the processes of one study
    ok = cli(*tune_args(study_copy, space, 4, "--set", "train.threads=2", "--device", "cpu"))
    assert ok.exit_code == 0, ok.output
    assert len(states(study_copy)) == 4


# --- Ctrl-C --------------------------------------------------------------------------------------

def test_ctrl_c_marks_the_trial_failed_and_the_same_command_resumes(cli, space_file, tmp_path, monkeypatch):
    out = tmp_path / "study"
    real_train = zoo.train
    calls = []

    def train_then_interrupt(*args, on_epoch=None, **kwargs):
        calls.append(kwargs["out"])

        def hook(record):
            on_epoch(record)
            if len(calls) == 2:  # the second trial, after its first epoch
                raise KeyboardInterrupt

        return real_train(*args, on_epoch=hook, **kwargs)

    monkeypatch.setattr(zoo, "train", train_then_interrupt)
    result = cli(*tune_args(out, space_file, 3))
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "interrupted: trial 1 marked fail; run the same command to resume the study"
    assert states(out) == {0: "COMPLETE", 1: "FAIL"} or states(out) == {0: "PRUNED", 1: "FAIL"}

    monkeypatch.setattr(zoo, "train", real_train)
    again = cli(*tune_args(out, space_file, 3))
    assert again.exit_code == 0, again.output
    final = states(out)
    assert final[1] == "FAIL" and len(final) == 4  # trial 1 stays failed, two more make the three asked for
    assert sum(s in ("COMPLETE", "PRUNED") for s in final.values()) == 3
    assert any(line.startswith("1 ") and " fail " in line for line in again.stdout.splitlines()), again.stdout


@pytest.mark.slow
def test_sigint_to_a_real_process_leaves_a_consistent_study(space_file, tmp_path):
    out = tmp_path / "study"
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("ZOO_REGISTRY", None)
    cmd = [sys.executable, "-m", "zoo", *tune_args(out, space_file, 20)]
    # a command started in the background (`cmd &` in a script, as CI may run us) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: give the child the default
    # disposition a process started from a terminal has
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / "trial-1" / "config.toml").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().startswith("interrupted") and len(stderr.strip().splitlines()) == 1, stderr
    assert "RUNNING" not in states(out).values()  # the trial was marked, not lost


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, words", [
    ('[space."model.hiden"]\ntype = "int"\nlow = 16\nhigh = 64\n',
     ["space 'model.hiden'", "unknown key 'model.hiden'", "valid keys of [model]", "emb_dim", "hidden"]),
    ('[space."modle.hidden"]\ntype = "int"\nlow = 16\nhigh = 64\n', ["unknown config section 'modle'", "model"]),
    ('[space."optim.lr"]\ntype = "float"\nlow = 0.1\nhigh = 0.01\n', ["empty range", "low (0.1)", "high (0.01)"]),
    ('[space."optim.lr"]\ntype = "float"\nlow = 0.01\nhigh = 0.01\n', ["empty range"]),
    ('[space."optim.lr"]\ntype = "real"\nlow = 0.001\nhigh = 0.01\n', ["type 'real'", "float, int, categorical"]),
    ('[space."optim.lr"]\nlow = 0.001\nhigh = 0.01\n', ["no 'type'", "float, int, categorical"]),
    ('[space."model.attention"]\ntype = "categorical"\n', ["needs 'choices'", "non-empty list"]),
    ('[space."model.attention"]\ntype = "categorical"\nchoices = []\n', ["needs 'choices'"]),
    ('[space."model.attention"]\ntype = "categorical"\nchoices = ["dot", "bahdanau"]\n',
     ["'model.attention' = 'bahdanau'", "must be", "'dot'"]),
    ('[space."optim.lr"]\ntype = "float"\nlow = 0.0\nhigh = 0.01\nlog = true\n', ["log = true needs low > 0"]),
    ('[space."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\nlgo = true\n',
     ["unknown key 'lgo'", "valid keys: type, low, high, log, step"]),
    ('[space."model.hidden"]\ntype = "int"\nlow = 32\nhigh = 250\nstep = 32\n', ["use high = 224"]),
    ('[space."model.hidden"]\ntype = "int"\nlow = 32.5\nhigh = 64\n', ["low must be an integer"]),
    ('[space."train.seed"]\ntype = "float"\nlow = 0\nhigh = 5\n', ["'train.seed' = 0.0", "must be int"]),
    ('[space."lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n', ["dotted config key SECTION.KEY"]),
    ('[space]\n', ["non-empty table of parameters"]),
    ('[tune]\nmetric = "val_exact_match"\n', ["no [space] tables"]),
    ('[tune]\nmetric = "val_bleu"\n[space."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n',
     ["unknown metric 'val_bleu'", "val_exact_match"]),
    ('[tune]\npruner = "asha"\n[space."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n',
     ["tune.pruner", "hyperband"]),
    ('[tune]\nprunner = "median"\n[space."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n',
     ["unknown key 'tune.prunner'", "pruner"]),
    ('[spaces."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n', ["unknown table 'spaces'"]),
    ('[space."model.emb_dim"]\ntype = "int"\nlow = 8\nhigh = 64\n', ["is both searched", "fixed by --set"]),
])
def test_bad_space_is_a_clear_error_before_anything_runs(cli, tmp_path, body, words):
    space = write_space(tmp_path, body)
    out = tmp_path / "study"
    err = error_line(cli(*tune_args(out, space, 2)))
    for w in words:
        assert w in err, err
    assert not out.exists()  # nothing was written


def test_entry_without_a_space(cli, tmp_path):
    err = error_line(cli("tune", "pos-transformer", "--trials", "2", "--out", str(tmp_path / "s")))
    assert "declares no search space" in err and "--space" in err


def test_entry_default_space_comes_from_the_registry(cli, tmp_path):
    from zoo_tune.space import check_space, load_spec

    spec = load_spec("subseq-gru")  # the [tune] table of the entry, in plugins/zoo_seq2seq/entries.toml
    assert spec.where == "registry entry seq2seq:subseq-gru [tune]" and "optim.lr" in spec.space
    check_space("seq2seq:subseq-gru", {}, spec)  # the shipped default is valid
    override = write_space(tmp_path, '[space."model.hidden"]\ntype = "int"\nlow = 32\nhigh = 64\nstep = 32\n')
    replaced = load_spec("subseq-gru", override)
    assert list(replaced.space) == ["model.hidden"]  # a file replaces the space ...
    assert replaced.settings.metric == spec.settings.metric  # ... and keeps the entry's settings it does not name


def test_every_shipped_default_space_resolves():
    from zoo_tune.space import check_space, load_spec

    entries = [e for e in zoo.list_entries() if "tune" in zoo.get_registry().get("entry", e).data]
    if not entries:
        pytest.skip("no entry in registry.toml declares a [tune] table yet")
    for entry in entries:  # with the tiny dataset: text-gpt needs files of the user's to resolve
        tiny = zoo.get_registry().get("entry", entry).data.get("tiny", {})
        check_space(entry, {"dataset": tiny.get("dataset", {})}, load_spec(entry))


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-folder/deeper/study.db", "nosuchdb://host/db", "not a url"])
def test_storage_that_cannot_be_opened(cli, space_file, tmp_path, url):
    err = error_line(cli(*tune_args(tmp_path / "study", space_file, 2, "--storage", url)))
    assert err.startswith(f"Error: --storage {url}: cannot open it (")
    assert cli(*tune_args(tmp_path / "study", space_file, 2, "--storage", url)).exit_code == 1


def test_storage_password_is_not_printed(cli, space_file, tmp_path):
    err = error_line(cli(*tune_args(tmp_path / "study", space_file, 2, "--storage",
                                    "postgresql://me:hunter2@localhost:1/db")))
    assert "cannot open it" in err and "hunter2" not in err and "***" in err


def test_out_folder_with_runs_of_another_study(cli, study, study_copy):
    _, _, space = study
    result = cli(*tune_args(study_copy, space, 5, "--study", "another"))
    err = error_line(result)
    assert "trial-0" in err and "did not make" in err


def test_early_stopping_that_clashes_with_the_study_metric(cli, tmp_path):
    space = write_space(tmp_path, SPACE.replace("seed = 0", 'seed = 0\nmetric = "val_exact_match"'))
    err = error_line(cli(*tune_args(tmp_path / "s", space, 2, "--set", "train.early_stopping=val_loss")))
    assert "train.early_stopping=val_loss" in err and "val_exact_match" in err


def test_without_optuna_the_command_says_how_to_install_it(cli, space_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    result = cli(*tune_args(tmp_path / "s", space_file, 2))
    err = error_line(result)
    assert result.exit_code == 1 and "pip install 'zoo[tune]'" in err
    assert not (tmp_path / "s").exists()
    listed = cli("--help")
    assert listed.exit_code == 0 and "tune" in listed.stdout  # the rest of zoo does not need it


def test_tune_module_imports_no_optuna_until_it_runs():
    snippet = ("import sys\nfrom zoo.cli import main\ntry: main(['tune', '--help'])\nexcept SystemExit: pass\n"
               "print('OPTUNA' if 'optuna' in sys.modules else 'NOOPTUNA', 'TORCH' if 'torch' in sys.modules else '')")
    proc = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--trials" in proc.stdout and proc.stdout.strip().splitlines()[-1].strip() == "NOOPTUNA"


def test_tune_out_never_replaces_a_users_result_files(tmp_path, monkeypatch):
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "best.toml").write_text("# my own settings\n", encoding="utf-8")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    api.reset()
    from zoo.cli import build_cli

    result = CliRunner().invoke(build_cli(), tune_args(out, space, 1))
    api.reset()
    assert result.exit_code == 1, result.output
    assert "best.toml" in result.output and "zoo tune did not write" in result.output
    assert (out / "best.toml").read_text(encoding="utf-8") == "# my own settings\n"
    assert sorted(p.name for p in out.iterdir()) == ["best.toml"]  # refused before any trial or database
