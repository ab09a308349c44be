"""``zoo tune``: an Optuna study whose trials are ordinary zoo training runs.

Optuna is an optional extra, imported only here and only when a study runs.
The study lives in an Optuna RDB storage (SQLite by default, in the output
folder), so a second ``zoo tune`` with the same storage and study name picks up
where the first stopped, and several processes on one storage share the work.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zoo
from zoo import ConfigError, RunDirError, ZooError, atomic_path, atomic_write, first_line

from .space import Param, TuneSpec, check_space, flatten, load_spec, lookup, nest
from .tracking import end_study, report_trial, start_study, study_tracker, trial_tracking

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'zoo[tune]' (or pip install 'optuna>=3.0')"
HEARTBEAT_S = 60  # a RUNNING trial whose process stopped beating for 3x this long is marked FAIL by the next process
# fixed overrides that may differ between the processes of one study: they do not change what a trial learns
PER_MACHINE = {"train.device", "train.threads", "train.progress", "train.loggers", "train.log_artifact"}


def require_optuna() -> Any:
    """The optuna module, or a ZooError that says how to install it."""
    try:
        import optuna
    except ImportError as exc:
        raise ZooError(f"zoo tune needs Optuna, an optional extra: {INSTALL_HINT}") from exc
    return optuna


class TuneInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study; the trial that was running has been marked failed or pruned."""

    def __init__(self, trial: int | None, state: str | None):
        super().__init__(trial)
        self.trial, self.state = trial, state


@dataclass
class TrialRow:
    number: int
    state: str  # complete | pruned | fail | running | waiting
    value: float | None  # the metric; for a pruned trial, its last reported value
    epochs: int  # epochs that reported the metric
    seconds: float | None
    params: dict[str, Any]
    baseline: bool = False  # the entry's own configuration
    error: str = ""
    test: dict[str, float] = field(default_factory=dict)  # test metrics of a complete trial's best epoch


@dataclass
class TuneResult:
    study: str
    storage: str  # password hidden
    out: Path
    entry: str
    metric: str
    direction: str
    space: dict[str, Param]
    rows: list[TrialRow]
    ran: int  # trials this call finished or failed
    best: TrialRow | None
    files: dict[str, Path] = field(default_factory=dict)  # best, plot, csv
    seconds: float = 0.0  # wall time of this call

    def table(self) -> str:
        return trials_table(self.rows, self.space, self.metric, self.best)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out


# --- files ----------------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def trials_table(rows: list[TrialRow], space: dict[str, Param], metric: str, best: TrialRow | None) -> str:
    keys = list(space) + sorted({k for r in rows for k in r.params} - set(space))
    head = ["trial", "state", metric, "epochs", "time_s", *keys]
    body = []
    for r in rows:
        state = r.state + (" *best" if best is not None and r.number == best.number else "")
        state += " (baseline)" if r.baseline else ""
        body.append([str(r.number), state, _fmt(r.value), str(r.epochs),
                     "" if r.seconds is None else f"{r.seconds:.1f}", *(_fmt(r.params.get(k)) for k in keys)])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def best_toml(result: TuneResult, base: dict[str, Any]) -> str:
    """The best trial's parameters as a nested override file for ``zoo train ENTRY --config``."""
    best = result.best
    if best is None:
        raise ZooError(f"study '{result.study}' has no completed trial yet: no best parameters to write")
    short = result.entry.split(":", 1)[-1]
    header = [
        f"# zoo tune {short}: best of {len(result.rows)} trials in study '{result.study}' ({result.storage})",
        f"# trial {best.number}: {result.metric} = {best.value:.6g} ({result.direction})",
    ]
    fixed = flatten(base)
    if fixed:
        sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in fixed.items())
        header.append(f"# every trial also ran with: {sets}")
    header += [f"# use: zoo train {short} --config best.toml", ""]
    return "\n".join(header) + zoo.dumps_toml(nest(best.params))


