"""`zoo list` and `zoo --help` wall time (target: median <= 0.5 s), beside `python -c pass`
and `python -c "import torch"` as yardsticks, all measured in this one run.

    .venv/bin/python benchmarks/zoo_list.py [--repeat 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import table, write

TARGET_S = 0.5


def timed(cmd: list[str], repeat: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "zoo list": [py, "-m", "zoo", "list"],
        "zoo --help": [py, "-m", "zoo", "--help"],
        "zoo plugins": [py, "-m", "zoo", "plugins"],
        "python -c 'import torch'": [py, "-c", "import torch"],
    }
    rows = []
    for name, cmd in cases.items():
        times = timed(cmd, args.repeat)
        rows.append({"command": name, "median_s": statistics.median(times), "min_s": min(times),
                     "max_s": max(times), "runs": len(times)})
    base = rows[0]["median_s"]
    torch_row = next(r for r in rows if "torch" in r["command"])
    for r in rows:
        r["x_python"] = r["median_s"] / base
        r["x_import_torch"] = r["median_s"] / torch_row["median_s"]
    zoo_list = next(r for r in rows if r["command"] == "zoo list")
    print(table(rows, ["command", "median_s", "min_s", "max_s", "x_python", "x_import_torch"]))
    verdict = "PASS" if zoo_list["median_s"] <= TARGET_S else "FAIL"
    print(f"\nzoo list median {zoo_list['median_s']:.3f} s (target <= {TARGET_S} s): {verdict}")
    path = write("zoo_list", {"rows": rows, "target_s": TARGET_S, "zoo_list_median_s": zoo_list["median_s"],
                              "pass": verdict == "PASS"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
