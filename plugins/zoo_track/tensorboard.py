"""TensorBoard: event files in the run folder's ``tensorboard/`` (``tensorboard --logdir runs``).

Scalars at each optimizer step, the resolved config in the HParams tab, the model card and
the run's end status as text. A resumed run writes on in the same folder and tells TensorBoard
to drop what the interrupted attempt wrote after its last checkpoint (``purge_step``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import zoo

log = logging.getLogger(__name__)

FOLDER = "tensorboard"


class TensorBoardLogger(zoo.Logger):
    requires = "tensorboard"
    install = "pip install 'zoo[tensorboard]' (or pip install tensorboard)"

    def start(self, run: zoo.RunInfo, params: dict[str, Any]) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = run.run_dir / FOLDER
        # a resumed run: steps after the checkpoint were written by the attempt that died; TensorBoard drops them
        purge = run.step + 1 if run.resume is not None else None
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge)
        if run.resume is None:
            self._hparams(params)
            self.writer.add_text("run", f"entry {run.entry}, run {run.name}" +
                                 (f", trial of {run.parent['name']}" if run.parent else ""))
        return {"log_dir": FOLDER, "name": run.name}

    def _hparams(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        for summary in hparams(params, {}):  # the HParams tab: this run's config, beside the other runs'
            self.writer.file_writer.add_summary(summary)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def log_artifact(self, path: Path) -> None:
        if path.suffix == ".md":  # the model card, shown in the Text tab; TensorBoard keeps no files
            self.writer.add_text("model_card", path.read_text(encoding="utf-8"))
        else:
            log.debug("tensorboard keeps no files: %s not logged", path)

    def finish(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()
