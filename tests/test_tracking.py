"""Experiment tracking (``train.loggers``, ``--logger``): real TensorBoard event files read back with
TensorBoard's own reader, a real ``mlflow server`` (SQLite backend store) started here on 127.0.0.1,
and MLflow's local ``file:`` store.

Runs are a tiny subseq-gru (256 examples, 2 epochs of 8 steps) on one thread: a second or two each.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import zoo
from zoo import api

tb_reader = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

TINY = {
    "dataset": {"train_size": 256, "val_size": 64, "test_size": 64},
    "model": {"emb_dim": 8, "hidden": 16, "layers": 1},
    "train": {"epochs": 2, "batch_size": 32, "eval_batch_size": 64, "progress": False, "threads": 1,
              "device": "cpu"},
}
TINY_SETS = [f"{section}.{k}={json.dumps(v)}" for section, table in TINY.items() for k, v in table.items()]
STEPS_PER_EPOCH = 8  # 256 / 32


def tiny(**train) -> dict:
    return zoo.merge_config(TINY, {"train": train})


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows for the run: tag -> [(step, value)]."""
    acc = tb_reader.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tb_texts(run_dir: Path) -> dict[str, str]:
    acc = tb_reader.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag.removesuffix("/text_summary"): acc.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
            for tag in acc.Tags()["tensors"] if tag.endswith("/text_summary")}


def tb_hparams(run_dir: Path) -> dict[str, object]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = tb_reader.EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    found = {}
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                found[key] = getattr(value, value.WhichOneof("kind"))
    return found


def mlflow_run(run_dir: Path):
    state = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(state["tracking_uri"])
    return client, client.get_run(state["run_id"])


def mlflow_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def error_line(result) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    err = result.output[result.output.index("Error: "):].rstrip("\n")
    assert "\n" not in err, err
    return err


