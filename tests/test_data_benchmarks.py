"""benchmarks/prepare_reuse.py (issue 28) end to end in its quick mode: it writes its JSON, and what it
measures shows (a second run reads its data back)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def bench(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_prepare_reuse_on_a_few_reviews_times_both_runs_and_the_second_reads_its_data_back(data_dir_or_skip,
                                                                                          tmp_path):
    out = bench("prepare_reuse.py", "--limit", "64", "--results", str(tmp_path), "--work", str(tmp_path))
    data = json.loads((tmp_path / "prepare_reuse_limited.json").read_text())
    first, second = data["rows"]
    assert (first["run"], second["run"]) == ("first run, empty cache", "second run, cache filled")
    for row in data["rows"]:
        assert row["entry"] == "imdb-rnn" and row["limit"] == 64
        assert row["first_step_s"] >= row["data_ready_s"] >= 0 and row["peak_rss_mb"] > 0
    assert second["data_ready_s"] < first["data_ready_s"]  # the vocabulary and the splits come from the cache
    assert data["summary"]["first_step_s"] == [first["first_step_s"], second["first_step_s"]]
    assert "first run, empty cache" in out and not list(tmp_path.glob("zoo-prepare-reuse-*"))

