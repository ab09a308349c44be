"""Data at scale (issue 28): preparation speed, peak memory and a cached second run, against corpus size.

For each size (MB of text) and tokenizer (text-gpt's characters, gpt-lm's byte-level BPE), in a fresh
prepared-data cache:

1. ``zoo prepare`` the corpus (a process of its own): preparation MB/s of the whole command (start-up,
   imports and file hashing included) and of the preparation alone (fit and splits, from the manifests),
   its CPU seconds, and its peak RSS: of its largest process, and of all its processes together (BPE
   encodes a long corpus on worker processes, one per core);
2. a first ``zoo train`` (tiny model, a few steps) that finds the cache prepared: peak RSS of the process;
3. a second run with the same settings: seconds from the start of ``zoo.train`` to the first training
   step (torch's import, data ready, model construction), of which the data (``build``: dataset,
   tokenizers, splits from the cache), and its peak RSS.

The corpus is tiny-shakespeare repeated, each copy perturbed (its lines in another seeded order, a
few words upper-cased), so that BPE sees varied text: words, spaces and newlines as in the original.
(Before 2026-12-05 the perturbation joined the words without their spaces, one long word a line, which
BPE splits and merges quite differently from real text: rows measured then are marked ``"corpus":
"spaces lost"`` in the JSON.) Writes ``results/data_scale.json`` and ``results/data_scale.png``.

    python benchmarks/data_scale.py                 # 10, 100 and 1000 MB: run it on a quiet machine
    python benchmarks/data_scale.py --sizes 10      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, first_step, load_average, run_child, table, write  # noqa: E402

TOKENIZERS = {
    "char": ("text-gpt", {}),
    "bpe": ("gpt-lm", {"dataset.name": "text:text", "tokenizer.vocab_size": "1024"}),
}
TINY = {"model.n_layer": "1", "model.n_head": "2", "model.n_embd": "32", "task.block_size": "64",
        "task.eval_blocks": "16", "train.epochs": "1", "train.steps_per_epoch": "3", "train.batch_size": "8",
        "train.eval_batch_size": "16", "train.progress": "false", "train.threads": "2"}

CORPUS = "tiny-shakespeare, lines shuffled, 1% of words upper-cased, spaces kept"


def shakespeare() -> str:
    from zoo_text.datasets import TinyShakespeare

    return TinyShakespeare().text()


def make_corpus(path: Path, mb: int, seed: int = 0) -> int:
    """``mb`` MB of perturbed tiny-shakespeare copies, written in pieces; returns the bytes written."""
    lines = shakespeare().splitlines(keepends=True)
    rng, written, target = random.Random(seed), 0, mb * 1_000_000
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            order = lines[:]
            rng.shuffle(order)
            copy = " ".join(w.upper() if rng.random() < 0.01 else w for w in "".join(order).split(" "))
            piece = copy[: target - written]
            fh.write(piece)
            written += len(piece.encode("utf-8"))
    return path.stat().st_size


def measure(tok: str, mb: int, corpus: Path, work: Path) -> dict:
    entry, extra = TOKENIZERS[tok]
    env = {**os.environ, "ZOO_CACHE_DIR": str(work / f"cache-{tok}-{mb}")}
    sets = {"dataset.files": json.dumps([str(corpus)]), **extra, **TINY}
    load = load_average()
    prep = run_child([sys.executable, "-m", "zoo", "prepare", entry,
                      *(arg for k, v in sets.items() for arg in ("--set", f"{k}={v}"))], env)
    core = 0.0  # seconds the preparation itself took (fit + splits), from the entries' manifests
    for manifest in Path(env["ZOO_CACHE_DIR"], "prepared").glob("*/manifest.json"):
        core += json.loads(manifest.read_text())["prepare_seconds"]
    runs = [first_step(entry, work / f"run-{tok}-{mb}-{i}", sets, env) for i in range(2)]
    size_mb = corpus.stat().st_size / 1e6
    tree = prep["peak_tree_rss_mb"]
    return {"tokenizer": tok, "entry": entry, "size_mb": round(size_mb, 1), "corpus": CORPUS,
            "load_before": load, "prepare_s": round(prep["wall_s"], 2),
            "prepare_mb_s": round(size_mb / prep["wall_s"], 1), "prepare_cpu_s": round(prep["cpu_s"], 1),
            "prepare_peak_rss_mb": round(prep["peak_rss_mb"]),
            "prepare_peak_tree_rss_mb": round(tree) if tree else None, "prepare_core_s": round(core, 2),
            "prepare_core_mb_s": round(size_mb / core, 1),
            "first_run_peak_rss_mb": round(runs[0]["peak_rss_mb"]),
            "second_run_peak_rss_mb": round(runs[1]["peak_rss_mb"]),
            "second_run_first_step_s": round(runs[1]["first_step_s"], 2),
            "second_run_data_ready_s": round(runs[1]["data_ready_s"], 2)}


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax_t, ax_m = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for tok in TOKENIZERS:
        mine = sorted((r for r in rows if r["tokenizer"] == tok), key=lambda r: r["size_mb"])
        if not mine:
            continue
        sizes = [r["size_mb"] for r in mine]
        ax_t.plot(sizes, [r["prepare_s"] for r in mine], marker="o", label=f"{tok}: preparation")
        ax_t.plot(sizes, [r["second_run_first_step_s"] for r in mine], marker="s", ls="--",
                  label=f"{tok}: second run, to first step")
        ax_m.plot(sizes, [r["second_run_peak_rss_mb"] for r in mine], marker="o", label=f"{tok}: cached run")
        ax_m.plot(sizes, [r["first_run_peak_rss_mb"] for r in mine], marker="s", ls="--", label=f"{tok}: first run")
        ax_m.plot(sizes, [r["prepare_peak_rss_mb"] for r in mine], marker="^", ls=":", label=f"{tok}: preparing")
    for ax, ylabel in ((ax_t, "seconds"), (ax_m, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_xlabel("corpus (MB of text)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="MB of text")
    p.add_argument("--tokenizers", nargs="+", choices=list(TOKENIZERS), default=list(TOKENIZERS))
    p.add_argument("--work", type=Path, help="folder for corpora and caches [default: a temporary one]")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-data-scale-", dir=args.work) as work:
        for mb in args.sizes:
            corpus = Path(work) / f"corpus-{mb}mb.txt"
            make_corpus(corpus, mb)
            for tok in args.tokenizers:
                rows.append(measure(tok, mb, corpus, Path(work)))
                print(json.dumps(rows[-1]), flush=True)
            corpus.unlink()
    cols = ["tokenizer", "size_mb", "prepare_s", "prepare_mb_s", "prepare_core_mb_s", "prepare_peak_rss_mb",
            "prepare_peak_tree_rss_mb", "first_run_peak_rss_mb", "second_run_peak_rss_mb",
            "second_run_first_step_s", "second_run_data_ready_s"]
    print(table(rows, cols))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "data_scale.png")
    print(f"wrote {write('data_scale', {'rows': rows, 'sizes_mb': args.sizes})} and {RESULTS / 'data_scale.png'}")


if __name__ == "__main__":
    main()