# --- a real MLflow tracking server -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with a SQLite backend store; its URL. Started once per module."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    exe = Path(sys.executable).parent / "mlflow"
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
                             "--artifacts-destination", str(base / "artifacts")],
                            cwd=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # start-up is slow on a loaded machine
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited ({proc.returncode}): {(base / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer in 240 s: {(base / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and the workers it started
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def tracked(mlflow_server, tmp_path_factory):
    """One run reporting to TensorBoard and to the MLflow server, with its artifact."""
    base = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        mp.setenv("ZOO_CACHE_DIR", str(base / "cache"))
        api.reset()
        result = zoo.train("subseq-gru", tiny(loggers=["tensorboard", "mlflow"], log_artifact=True),
                           out=base / "run")
        api.reset()
    return result


# --- TensorBoard -------------------------------------------------------------------------------------

def test_tensorboard_has_every_step_every_epoch_the_test_metrics_config_and_card(tracked):
    run_dir = tracked.run_dir
    tb = scalars(run_dir)
    steps = 2 * STEPS_PER_EPOCH
    assert [s for s, _ in tb["train/loss"]] == list(range(1, steps + 1))
    assert [s for s, _ in tb["train/lr"]] == list(range(1, steps + 1))
    assert all(math.isfinite(v) and v > 0 for _, v in tb["train/loss"])
    # the mean of an epoch's step losses is the epoch's train_loss
    first_epoch = [v for s, v in tb["train/loss"] if s <= STEPS_PER_EPOCH]
    assert sum(first_epoch) / len(first_epoch) == pytest.approx(history(run_dir)[0]["train_loss"], rel=1e-5)
    for key, value in tracked.metrics["test"].items():
        assert tb[f"test_{key}"] == [(steps, pytest.approx(value, rel=1e-6, abs=1e-7))]
    hp = tb_hparams(run_dir)
    assert hp["model.hidden"] == 16 and hp["train.batch_size"] == 32 and hp["entry"] == "seq2seq:subseq-gru"
    texts = tb_texts(run_dir)
    assert texts["status"] == "completed"
    assert texts["model_card"] == (run_dir / "README.md").read_text()


# --- MLflow ------------------------------------------------------------------------------------------

def test_mlflow_server_run_has_params_metrics_card_and_artifact(tracked, mlflow_server):
    client, run = mlflow_run(tracked.run_dir)
    assert client.tracking_uri == mlflow_server
    assert run.info.status == "FINISHED" and run.data.tags["zoo.status"] == "completed"
    assert run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "subseq-gru"
    params = run.data.params
    assert params["model.hidden"] == "16" and params["optim.name"] == "adam"
    assert params["train.loggers"] == '["tensorboard", "mlflow"]'
    assert len(mlflow_history(client, run.info.run_id, "train/loss")) == 2 * STEPS_PER_EPOCH
    files = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id)}
    assert set(files) == {"README.md", "model.safetensors"}
    assert files["model.safetensors"] == (tracked.run_dir / "model.safetensors").stat().st_size
    card = Path(client.download_artifacts(run.info.run_id, "README.md", str(tracked.run_dir.parent)))
    assert card.read_text() == (tracked.run_dir / "README.md").read_text()


def test_metrics_are_the_same_in_metrics_jsonl_tensorboard_and_mlflow(tracked):
    run_dir = tracked.run_dir
    client, run = mlflow_run(run_dir)
    tb = scalars(run_dir)
    records = history(run_dir)
    assert len(records) == 2
    compared = 0
    for key in sorted({k for r in records for k in r} - {"step"}):
        want = [(r["step"], float(r[key])) for r in records]
        assert mlflow_history(client, run.info.run_id, key) == want, key  # MLflow keeps float64: exact
        got = tb[key]  # TensorBoard keeps float32
        assert [s for s, _ in got] == [s for s, _ in want], key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-7), key
        compared += 1
    assert compared >= 9  # epoch, train_loss, lr, train_time, 4 val_ metrics, eval_time, eval_examples
    test_tb = {k.removeprefix("test_"): v[-1][1] for k, v in tb.items() if k.startswith("test_")}
    test_ml = {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")}
    assert test_ml == tracked.metrics["test"]
    assert test_tb == pytest.approx(tracked.metrics["test"], rel=1e-6, abs=1e-7)
    step_tb = [v for _, v in tb["train/loss"]]
    step_ml = [v for _, v in mlflow_history(client, run.info.run_id, "train/loss")]
    assert step_tb == pytest.approx(step_ml, rel=1e-6)


def test_resumed_run_continues_the_same_mlflow_run_and_tensorboard_folder(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    out = tmp_path / "run"
    zoo.train("subseq-gru", tiny(epochs=1, loggers=["mlflow", "tensorboard"]), out=out)
    first = json.loads((out / "trackers.json").read_text())
    client, run = mlflow_run(out)
    assert run.info.status == "FINISHED"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the run folder says where its MLflow run lives
    result = zoo.train(None, {"train": {"epochs": 2}}, resume=out)
    assert json.loads((out / "trackers.json").read_text()) == first
    client, run = mlflow_run(out)
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id], f"tags.`zoo.run_dir` = '{out.resolve()}'")) == 1
    records = history(out)
    assert [r["step"] for r in records] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert mlflow_history(client, run.info.run_id, "val_loss") == [(r["step"], r["val_loss"]) for r in records]
    assert run.data.params["train.epochs"] == "1"  # MLflow keeps a parameter's first value
    assert [s for s, _ in mlflow_history(client, run.info.run_id, "train/loss")] == list(range(1, 17))
    tb = scalars(out)
    assert [s for s, _ in tb["val_loss"]] == [r["step"] for r in records]
    assert [s for s, _ in tb["train/loss"]] == list(range(1, 17))
    assert result.metrics["test"] == {k.removeprefix("test_"): v for k, v in run.data.metrics.items()
                                      if k.startswith("test_")}


