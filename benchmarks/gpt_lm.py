"""gpt-lm (byte-level BPE GPT on tiny-shakespeare) beside shakespeare-char-gpt, in one run.

The reference system reports val loss 3.8 in nats per BPE token on an unnamed corpus
and vocabulary. Per-token losses only compare under one tokenizer, so every row
also reports bits per byte of the same validation text, which do not depend on it.

    ZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/gpt_lm.py [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import zoo
from _common import table, write

REFERENCE_LOSS = 3.8


def row(entry: str, out: Path, threads: int | None) -> dict:
    t0 = time.perf_counter()
    res = zoo.train(entry, {"train": {"progress": False, "threads": threads}}, out=out)
    wall = time.perf_counter() - t0
    val, tr = res.metrics["val"], res.metrics["train"]
    tok = zoo.load(out).tokenizers["text"]
    return {"entry": entry, "vocab": tok.vocab_size, "val_loss_per_token": val["loss"],
            "val_bits_per_byte": val["bits_per_byte"], "epochs": tr["epochs"], "steps": tr["steps"],
            "train_s": tr["train_time"], "wall_s": wall, "stopped": tr["stopped"],
            "loss_vs_reference_3.8": val["loss"] / REFERENCE_LOSS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--entries", nargs="+", default=["gpt-lm", "shakespeare-char-gpt"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for entry in args.entries:
            rows.append(row(entry, Path(tmp) / entry, args.threads))
            print(table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(table(rows, list(rows[0])))
    gpt = next(r for r in rows if r["entry"] == "gpt-lm")
    print(f"\ngpt-lm val loss {gpt['val_loss_per_token']:.3f} nats/token (vocab {gpt['vocab']}) vs the reference's 3.8 "
          f"(its vocabulary unknown): {'below' if gpt['val_loss_per_token'] < REFERENCE_LOSS else 'not below'}; "
          f"{gpt['val_bits_per_byte']:.3f} bits per byte")
    path = write("gpt_lm", {"rows": rows, "reference_loss": REFERENCE_LOSS})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
