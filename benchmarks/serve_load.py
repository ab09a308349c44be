"""Load test of `zoo serve` on 127.0.0.1: requests/s, p50/p99 latency and the count of each status.

Starts `zoo serve` in a process of its own (loopback only) with a classifier and a language
model (given, or tiny ones trained here in a few seconds), then sends each scenario's requests
from concurrent asyncio + httpx clients:

- health: GET /health, no model: what the server and this client cost alone (the yardstick);
- predict: one review per request to the classifier (the figure for the README);
- predict, mixed bad input: every 5th request malformed JSON, an empty list or an over-long input (4xx);
- predict, --max-pending 8: 32 clients against a server that admits 8 at once (503 beyond, no other 5xx);
- generate: 16 streamed tokens from the language model (server-sent events, read to the end).

Then the rows that measure the server against its own limit (issue 29), for the classifier and a
tagger (a tiny conll-tagger on plugins/zoo_tagging/example.conll unless ``--tagger RUN``):

- offline: ``zoo.load(...).predict`` on the same inputs in this process at the best batch size
  (inputs/s), and the time of one batch of ``--concurrency`` inputs (the p99 yardstick);
- served, batching on / off (``--max-batch 1``) / ``--workers 2``: one input a request from
  ``--concurrency`` clients; ``vs_offline`` is served / offline throughput (target >= 0.8) and
  ``p99_vs_batch`` is p99 / the offline batch time (target <= 3);
- live: GET /health/live (target >= 1,000 req/s, p99 <= 10 ms);
- overload: ``--overload`` (200) clients against the default ``--max-pending``: 503s, no other 5xx,
  p99 of the accepted requests.

Latencies of every row go to a CDF plot beside the JSON (``serve_load.png``).

    .venv/bin/python benchmarks/serve_load.py [--requests 1000] [--concurrency 32] [--repeat 3]
        [--model RUN --lm RUN] [--tagger RUN] [--skip-limits]

The page's screenshot for the README comes from the browser test:
    ZOO_SERVE_SCREENSHOT=benchmarks/results/serve_page.png .venv/bin/python -m pytest tests/test_serve_browser.py
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import table, write

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "examples" / "text_classification" / "reviews.csv"


def tiny_models(folder: Path) -> tuple[Path, Path]:
    """A tiny text-rnn on the example reviews and a tiny character GPT on the CHANGELOG."""
    import zoo

    rnn = {"dataset": {"train_file": str(REVIEWS), "val_fraction": 0.25}, "model": {"hidden": 8, "emb_dim": 8},
           "tokenizer": {"text": {"min_freq": 1}}, "train": {"epochs": 1, "batch_size": 4, "progress": False}}
    gpt = {"dataset": {"files": [str(ROOT / "CHANGELOG.md")]}, "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
           "task": {"block_size": 16, "eval_blocks": 16},
           "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "progress": False}}
    zoo.train("text-rnn", rnn, out=folder / "reviews")
    zoo.train("text-gpt", gpt, out=folder / "lm")
    return folder / "reviews", folder / "lm"


def start(models: list[str], threads: int, *flags: str) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "zoo", "serve", *models, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--threads", str(threads), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"zoo serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("zoo serve did not come up within 60 s")


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


def requests_for(scenario: str, n: int, texts: list[str]) -> list[tuple[str, bytes]]:
    """(path, body) of every request of a scenario."""
    import json

    out = []
    for i in range(n):
        text = texts[i % len(texts)]
        if scenario in ("health", "live"):
            out.append((scenario, b""))
        elif scenario == "tag":
            out.append(("tag", json.dumps({"inputs": [text[:200]]}).encode()))
        elif scenario == "generate":
            out.append(("generate", json.dumps({"prompt": text[:20], "max_new_tokens": 16, "seed": i}).encode()))
        elif scenario == "mixed" and i % 5 == 4:
            bad = [b"{not json", b'{"inputs": []}', json.dumps({"inputs": ["x" * 20_000]}).encode()]
            out.append(("predict", bad[(i // 5) % 3]))
        else:
            out.append(("predict", json.dumps({"inputs": [text]}).encode()))
    return out


async def one(client: Any, url: str, kind: str, body: bytes) -> tuple[int, float]:
    model = {"generate": "lm", "tag": "tagger"}.get(kind, "reviews")
    kind = "predict" if kind == "tag" else kind
    t0 = time.perf_counter()
    headers = {"content-type": "application/json"}
    if kind in ("health", "live"):
        status = (await client.get(f"{url}/health" + ("/live" if kind == "live" else ""))).status_code
    elif kind == "generate":
        async with client.stream("POST", f"{url}/api/models/{model}/{kind}", content=body, headers=headers) as r:
            async for _ in r.aiter_bytes():
                pass
            status = r.status_code
    else:
        status = (await client.post(f"{url}/api/models/{model}/{kind}", content=body, headers=headers)).status_code
    return status, time.perf_counter() - t0


async def drive(url: str, reqs: list[tuple[str, bytes]], concurrency: int) -> tuple[list[tuple[int, float]], float]:
    """Send ``reqs`` from ``concurrency`` clients, each taking the next request when its last is answered."""
    import httpx

    results: list[tuple[int, float]] = []
    queue = list(reversed(reqs))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def worker() -> None:
            while queue:
                kind, body = queue.pop()
                try:
                    results.append(await one(client, url, kind, body))
                except httpx.HTTPError:
                    results.append((-1, float("nan")))  # a transport error: no answer at all

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results, time.perf_counter() - t0


LATENCIES: dict[str, list[float]] = {}  # scenario -> sorted latencies (s) of its answered requests, for the plot


def summarize(name: str, results: list[tuple[int, float]], seconds: float, concurrency: int) -> dict[str, Any]:
    ok = sorted(lat for status, lat in results if 200 <= status < 300)
    LATENCIES[name] = ok
    statuses = [s for s, _ in results]

    def pct(q: float) -> float | None:
        return round(1000 * ok[min(len(ok) - 1, int(q * len(ok)))], 2) if ok else None

    return {"scenario": name, "requests": len(results), "clients": concurrency, "seconds": round(seconds, 3),
            "req_per_s": round(len(results) / seconds, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": round(1000 * statistics.fmean(ok), 2) if ok else None,
            "2xx": sum(200 <= s < 300 for s in statuses), "4xx": sum(400 <= s < 500 for s in statuses),
            "503": statuses.count(503), "other_5xx": sum(500 <= s < 600 and s != 503 for s in statuses),
            "no_answer": statuses.count(-1)}


def run_scenarios(url: str, names: list[str], args: argparse.Namespace, texts: list[str],
                  label: str = "", concurrency: int | None = None) -> list[dict[str, Any]]:
    """Each scenario ``--repeat`` times; its row is the run of median requests/s (the machine is shared)."""
    rows = []
    clients = concurrency or args.concurrency
    for name in names:
        n = args.generate_requests if name == "generate" else args.requests
        asyncio.run(drive(url, requests_for(name, 20, texts), min(4, clients)))  # warm up
        runs = []
        for _ in range(args.repeat):
            results, seconds = asyncio.run(drive(url, requests_for(name, max(n, clients), texts), clients))
            runs.append(summarize(name + label, results, seconds, clients))
        runs.sort(key=lambda r: r["req_per_s"])
        rows.append({**runs[len(runs) // 2], "req_per_s_runs": [r["req_per_s"] for r in runs]})
        print(f"{rows[-1]['scenario']}: {rows[-1]['req_per_s']} req/s, p50 {rows[-1]['p50_ms']} ms", flush=True)
    return rows


def tiny_tagger(folder: Path) -> Path:
    """A tiny conll-tagger on the example CoNLL file shipped with the tagging plugin."""
    import zoo

    cfg = {"dataset": {"train_file": str(ROOT / "plugins/zoo_tagging/example.conll"), "val_fraction": 0.25,
                       "label_column": 1},
           "model": {"n_layer": 1, "n_head": 2, "d_model": 32, "char_dim": 8, "char_channels": 16, "rel_pos": 4},
           "train": {"epochs": 1, "batch_size": 4, "progress": False}}
    zoo.train("conll-tagger", cfg, out=folder / "tagger")
    return folder / "tagger"


def offline(path: Path, inputs: list[str], threads: int, concurrency: int) -> dict[str, Any]:
    """In-process throughput at the best batch size, and the time of one batch of ``concurrency`` inputs."""
    import torch

    import zoo

    torch.set_num_threads(threads)
    model = zoo.load(path, device="cpu")
    model.predict(inputs[:8])  # warm up
    best = (0.0, 0)
    for batch in (1, 8, 32, 64, 128, 256):
        t0 = time.perf_counter()
        model.predict(inputs, batch_size=batch)
        best = max(best, (len(inputs) / (time.perf_counter() - t0), batch))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        model.predict(inputs[:concurrency], batch_size=concurrency)
        times.append(time.perf_counter() - t0)
    return {"inputs_per_s": round(best[0], 1), "best_batch": best[1],
            "batch_ms": round(1000 * statistics.median(times), 2)}


def limit_rows(served: list[str], scenario: str, args: argparse.Namespace, texts: list[str],
               base: dict[str, Any]) -> list[dict[str, Any]]:
    """The served rows of one model (batching on, off, two workers) beside its offline row."""
    rows = [{"scenario": f"{scenario}: offline, batch {base['best_batch']}", "req_per_s": base["inputs_per_s"],
             "offline_batch_ms": base["batch_ms"]}]
    for label, flags in ((" batching on", []), (" batching off", ["--max-batch", "1"]),
                         (" --workers 2", ["--workers", "2"])):
        proc, url = start(served, args.threads, *flags)
        try:
            row = run_scenarios(url, [scenario], args, texts, label=label)[0]
        finally:
            stop(proc)
        row["vs_offline"] = round(row["req_per_s"] / base["inputs_per_s"], 3)
        row["p99_vs_batch"] = round(row["p99_ms"] / base["batch_ms"], 2) if row["p99_ms"] else None
        rows.append(row)
    return rows


def limits_suite(paths: dict[str, Path], args: argparse.Namespace, texts: list[str]) -> list[dict[str, Any]]:
    """Issue 29's rows: each model against its offline limit, /health/live, overload."""
    served = [f"reviews={paths['reviews']}", f"lm={paths['lm']}", f"tagger={paths['tagger']}"]
    inputs = [texts[i % len(texts)] for i in range(args.requests)]
    rows = []
    for name, scenario, batch_inputs in (("reviews", "predict", inputs), ("tagger", "tag", [t[:200] for t in inputs])):
        rows += limit_rows(served, scenario, args, texts,
                           offline(paths[name], batch_inputs, args.threads, args.concurrency))
    proc, url = start(served, args.threads)
    try:
        rows += run_scenarios(url, ["live"], args, texts)
        rows += run_scenarios(url, ["predict"], args, texts, label=f" overload ({args.overload} clients)",
                              concurrency=args.overload)
    finally:
        stop(proc)
    return rows