def test_mlflow_local_file_store(tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    result = zoo.train("subseq-gru", tiny(epochs=1, loggers=["mlflow"]), out=tmp_path / "run")
    client, run = mlflow_run(result.run_dir)
    assert client.tracking_uri == store.as_uri()
    assert (store / run.info.experiment_id / run.info.run_id).is_dir()
    assert run.info.status == "FINISHED"
    record = history(result.run_dir)[0]
    assert mlflow_history(client, run.info.run_id, "val_loss") == [(record["step"], record["val_loss"])]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["README.md"]  # no log_artifact


def test_a_tracking_server_that_does_not_answer_is_a_quick_one_line_error(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    result = cli("train", "subseq-gru", *[a for s in TINY_SETS for a in ("--set", s)], "--logger", "mlflow",
                 "--out", str(tmp_path / "run"))
    err = error_line(result)
    assert "logger mlflow" in err and "no MLflow tracking server answers at http://127.0.0.1:" in err
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run" / "model.safetensors").exists()


# --- the command line ----------------------------------------------------------------------------------

def test_logger_flag_on_zoo_train(cli, tmp_path):
    out = tmp_path / "run"
    sets = [a for s in TINY_SETS for a in ("--set", s)]
    result = cli("train", "subseq-gru", *sets, "--set", "train.epochs=1", "--logger", "tensorboard", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "trackers.json").read_text()) == {"tensorboard": {"log_dir": "tensorboard", "name": "run"}}
    assert zoo.load_toml(out / "config.toml")["train"]["loggers"] == ["tensorboard"]
    assert [s for s, _ in scalars(out)["val_loss"]] == [STEPS_PER_EPOCH]


def test_unknown_logger_is_a_one_line_error_listing_the_known_ones(cli, tmp_path):
    result = cli("train", "subseq-gru", "--logger", "wandb", "--out", str(tmp_path / "run"))
    err = error_line(result)
    assert "train.loggers: unknown logger 'wandb'" in err and "known loggers: mlflow, tensorboard" in err
    assert not (tmp_path / "run").exists()
    bad_type = cli("train", "subseq-gru", "--set", "train.loggers=tensorboard", "--out", str(tmp_path / "run"))
    assert "train.loggers" in error_line(bad_type)


@pytest.mark.parametrize("name, extra", [("tensorboard", "zoo[tensorboard]"), ("mlflow", "zoo[mlflow]")])
def test_a_logger_without_its_extra_says_what_to_install(cli, tmp_path, monkeypatch, name, extra):
    monkeypatch.setitem(sys.modules, name, None)  # as if the package were not installed
    result = cli("train", "subseq-gru", "--logger", name, "--out", str(tmp_path / "run"))
    err = error_line(result)
    assert f"logger '{name}' needs the {name} package" in err and f"pip install '{extra}'" in err
    assert not (tmp_path / "run").exists()


def test_zoo_list_shows_the_loggers(cli):
    result = cli("list", "--kind", "logger")
    assert result.exit_code == 0, result.output
    assert "track:mlflow" in result.output and "track:tensorboard" in result.output


def test_only_rank_0_reports_under_two_processes(tmp_path):
    out = tmp_path / "run"
    sets = [a for s in [*TINY_SETS, "train.grad_accum=2"] for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", "subseq-gru", *sets, "--nproc", "2",
                           "--logger", "tensorboard", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((out / "tensorboard").iterdir())) == 1  # one events file: one writer
    tb = scalars(out)
    steps = 2 * STEPS_PER_EPOCH // 2
    assert [s for s, _ in tb["train/loss"]] == list(range(1, steps + 1))  # each step once
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in tb["val_loss"]] == [(r["step"], r["val_loss"])
                                                                           for r in history(out)]


# --- a logger from a plugin --------------------------------------------------------------------------

class Recorder(zoo.Logger):
    """A tracker that keeps what it is told, as a third-party logger plugin would send it elsewhere."""

    calls: list = []

    def start(self, run, params):
        Recorder.calls.append(("start", run.name, run.resume, params["model.hidden"]))
        return {"id": f"rec-{len(Recorder.calls)}"}

    def log_metrics(self, step, metrics):
        Recorder.calls.append(("metrics", step, dict(metrics)))

    def log_artifact(self, path):
        Recorder.calls.append(("artifact", path.name))

    def finish(self, status):
        Recorder.calls.append(("finish", status))


class RecorderPlugin:
    @zoo.hookimpl
    def zoo_register_loggers(self, register):
        register("recorder", Recorder, summary="keeps what it is told")


def test_a_plugin_logger_registered_through_the_hook_gets_the_whole_run(use_plugins, tmp_path):
    use_plugins(("rec", RecorderPlugin()))
    Recorder.calls = []
    result = zoo.train("subseq-gru", tiny(loggers=["recorder"], log_artifact=True), out=tmp_path / "run")
    calls = Recorder.calls
    assert calls[0] == ("start", "run", None, 16)
    steps = [c for c in calls if c[0] == "metrics" and "train/loss" in c[2]]
    assert [c[1] for c in steps] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    epochs = [c for c in calls if c[0] == "metrics" and "val_loss" in c[2]]
    assert [c[2]["val_loss"] for c in epochs] == [r["val_loss"] for r in history(result.run_dir)]
    assert calls[-3:] == [("artifact", "README.md"), ("artifact", "model.safetensors"), ("finish", "completed")]
    assert json.loads((result.run_dir / "trackers.json").read_text()) == {"recorder": {"id": "rec-1"}}


