"""MLflow: one MLflow run per zoo run, on the tracking server or store that ``MLFLOW_TRACKING_URI``
names (MLflow's own default without it), in the experiment named after the entry (or study).

Through ``MlflowClient`` only: no active-run stack or other process-wide state of MLflow's fluent
API. The state kept in ``trackers.json`` holds the run id and tracking URI, so ``zoo train --resume``
reopens the same run on the same server. Step metrics are sent in batches (every few seconds, at
each epoch and at the end), not one request per step.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import zoo

log = logging.getLogger(__name__)

STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "pruned": "KILLED"}
MAX_PARAM = 6000  # characters MLflow keeps of a parameter value
FLUSH_S = 5.0  # step metrics wait at most this long before they are sent
BATCH = 1000  # MLflow's limit of metrics per log_batch request
PROBE_S = 10.0  # seconds a tracking server has to answer before a run starts


def _check_server(uri: str) -> None:
    """A tracking server that does not answer is one quick error, not minutes of MLflow's retries."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_S).close()
    except urllib.error.HTTPError:  # it answered (a server without /health, or one that wants a login)
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise zoo.ZooError(f"logger mlflow: no MLflow tracking server answers at {uri} ({reason}); start it, or point "
                           "MLFLOW_TRACKING_URI at one") from None


class MLflowLogger(zoo.Logger):
    requires = "mlflow"
    install = "pip install 'zoo[mlflow]' (or pip install mlflow)"

    def start(self, run: zoo.RunInfo, params: dict[str, Any]) -> dict[str, Any]:
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = (run.resume or {}).get("tracking_uri") or (run.parent or {}).get("tracking_uri")
        self.client = MlflowClient(uri or mlflow.get_tracking_uri())
        self.uri = uri or self.client.tracking_uri
        _check_server(self.uri)
        self.pending: list[Any] = []
        self.sent = time.monotonic()
        resumed = self._reopen(run, params) if run.resume else None
        if resumed is None:
            experiment = (run.parent or {}).get("experiment_id") or self._experiment(run.group)
            tags = {"zoo.entry": run.entry, "zoo.run_dir": str(run.run_dir.resolve()), **run.tags}
            if run.parent:
                tags["mlflow.parentRunId"] = run.parent["run_id"]
            self.run_id = self.client.create_run(experiment, run_name=run.name, tags=tags).info.run_id
            self.experiment = experiment
            self._params(params)
        return {"run_id": self.run_id, "tracking_uri": self.uri, "experiment_id": self.experiment}

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another process made it meanwhile
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _reopen(self, run: zoo.RunInfo, params: dict[str, Any]) -> str | None:
        """Continue the run of ``run.resume``; None (a new run follows) when the server no longer has it."""
        run_id = run.resume["run_id"]
        try:
            had = self.client.get_run(run_id)
        except Exception as exc:  # noqa: BLE001 - MlflowException, or the store moved
            log.warning("mlflow run %s is not at %s (%s): the resumed run reports to a new MLflow run",
                        run_id, self.uri, zoo.first_line(exc))
            return None
        self.run_id, self.experiment = run_id, had.info.experiment_id
        self.client.update_run(run_id, status="RUNNING")
        old = had.data.params
        changed = sorted(k for k, v in params.items() if k in old and old[k] != str(v)[:MAX_PARAM])
        if changed:
            log.warning("mlflow keeps a parameter's first value: %s changed on resume (see the run's config.toml)",
                        ", ".join(changed))
        self._params({k: v for k, v in params.items() if k not in old})
        return run_id

    def _params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per request
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending += [Metric(k, v, now, step) for k, v in metrics.items()]
        epoch = any(not k.startswith("train/") for k in metrics)  # an epoch's or the test metrics: send now
        if epoch or len(self.pending) >= BATCH or time.monotonic() - self.sent >= FLUSH_S:
            self._flush()

    def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
            self.client.log_batch(self.run_id, metrics=batch)
        self.sent = time.monotonic()

    def log_artifact(self, path: Path) -> None:
        self._flush()
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str) -> None:
        try:
            self._flush()
        finally:
            self.client.set_tag(self.run_id, "zoo.status", status)
            self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
