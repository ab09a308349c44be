"""What a run shows while it trains: a progress bar on a terminal, and the loss curve in ``loss.png``.

The plot is drawn with matplotlib's object API on its own Agg canvas: no pyplot, no
backend switch, nothing that changes a notebook's matplotlib state.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from zoo.sdk.atomic import atomic_path


def isatty() -> bool:
    return sys.stderr.isatty()


def progress_bar(total: int | None, desc: str, show: bool):
    """A tqdm bar on stderr; one that shows nothing when ``show`` is false."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=not show)


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    """Train (and val) loss per epoch, written atomically as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    val = [(r["epoch"], r["val_loss"]) for r in history if "val_loss" in r]
    if val:
        ax.plot(*zip(*val), marker="o", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if all(r["train_loss"] > 0 for r in history) else "linear")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