def test_a_failed_run_ends_its_tracker_run_failed(use_plugins, tmp_path):
    use_plugins(("rec", RecorderPlugin()))
    Recorder.calls = []
    with pytest.raises(zoo.TrainingError):
        zoo.train("subseq-gru", zoo.merge_config(tiny(loggers=["recorder"], clip_norm=None),
                                                 {"optim": {"name": "sgd", "lr": 1e38}}), out=tmp_path / "run")
    assert Recorder.calls[0][0] == "start" and Recorder.calls[-1] == ("finish", "failed")


def test_the_conformance_kit_checks_a_logger_plugin(tmp_path):
    from test_kit import kit_args

    (tmp_path / "project").mkdir()  # a plugin author's project: nothing of its own to collect
    args = [sys.executable, "-m", "pytest", *kit_args(), "-v", "-p", "no:cacheprovider", "-rs", "--zoo-plugin", "track",
            "--rootdir", str(tmp_path / "project"), "--basetemp", str(tmp_path / "kit")]
    proc = subprocess.run(args, cwd=tmp_path / "project", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "test_logger_reports_a_run[logger:track:mlflow] PASSED" in proc.stdout
    assert "test_logger_reports_a_run[logger:track:tensorboard] PASSED" in proc.stdout
    assert "test_factory_imports[logger:track:mlflow] PASSED" in proc.stdout


# --- zoo tune ------------------------------------------------------------------------------------------

TUNE_SPACE = """
[tune]
seed = 0
metric = "val_loss"
pruner = "median"
startup_trials = 1

[space."optim.lr"]
type = "categorical"
choices = [0.02, 1e-7]
"""


def test_tune_has_a_parent_run_per_study_and_a_child_per_trial_pruned_ones_marked(cli, mlflow_server, tmp_path,
                                                                                 monkeypatch):
    optuna = pytest.importorskip("optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    space = tmp_path / "space.toml"
    space.write_text(TUNE_SPACE, encoding="utf-8")
    out = tmp_path / "study"
    sets = [a for s in [*TINY_SETS, "train.epochs=3"] for a in ("--set", s)]

    def tune(trials: int):
        result = cli("tune", "subseq-gru", "--trials", str(trials), "--space", str(space), "--out", str(out),
                     "--study", f"s-{tmp_path.name}", *sets, "--logger", "mlflow", "--logger", "tensorboard")
        assert result.exit_code == 0, result.output
        return optuna.load_study(study_name=f"s-{tmp_path.name}", storage=f"sqlite:///{out / 'study.db'}")

    tune(4)
    parent_state = json.loads((out / "trackers.json").read_text())
    study = tune(5)  # the same command again: one more trial, in the same parent run
    assert json.loads((out / "trackers.json").read_text()) == parent_state
    client, parent = mlflow_run(out)
    assert parent.info.status == "FINISHED" and parent.data.params["tune.metric"] == "val_loss"
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_trial = {int(r.data.tags["zoo.trial"]): r for r in children}
    trials = {t.number: t for t in study.get_trials()}
    assert sorted(by_trial) == sorted(trials) == [0, 1, 2, 3, 4]
    states = {n: t.state.name for n, t in trials.items()}
    assert "PRUNED" in states.values() and "COMPLETE" in states.values(), states
    for number, trial in trials.items():
        run = by_trial[number]
        assert run.info.run_name == f"trial-{number}"
        want = {"COMPLETE": ("FINISHED", "completed"), "PRUNED": ("KILLED", "pruned")}[trial.state.name]
        assert (run.info.status, run.data.tags["zoo.status"]) == want, number
        assert float(run.data.params["optim.lr"]) == trial.params["optim.lr"]
    complete = sorted((n, t.value) for n, t in trials.items() if t.state.name == "COMPLETE")
    assert mlflow_history(client, parent.info.run_id, "val_loss") == complete
    pruned_tb = [s for s, _ in scalars(out).get("pruned_val_loss", [])]
    assert pruned_tb == sorted(n for n, s in states.items() if s == "PRUNED")
    assert [s for s, _ in scalars(out)["val_loss"]] == [n for n, _ in complete]