def plot(path: Path) -> None:
    """A latency CDF of every row (matplotlib's object API: no global backend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5))
    ax = fig.add_subplot()
    for name, lats in LATENCIES.items():
        if lats:
            ax.plot([1000 * x for x in lats], [(i + 1) / len(lats) for i in range(len(lats))], label=name)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of answered requests")
    ax.set_title("zoo serve on 127.0.0.1: latency of the answered requests")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="requests per predict scenario")
    ap.add_argument("--generate-requests", type=int, default=200, help="requests of the generate scenario")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--overload", type=int, default=200, help="clients of the overload row")
    ap.add_argument("--model", help="a classifier's file or run folder [default: a tiny text-rnn trained here]")
    ap.add_argument("--lm", help="a language model's file or run folder [default: a tiny char GPT trained here]")
    ap.add_argument("--tagger", help="a tagger's file or run folder [default: a tiny conll-tagger trained here]")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server (of each worker)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each scenario; the median one is reported")
    ap.add_argument("--skip-limits", action="store_true", help="only the first scenarios, not issue 29's rows")
    ap.add_argument("--name", default="serve_load", help="results file stem under benchmarks/results/ "
                                                          "(a smoke run: another name, not committed)")
    args = ap.parse_args()
    with open(REVIEWS, newline="", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model, lm = (Path(args.model), Path(args.lm)) if args.model and args.lm else tiny_models(Path(tmp))
        served = [f"reviews={model}", f"lm={lm}"]
        proc, url = start(served, args.threads)
        try:
            rows = run_scenarios(url, ["health", "predict", "mixed", "generate"], args, texts)
        finally:
            log = stop(proc)
        proc, url = start(served, args.threads, "--max-pending", "8")
        try:
            rows += run_scenarios(url, ["predict"], args, texts, label=" (--max-pending 8)")
        finally:
            log += stop(proc)
        if not args.skip_limits:
            tagger = Path(args.tagger) if args.tagger else tiny_tagger(Path(tmp))
            rows += limits_suite({"reviews": model, "lm": lm, "tagger": tagger}, args, texts)
    load_after = os.getloadavg()
    columns = ["scenario", "requests", "clients", "req_per_s", "p50_ms", "p99_ms", "2xx", "4xx", "503", "other_5xx",
               "no_answer", "vs_offline", "p99_vs_batch"]
    print()
    print(table(rows, columns))
    print(f"\nload average (1/5/15 min) before {load_before}, after {load_after}")
    tracebacks = log.count("Traceback")
    path = write(args.name, {"rows": rows, "load_before": load_before, "load_after": load_after,
                                "server_threads": args.threads, "server_tracebacks": tracebacks,
                                "models": {"reviews": str(args.model or "tiny text-rnn"),
                                           "lm": str(args.lm or "tiny char GPT"),
                                           "tagger": str(args.tagger or "tiny conll-tagger")}})
    plot(Path(path).with_suffix(".png"))
    print(f"wrote {path} and its latency plot; server tracebacks: {tracebacks}")


if __name__ == "__main__":
    main()