def plot_history(result: TuneResult, path: Path) -> None:
    """Metric of every trial by trial number (pruned ones at their last value), and the best so far."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))  # the object API: no pyplot, no backend switch
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    done = [(r.number, r.value) for r in result.rows if r.state == "complete" and r.value is not None]
    pruned = [(r.number, r.value) for r in result.rows if r.state == "pruned" and r.value is not None]
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", color="0.6", label="pruned (last value)")
    if done:
        ax.scatter(*zip(*done), color="C0", label="complete")
        pick = max if result.direction == "maximize" else min
        xs, ys, best = [], [], None
        for n, v in done:
            best = v if best is None else pick(best, v)
            xs.append(n)
            ys.append(best)
        last = max(r.number for r in result.rows)
        ax.step([*xs, last], [*ys, ys[-1]], where="post", color="C3", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.study}: optimisation history")
    ax.grid(True, alpha=0.3)
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_csv(result: TuneResult, path: Path) -> None:
    keys = list(result.space)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "state", result.metric, "epochs", "seconds", "baseline", *keys, "error"])
    for r in result.rows:
        w.writerow([r.number, r.state, "" if r.value is None else r.value, r.epochs,
                    "" if r.seconds is None else round(r.seconds, 3), r.baseline, *(r.params.get(k, "") for k in keys),
                    r.error])
    atomic_write(path, buf.getvalue())


# --- the study ------------------------------------------------------------------------------------

def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: say it as given
        return url


def open_storage(optuna: Any, url: str) -> Any:
    """An Optuna RDB storage with heartbeats (so a killed process's trial ends up FAIL), or a one-line ZooError."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # several processes wait their turn instead of failing
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=3 * HEARTBEAT_S)
        except Exception as exc:  # sqlalchemy and driver errors come in many classes
            first = first_line(exc, limit=10_000)
            # two processes creating a new database at once: one loses the race to make the tables
            if attempt < 4 and ("already exists" in first or "database is locked" in first):
                time.sleep(0.5 + attempt)
                continue
            raise ZooError(f"--storage {_hide_password(url)}: cannot open it ({first})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _pruner(optuna: Any, spec: TuneSpec, max_epochs: int) -> Any:
    s = spec.settings
    if s.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs,
                                              reduction_factor=s.reduction_factor)
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=s.startup_trials, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(p.key, list(p.choices))
    if p.type == "int":
        return trial.suggest_int(p.key, p.low, p.high, step=p.step or 1, log=p.log)
    return trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)


def _row(t: Any) -> TrialRow:
    seconds = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialRow(t.number, t.state.name.lower(), t.value if t.values else None,
                    max(t.intermediate_values, default=0), seconds, dict(t.params),
                    bool(t.user_attrs.get("baseline")), str(t.user_attrs.get("error", "")),
                    dict(t.user_attrs.get("test", {})))


def _metric(spec: TuneSpec, resolved: Any) -> tuple[str, str]:
    task_metrics = resolved.cls("task").metrics
    metric = spec.settings.metric or resolved.data["train"].get("early_stopping") or f"val_{next(iter(task_metrics))}"
    base = metric.removeprefix("val_")
    if base not in task_metrics:
        valid = ", ".join(f"val_{m}" for m in task_metrics)
        raise ConfigError(f"{spec.where}: unknown metric '{metric}'; task {resolved.specs['task'].id} reports {valid}")
    direction = spec.settings.direction or ("maximize" if task_metrics[base] == "max" else "minimize")
    return metric, direction


def _check_study_matches(study: Any, want: dict[str, Any], name: str) -> None:
    """A loaded study must have been made for the same entry, metric, direction, space and fixed overrides."""
    have = study.user_attrs
    if "zoo_entry" not in have:  # a new study (or one made outside zoo): record what it is for
        for key, value in want.items():
            study.set_user_attr(key, value)
        return
    for key, what in (("zoo_entry", "entry"), ("zoo_metric", "metric"), ("zoo_direction", "direction"),
                      ("zoo_space", "search space")):
        if have.get(key) != want[key]:
            raise ConfigError(
                f"study '{name}' in this storage was made with another {what} ({json.dumps(have.get(key))}, "
                f"now {json.dumps(want[key])}); resume it with the same settings, or name a new one with --study")
    fixed, now = have.get("zoo_fixed", {}), want["zoo_fixed"]
    differ = sorted(k for k in set(fixed) | set(now) if fixed.get(k) != now.get(k))
    if differ:
        k = differ[0]
        was = f"--set {k}={json.dumps(fixed[k])}" if k in fixed else f"no --set {k}"
        raise ConfigError(f"study '{name}' ran its trials with {was}, this command has "
                          f"{f'--set {k}={json.dumps(now[k])}' if k in now else 'none'}: trials of one study must "
                          "share their fixed settings; repeat the original ones, or name a new study with --study")


