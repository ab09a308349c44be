"""Does `torch.compile` pay for itself in shakespeare-char-gpt's float32 run on this CPU? (issue 32)

    .venv/bin/python benchmarks/fp32_compile.py [--steps 40] [--threads 2] [--mode default]

The entry's model (4 layers, 4 heads, 128 wide, block 64, 65 characters) and its training step
(batch 12, cross-entropy, backward, gradient clipping, fused AdamW) in float32, on random token
batches: the same shapes and work as `zoo train shakespeare-char-gpt --set train.amp=off`, without
the data. Measured in one process: the compiled step's first call (compilation included), then eager and
compiled steps alternating on the same batches (medians of ``--steps`` each, after 5 warm-up steps),
so a slow spell of a shared machine slows both alike. From those: how many
steps compilation needs to pay back, and the training time of the entry's 1,250 steps each way.
Compilation starts from an empty Inductor cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``), as a user's
first run does; ``--cache DIR`` uses DIR instead, warm when an earlier run filled it (a later run of the
same shapes). ``--append`` adds the row to the JSON's rows instead of replacing them.
Results go to ``benchmarks/results/fp32_compile.json``. Inductor on a CPU needs a C++ compiler.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))

STEPS_OF_THE_ENTRY = 1250
BATCH, BLOCK, VOCAB = 12, 64, 65


def make(seed: int = 0):
    import torch
    from zoo_lm.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=128, dropout=0.0), vocab_size=VOCAB, block_size=BLOCK)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)
    return model, opt


def step_fn(model, opt):
    import torch
    import torch.nn.functional as F

    def step(x, y):
        logits = model(x)
        logits = logits[0] if isinstance(logits, tuple) else logits
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()
    return step


def timed(step, batches) -> list[float]:
    out = []
    for x, y in batches:
        t0 = time.perf_counter()
        step(x, y)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    ap.add_argument("--cache", type=Path, default=None, help="an Inductor cache folder to use (and keep)")
    ap.add_argument("--append", action="store_true", help="add the row to the JSON's rows")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "fp32_compile.json")
    args = ap.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="inductor-"))
    cache.mkdir(parents=True, exist_ok=True)
    warm = any(cache.iterdir())
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # read when torch's Inductor first starts: set before
    import torch

    from _common import load_average, machine, table
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randint(VOCAB, (BATCH, BLOCK), generator=gen), torch.randint(VOCAB, (BATCH, BLOCK), generator=gen))
               for _ in range(args.steps + 5)]
    load_before = load_average()
    model, opt = make()
    eager_step = step_fn(model, opt)
    model2, opt2 = make()
    compiled_step = step_fn(torch.compile(model2, mode=args.mode), opt2)
    first = timed(compiled_step, batches[:1])[0]  # compilation included
    eager, steady = [], []
    for batch in batches[1:]:  # alternating, so a slow spell of the machine slows both alike
        eager += timed(eager_step, [batch])
        steady += timed(compiled_step, [batch])
    eager, steady = eager[5:], steady[5:]
    e, c = statistics.median(eager), statistics.median(steady)
    saved = e - c
    row = {"mode": args.mode, "threads": args.threads, "inductor_cache": "warm" if warm else "empty",
           "eager_ms": round(e * 1e3, 2), "compiled_ms": round(c * 1e3, 2),
           "speedup": round(e / c, 3), "first_compiled_step_s": round(first, 2),
           "break_even_steps": round((first - e) / saved) if saved > 0 else None,
           "entry_eager_s": round(STEPS_OF_THE_ENTRY * e, 1),
           "entry_compiled_s": round(first + (STEPS_OF_THE_ENTRY - 1) * c, 1),
           "load_before": load_before, "load_after": load_average()}
    print(table([row], list(row)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(args.json.read_text())["rows"] if args.append and args.json.is_file() else []
    args.json.write_text(json.dumps({"machine": machine(), "torch": torch.__version__, "rows": [*rows, row]},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.cache is None:  # the empty cache this run filled: nothing reuses it
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
