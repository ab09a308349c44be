"""benchmarks/prepare_reuse.py and benchmarks/tune_cache.py (issue 28) end to end in their quick modes: each
writes its JSON, and what it measures shows (a second run reads its data back; a study with the cache finds
the same values as one without)."""

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


def test_tune_cache_tiny_runs_both_studies_and_they_find_the_same_values(tmp_path):
    out = bench("tune_cache.py", "--tiny", "--trials", "2", "--results", str(tmp_path), "--work", str(tmp_path))
    data = json.loads((tmp_path / "tune_cache_limited.json").read_text())
    on, off = data["rows"]
    assert (on["cache"], off["cache"]) == ("on", "off")
    for row in data["rows"]:
        assert row["trials"] == 2 and len(row["trial_seconds"]) == 2 and row["wall_s"] > row["trials_s"] > 0
    assert data["settings"]["dataset.train_file"].endswith("reviews.csv")
    assert data["summary"]["same_values"] is True and on["values"] == off["values"]
    assert "with the cache" in out