def _foreign_trial_dirs(out: Path, numbers: set[int]) -> list[str]:
    found = []
    for d in out.glob("trial-*"):
        n = d.name.removeprefix("trial-")
        if d.is_dir() and (not n.isdigit() or int(n) not in numbers):
            found.append(d.name)
    return sorted(found)


@dataclass
class _StudyPlan:
    """What a ``tune`` call will run, checked before the storage is opened."""

    spec: TuneSpec
    base: dict[str, Any]  # the fixed overrides
    resolved: Any
    metric: str
    direction: str
    out_dir: Path
    storage: str
    name: str

    @property
    def entry(self) -> str:
        return self.resolved.entry

    @property
    def base_epochs(self) -> int:
        return self.resolved.data["train"]["epochs"]

    @property
    def trial_base(self) -> dict[str, Any]:
        return zoo.merge_config(self.base, {"train": {"early_stopping": self.metric}})

    @property
    def max_epochs(self) -> int:
        space = self.spec.space
        return int(space["train.epochs"].high) if "train.epochs" in space else self.base_epochs


def _plan(entry: str, space: str | Path | None, overrides: dict[str, Any] | None, pruner: str | None,
          out: str | Path | None, storage: str | None, study: str | None) -> _StudyPlan:
    base = dict(overrides or {})
    spec = load_spec(entry, space)
    if pruner is not None:
        spec.settings = zoo.build_config(type(spec.settings), {**spec.raw_settings, "pruner": pruner}, "tune")
    resolved = zoo.resolve_entry(entry, base)  # the fixed part must be valid on its own
    metric, direction = _metric(spec, resolved)
    user_es = lookup(base, "train.early_stopping")
    if user_es not in (None, metric):
        raise ConfigError(f"train.early_stopping={user_es} but the study optimises {metric}: each trial keeps its "
                          "best epoch by the study's metric; drop the --set or change the [tune] metric")
    check_space(resolved.entry, base, spec)
    short = resolved.entry.split(":", 1)[-1]
    out_dir = Path(out) if out is not None else Path("runs") / f"tune-{short}"
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"--out {out_dir} is a file, not a folder")
    _check_ours(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).touch()
    if storage is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        storage = "sqlite:///" + str((out_dir / "study.db").resolve())
    return _StudyPlan(spec, base, resolved, metric, direction, out_dir, storage, study or short)


MARKER = ".zoo-tune"  # in every folder zoo tune writes: its result files there are zoo's own to replace
RESULT_FILES = ("trials.csv", "best.toml", "history.png")


def _check_ours(out_dir: Path) -> None:
    """``--out`` may receive a study's results: new, zoo tune's own (its marker or its study.db), or holding
    none of the files a study writes. A user's own trials.csv, best.toml or history.png is never replaced."""
    if not out_dir.is_dir() or (out_dir / MARKER).exists() or (out_dir / "study.db").exists():
        return
    theirs = [name for name in RESULT_FILES if (out_dir / name).exists()]
    if theirs:
        raise RunDirError(f"--out {out_dir} holds {', '.join(theirs)} that zoo tune did not write; "
                          "choose another --out (zoo tune replaces only its own result files)")


