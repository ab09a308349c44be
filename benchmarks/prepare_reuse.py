"""Preparation reused (issue 28): a first ``zoo train`` on an empty prepared-data cache against a second one.

Both runs are ``zoo train ENTRY`` (default ``imdb-rnn``) in processes of their own, on one fresh
cache folder (``ZOO_CACHE_DIR``). Each measures the seconds from the call of ``zoo.train`` to its
first training step, and is then cut short. On the first run those seconds read the reviews, fit the
word vocabulary, encode every split and train gensim's Word2Vec vectors, all kept in the cache; the
second reads them back. Of those seconds, ``data_ready_s`` is the data (dataset, tokenizers, splits:
``zoo.build.prepare.build``); the rest is torch's import (``zoo.train`` imports it), building the
model and, for imdb-rnn, its vectors (trained, or read from the cache, as the model is built).
``imports_s`` (``import zoo``) comes before and is not counted. Prints a table; writes
``results/prepare_reuse.json`` (with ``--limit``, ``results/prepare_reuse_limited.json``, so the
full-data rows stay).

    ZOO_DATA_DIR=/path/to/data python benchmarks/prepare_reuse.py          # 50,000 reviews: a quiet machine
    ZOO_DATA_DIR=/path/to/data python benchmarks/prepare_reuse.py --limit 200   # 200 reviews a split: seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, first_step, load_average, table, write  # noqa: E402


def measure(entry: str, limit: int | None, work: Path) -> list[dict]:
    """The first run (empty cache) and the second (cache filled), one row each."""
    env = {**os.environ, "ZOO_CACHE_DIR": str(work / "cache")}
    sets = {"train.progress": "false"}
    if limit is not None:
        sets["dataset.limit"] = str(limit)
    rows = []
    for i, label in enumerate(("first run, empty cache", "second run, cache filled")):
        load = load_average()
        found = first_step(entry, work / f"run-{i}", sets, env, exit_early=True)
        rows.append({"run": label, "entry": entry, "limit": limit, "load_before": load,
                     "first_step_s": round(found["first_step_s"], 2), "data_ready_s": round(found["data_ready_s"], 2),
                     "imports_s": round(found["imports_s"], 2), "process_wall_s": round(found["process_wall_s"], 2),
                     "peak_rss_mb": round(found["process_peak_rss_mb"])})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entry", default="imdb-rnn", help="a registered entry that uses the cache [imdb-rnn]")
    p.add_argument("--limit", type=int, help="only N examples of each split (dataset.limit): a quick check")
    p.add_argument("--work", type=Path, help="folder for the cache and the runs [default: a temporary one]")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON [benchmarks/results]")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="zoo-prepare-reuse-", dir=args.work) as work:
        rows = measure(args.entry, args.limit, Path(work))
    first, second = rows
    summary = {"first_step_s": [first["first_step_s"], second["first_step_s"]],
               "speedup": round(first["first_step_s"] / max(second["first_step_s"], 1e-9), 1),
               "data_ready_speedup": round(first["data_ready_s"] / max(second["data_ready_s"], 1e-3), 1)}
    print(table(rows, ["run", "first_step_s", "data_ready_s", "imports_s", "process_wall_s", "peak_rss_mb",
                       "load_before"]))
    print(f"second run reaches its first step {summary['speedup']}x sooner "
          f"(its data {summary['data_ready_speedup']}x sooner)")
    name = "prepare_reuse" if args.limit is None else "prepare_reuse_limited"
    print(f"wrote {write(name, {'rows': rows, 'summary': summary}, folder=args.results)}")


if __name__ == "__main__":
    main()
