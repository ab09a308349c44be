"""A study in the experiment trackers of ``train.loggers`` (``zoo tune --logger NAME``).

One parent run per study, kept in ``OUT/trackers.json`` so a resumed study goes on in the same
parent run; each trial is a child run (a zoo training run like any other, MLflow's
``mlflow.parentRunId`` set), and a pruned trial ends with status ``pruned``. The parent run
records the study's settings as parameters and, at step N, trial N's metric (``pruned_METRIC``
for a pruned trial's last value), and the best value at the end.
"""

from __future__ import annotations

from typing import Any

import zoo


def study_tracker(plan: Any) -> Any:
    """The parent run's :class:`zoo.Tracker` (nothing started yet); an unknown logger or missing extra raises."""
    return zoo.Tracker(plan.resolved.configs["train"].loggers, zoo.Tracking(group=plan.name,
                                                                            tags={"zoo.study": plan.name}))


def start_study(tracker: Any, plan: Any, numbers: set[int]) -> None:
    """Start (or, after an earlier call of the same study, reopen) the parent run."""
    if not tracker:
        return
    settings = {"study": plan.name, "metric": plan.metric, "direction": plan.direction,
                "pruner": plan.spec.settings.pruner}
    config = {"tune": settings, "space": {k: p.as_dict() for k, p in plan.spec.space.items()}, **plan.base}
    tracker.start(plan.out_dir, f"study-{plan.name}", plan.entry, config, resume=True,
                  step=max(numbers, default=0))


def trial_tracking(tracker: Any, optuna: Any, plan: Any, number: int) -> Any:
    """How trial ``number`` meets the trackers: a child of the study's run, pruned when Optuna prunes it."""
    def status_of(exc: BaseException) -> str | None:
        return "pruned" if isinstance(exc, optuna.TrialPruned) else None

    return zoo.Tracking(group=plan.name, parent=dict(tracker.states),
                        tags={"zoo.study": plan.name, "zoo.trial": str(number)}, status_of=status_of)


def report_trial(tracker: Any, metric: str, row: Any) -> None:
    """Trial ``row`` in the parent run: its metric at step = its number."""
    if tracker and row.value is not None and row.state in ("complete", "pruned"):
        tracker.log(row.number, {(metric if row.state == "complete" else f"pruned_{metric}"): float(row.value)})


def end_study(tracker: Any, result: Any) -> None:
    if not tracker:
        return
    if result.best is not None:
        tracker.log(result.best.number, {f"best_{result.metric}": float(result.best.value)})
    tracker.close("completed")