@contextlib.contextmanager
def _quiet_optuna(optuna: Any) -> Iterator[None]:
    """Optuna's log at ERROR and its ExperimentalWarning silenced, for the time of one study only."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # we say what happens, one line per trial
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _open_study(optuna: Any, plan: _StudyPlan) -> tuple[Any, set[int]]:
    """The study (loaded, or made) and the numbers of the trials it already holds."""
    rdb = open_storage(optuna, plan.storage)
    spec, name = plan.spec, plan.name
    fixed = {k: v for k, v in flatten(plan.base).items() if k not in PER_MACHINE}
    want = {"zoo_entry": plan.entry, "zoo_metric": plan.metric, "zoo_direction": plan.direction,
            "zoo_space": {k: p.as_dict() for k, p in spec.space.items()}, "zoo_fixed": fixed}
    pruner_obj = _pruner(optuna, spec, plan.max_epochs)
    try:
        st = optuna.load_study(study_name=name, storage=rdb, pruner=pruner_obj)
    except KeyError:  # no such study yet
        st = None
    numbers = set() if st is None else {t.number for t in st.get_trials(deepcopy=False)}
    if st is not None:
        _check_study_matches(st, want, name)
    foreign = _foreign_trial_dirs(plan.out_dir, numbers)
    if foreign:
        raise RunDirError(f"--out {plan.out_dir} holds {', '.join(foreign[:3])} that study '{name}' did not make; "
                          "use another --out, or the --storage/--study those runs belong to")
    if st is None:
        try:  # load_if_exists: another process may have made it meanwhile
            st = optuna.create_study(storage=rdb, study_name=name, direction=plan.direction, load_if_exists=True,
                                     pruner=pruner_obj)
        except Exception as exc:
            raise ZooError(f"--storage {_hide_password(plan.storage)}: cannot create study '{name}' ({exc})") from None
        _check_study_matches(st, want, name)
        numbers = {t.number for t in st.get_trials(deepcopy=False)}
    # a resumed run (or a second process) must not replay the first run's random draws
    seed = spec.settings.seed
    st.sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + len(numbers))
    return st, numbers


def _enqueue_baseline(st: Any, plan: _StudyPlan) -> None:
    """The entry's own values as the first trial, when they lie inside the space."""
    space = plan.spec.space
    defaults = {k: lookup(plan.resolved.data, k) for k in space}
    if all(p.contains(defaults[k]) for k, p in space.items()):
        st.enqueue_trial(defaults, user_attrs={"baseline": True})
    else:
        outside = [f"{k}={defaults[k]!r}" for k, p in space.items() if not p.contains(defaults[k])]
        log.info("no baseline trial: the entry's %s lies outside the space", ", ".join(outside))


def _objective(optuna: Any, plan: _StudyPlan, data_dir: str | Path | None,
               current: dict[str, Any], tracker: Any = None) -> Callable[[Any], float]:
    metric = plan.metric

    def objective(trial: Any) -> float:
        current["number"] = trial.number
        params = {k: _suggest(trial, p) for k, p in plan.spec.space.items()}
        run_dir = plan.out_dir / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        epochs = params.get("train.epochs", plan.base_epochs)

        def on_epoch(record: dict[str, Any]) -> None:
            if metric not in record:  # train.eval_every skipped this epoch
                return
            value = float(record[metric])
            trial.report(value, record["epoch"])
            # after the last epoch there is nothing left to save: the trial completes and informs the sampler
            if record["epoch"] < epochs and trial.should_prune():
                raise optuna.TrialPruned(f"after epoch {record['epoch']}: {metric}={value:.4g}")

        try:
            result = zoo.train(plan.entry, zoo.merge_config(plan.trial_base, nest(params)), out=run_dir,
                               data_dir=data_dir, on_epoch=on_epoch,
                               tracking=trial_tracking(tracker, optuna, plan, trial.number) if tracker else None)
        except ConfigError as exc:  # this combination of values is invalid: the next trial may do better
            trial.set_user_attr("error", str(exc))
            raise
        value = result.metrics.get("val", {}).get(metric.removeprefix("val_"))
        if value is None:
            raise ZooError(f"trial {trial.number}: the run reported no {metric} (does the dataset have a val split?)")
        if "test" in result.metrics:
            trial.set_user_attr("test", result.metrics["test"])
        return float(value)

    return objective


def _finished(optuna: Any, st: Any) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(st.get_trials(deepcopy=False, states=states))


