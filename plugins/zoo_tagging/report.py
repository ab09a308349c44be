"""What a trained tagger gets right and wrong: a per-class table and a confusion matrix.

    from zoo_tagging.report import report
    rep = report("runs/pos-transformer")       # the test split of its dataset
    text = rep.table(top=10)                   # the 10 most frequent labels, as a text table
    rep.plot_confusion("confusion.png")

The numbers are the task's own (``tp/L``, ``fp/L``, ``fn/L`` sums), so they agree
with ``zoo eval``; the confusion matrix adds which label was taken for which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import zoo

from .task import PAD, spans


@dataclass
class TaggingReport:
    labels: list[str]  # class order
    confusion: list[list[int]]  # [gold][predicted] over classes; a last row for gold labels never seen in training
    metrics: dict[str, float]  # as zoo eval reports them
    rows: list[dict[str, Any]]  # per label: support, predicted, precision, recall, f1; most frequent first
    span_types: list[dict[str, Any]] = field(default_factory=list)  # per chunk type, for BIO labels
    unknown: dict[str, int] = field(default_factory=dict)  # labels never seen in training -> tokens

    def table(self, top: int | None = 10) -> str:
        """The per-class table of the ``top`` most frequent labels (all with ``None``)."""
        lines = [f"{'label':<8} {'support':>8} {'precision':>9} {'recall':>7} {'f1':>7}"]
        for r in self.rows[:top]:
            lines.append(f"{r['label']:<8} {r['support']:>8,} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                         f"{r['f1']:>7.4f}")
        return "\n".join(lines)

    def plot_confusion(self, path: str | Path, top: int | None = None) -> Path:
        """A PNG of the confusion matrix, rows normalised (the diagonal is each label's recall).

        Labels are ordered by frequency; with ``top``, only the ``top`` most frequent
        (rows and columns), the rest of each row summed into ``other``.
        """
        import matplotlib
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure

        order = [self.labels.index(r["label"]) for r in self.rows if r["support"] or r["predicted"]]
        keep = order[:top] if top else order
        cm = torch.tensor(self.confusion, dtype=torch.float64)[: len(self.labels)]
        m = cm[keep][:, keep]
        names = [self.labels[k] for k in keep]
        if len(keep) < len(order):  # the rest of each row, summed
            m = torch.cat([m, (cm[keep].sum(1) - m.sum(1))[:, None]], dim=1)
            names_x = [*names, "other"]
        else:
            names_x = names
        frac = (m / m.sum(1, keepdim=True).clamp(min=1)).numpy()
        size = max(5.0, 0.22 * len(names_x) + 2)
        fig = Figure(figsize=(size + 1, size))  # the object API: no pyplot, no backend switch
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")  # never confused: blank
        im = ax.imshow(np.ma.masked_equal(frac, 0.0), cmap=cmap, norm=LogNorm(vmin=1e-4, vmax=1.0))
        ax.set_xticks(range(len(names_x)), names_x, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        acc = self.metrics.get("accuracy", float("nan"))
        ax.set_title(f"confusion (row-normalised), accuracy {acc:.2%}")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=110)
        return path


@torch.no_grad()
def report(artifact: str | Path | Any, split: str | None = None, *, data_dir: str | Path | None = None,
           device: str = "cpu", batch_size: int = 256) -> TaggingReport:
    """Run a tagging artifact (a path, a run folder or a ``zoo.load`` result) over ``split`` of its dataset."""
    lm = artifact if hasattr(artifact, "task") else zoo.load(artifact, device=device)
    task, model = lm.task, lm.model
    if not hasattr(task, "class_counts"):
        raise zoo.ZooError(f"{lm.path}: not a tagging model (task {lm.metadata.get('task')})")
    dataset = lm.resolved.cls("dataset")(lm.resolved.configs["dataset"], data_dir=zoo.data_dir(data_dir))
    split = split or ("test" if "test" in dataset.splits else "val")
    dataset.check_split(split)
    encoded = task.encode(dataset.load(split))
    k = len(task.labels)
    confusion = torch.zeros(k + 1, k, dtype=torch.long)  # the last row: gold labels never seen in training
    sums: dict[str, float] = {}
    type_counts: dict[str, list[int]] = {}
    dev = next(model.parameters()).device
    model.eval()
    for batch in task.batches(encoded, batch_size, shuffle=False, seed=0):
        batch = {key: v.to(dev) for key, v in batch.items()}
        for key, v in task.eval_batch(model, batch).items():
            sums[key] = sums.get(key, 0.0) + float(v)
        tags = batch["tags"]
        pred = task.logits(model, batch).argmax(-1)
        real = tags != PAD
        confusion += zoo.confusion_matrix(pred[real], tags[real], k).cpu()
        if task.span_f1:
            for p, t, n in zip(pred.tolist(), tags.tolist(), batch["lengths"].tolist()):
                gs = spans([task.labels[c] if c >= 0 else "O" for c in t[:n]])
                ps = spans([task.labels[c] for c in p[:n]])
                for kind, group in (("correct", gs & ps), ("found", ps), ("gold", gs)):
                    for typ, _, _ in group:
                        counts = type_counts.setdefault(typ, [0, 0, 0])
                        counts[("correct", "found", "gold").index(kind)] += 1
    span_types = []
    for typ, (c, f, g) in sorted(type_counts.items(), key=lambda kv: -kv[1][2]):
        p, r, f1 = zoo.precision_recall_f1(c, f - c, g - c)
        span_types.append({"type": typ, "gold": g, "found": f, "precision": p, "recall": r, "f1": f1})
    return TaggingReport(labels=list(task.labels), confusion=confusion.tolist(), metrics=task.summarize(sums),
                         rows=task.class_table(sums), span_types=span_types, unknown=dict(encoded["unknown"]))