def _run_trials(optuna: Any, st: Any, plan: _StudyPlan, trials: int, timeout: float | None,
                data_dir: str | Path | None, on_trial: Callable[[TrialRow], None] | None, tracker: Any = None) -> int:
    """Optimise until the study holds ``trials`` complete or pruned trials; the number run here."""
    current: dict[str, Any] = {}
    ran = 0

    def after_trial(s: Any, frozen: Any) -> None:
        nonlocal ran
        current.pop("number", None)
        ran += 1
        report_trial(tracker, plan.metric, _row(frozen))
        if on_trial is not None:
            on_trial(_row(frozen))
        if _finished(optuna, s) >= trials:  # other processes share the study: stop at the target, whoever reached it
            s.stop()

    remaining = trials - _finished(optuna, st)
    if remaining > 0:
        try:
            st.optimize(_objective(optuna, plan, data_dir, current, tracker), n_trials=remaining, timeout=timeout,
                        catch=(ConfigError,), callbacks=[after_trial])
        except KeyboardInterrupt:
            number = current.get("number")
            raise TuneInterrupted(number, _settle(optuna, st, number)) from None
    return ran


def _write_results(st: Any, plan: _StudyPlan, ran: int) -> TuneResult:
    """The result table, trials.csv, best.toml and history.png."""
    out_dir = plan.out_dir
    rows = [_row(t) for t in st.get_trials(deepcopy=False)]
    best = None
    complete = [r for r in rows if r.state == "complete" and r.value is not None and math.isfinite(r.value)]
    if complete:
        best = (max if plan.direction == "maximize" else min)(complete, key=lambda r: r.value)
    result = TuneResult(plan.name, _hide_password(plan.storage), out_dir, plan.entry, plan.metric, plan.direction,
                        plan.spec.space, rows, ran, best)
    write_csv(result, out_dir / "trials.csv")
    result.files["csv"] = out_dir / "trials.csv"
    if best is not None:
        atomic_write(out_dir / "best.toml", best_toml(result, plan.base))
        result.files["best"] = out_dir / "best.toml"
    try:
        plot_history(result, out_dir / "history.png")
        result.files["plot"] = out_dir / "history.png"
    except Exception as exc:  # a plot must never cost a study
        log.warning("could not draw history.png: %s", exc)
    return result


def tune(entry: str, trials: int, *, timeout: float | None = None, storage: str | None = None,
         study: str | None = None, space: str | Path | None = None, overrides: dict[str, Any] | None = None,
         out: str | Path | None = None, data_dir: str | Path | None = None, pruner: str | None = None,
         on_trial: Callable[[TrialRow], None] | None = None) -> TuneResult:
    """Run (or continue) a study of ``entry`` until it holds ``trials`` complete or pruned trials.

    Every trial is ``zoo.train(entry, overrides + sampled params, out=OUT/trial-N)``;
    the validation ``metric`` is reported after every epoch and the pruner may stop
    the trial there. Failed trials do not count toward ``trials``. Ctrl-C marks the
    running trial failed and raises :class:`TuneInterrupted`.
    """
    optuna = require_optuna()
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout}")
    t_start = time.perf_counter()
    plan = _plan(entry, space, overrides, pruner, out, storage, study)
    tracker = study_tracker(plan)  # train.loggers: a parent run for the study, a child run per trial
    with _quiet_optuna(optuna):
        st, numbers = _open_study(optuna, plan)
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        if plan.spec.settings.baseline and not numbers:
            _enqueue_baseline(st, plan)
        try:
            start_study(tracker, plan, numbers)
            ran = _run_trials(optuna, st, plan, trials, timeout, data_dir, on_trial, tracker)
        except BaseException as exc:
            tracker.close(tracker.status_of(exc))
            raise
    result = _write_results(st, plan, ran)
    end_study(tracker, result)
    result.seconds = time.perf_counter() - t_start
    return result


def _settle(optuna: Any, st: Any, number: int | None) -> str | None:
    """After Ctrl-C: the interrupted trial's state, marking it FAIL if Optuna could not."""
    if number is None:
        return None
    try:
        t = next(t for t in st.get_trials(deepcopy=False) if t.number == number)
        if t.state == optuna.trial.TrialState.RUNNING:
            st.tell(number, state=optuna.trial.TrialState.FAIL)
            return "fail"
        return t.state.name.lower()
    except Exception as exc:  # the storage itself is gone; the heartbeat check fails the trial on the next run
        log.warning("could not settle trial %s after the interrupt: %s", number, exc)
        return None
