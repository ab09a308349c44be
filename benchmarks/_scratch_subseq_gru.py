"""Scratch: train GRUSeq2Seq on the subsequence-copy task and time it to 99.9% exact match."""
import argparse
import importlib.util
import math
import os
import time

import torch
import torch.nn.functional as F

# load gru.py by path so the scratch script does not depend on the zoo package being installed
_spec = importlib.util.spec_from_file_location(
    "_zoo_gru", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "zoo_seq2seq", "gru.py")
)
_gru = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gru)
GRUSeq2Seq, GRUSeq2SeqConfig = _gru.GRUSeq2Seq, _gru.GRUSeq2SeqConfig

PAD, UNK, BOS, EOS, D0 = 0, 1, 2, 3, 4  # digits '0'..'9' -> ids 4..13
VOCAB = 14
NX, TL = 8, 8  # payload digits, target length


def make_batch(n, g):
    """start ~ U{0..7}, then length ~ U{1..8-start}; returns src (n,10), tgt (n,8) as digit values."""
    x = torch.randint(0, 10, (n, NX), generator=g)
    start = torch.randint(0, NX, (n,), generator=g)
    length = 1 + (torch.rand(n, generator=g) * (NX - start)).long()
    pos = torch.arange(TL)
    idx = (start[:, None] + pos).clamp(max=NX - 1)
    tgt = torch.where(pos < length[:, None], x.gather(1, idx), torch.zeros_like(idx))
    src = torch.cat([start[:, None], length[:, None], x], dim=1)
    return src + D0, tgt + D0  # token ids


def to_dec(tgt):
    n = tgt.size(0)
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt], 1)  # (n, 9)
    tgt_out = torch.cat([tgt, torch.full((n, 1), EOS)], 1)  # (n, 9)
    return tgt_in, tgt_out


@torch.no_grad()
def exact_match(model, src, tgt, bs=2500):
    model.eval()
    hits = 0
    for i in range(0, src.size(0), bs):
        s = src[i : i + bs]
        lens = torch.full((s.size(0),), s.size(1), dtype=torch.long)
        pred = model.generate(s, lens, max_len=TL + 1, bos_id=BOS, eos_id=EOS)
        hits += (pred[:, :TL] == tgt[i : i + bs]).all(1).sum().item()
    model.train()
    return hits / src.size(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emb", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--init-range", type=float, default=0.08)
    ap.add_argument("--attn", default="none")
    ap.add_argument("--bidir", action="store_true")
    ap.add_argument("--tie", action="store_true")
    ap.add_argument("--tf", type=float, default=1.0)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--opt", default="adam")
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--sched", default="const", help="const | cosine | linear (decay to 0 at --steps)")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=10**9)
    ap.add_argument("--time", type=float, default=80.0, help="training time budget, seconds (eval excluded)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--stop", action="store_true", help="stop once exact match >= 0.999")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    print(vars(a), flush=True)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = GRUSeq2SeqConfig(a.emb, a.hidden, a.layers, a.dropout, a.init_range, a.bidir, a.attn, a.tie)
    model = GRUSeq2Seq(cfg, VOCAB, VOCAB, PAD)
    print(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M", flush=True)
    Opt = torch.optim.AdamW if a.opt == "adamw" else torch.optim.Adam
    opt = Opt(model.parameters(), lr=a.lr, weight_decay=a.wd)

    def lr_at(step):
        f = 1.0 if a.warmup == 0 else min(1.0, (step + 1) / a.warmup)
        if a.sched != "const" and a.steps < 10**9:
            p = min(1.0, step / a.steps)
            f *= 0.5 * (1 + math.cos(math.pi * p)) if a.sched == "cosine" else (1 - p)
        return a.lr * f

    g_train = torch.Generator().manual_seed(1000 + a.seed)
    g_eval = torch.Generator().manual_seed(999_999)
    ev_src, ev_tgt = make_batch(10_000, g_eval)
    lens = torch.full((a.bs,), 10, dtype=torch.long)

    train_t, cpu_t, step, hit_t, hit_step, em = 0.0, 0.0, 0, None, None, 0.0
    loss_acc, n_acc = 0.0, 0
    while step < a.steps and train_t < a.time:
        t0, c0 = time.perf_counter(), time.process_time()
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step)
        src, tgt = make_batch(a.bs, g_train)
        tgt_in, tgt_out = to_dec(tgt)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(src, lens, tgt_in, teacher_forcing=a.tf)  # (B, T, V)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tgt_out.reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        loss_acc += loss.item()
        n_acc += 1
        train_t += time.perf_counter() - t0
        cpu_t += time.process_time() - c0
        if step % a.eval_every == 0 or step >= a.steps or train_t >= a.time:
            e0 = time.perf_counter()
            em = exact_match(model, ev_src, ev_tgt)
            print(f"step {step:6d} t {train_t:6.1f}s cpu {cpu_t:6.1f}s loss {loss_acc / n_acc:.4f} em {em:.4f} (eval {time.perf_counter() - e0:.1f}s)", flush=True)
            loss_acc, n_acc = 0.0, 0
            if em >= 0.999 and hit_t is None:
                hit_t, hit_step = train_t, step
                if a.stop:
                    break
    print(f"load {os.getloadavg()}", flush=True)
    print(f"RESULT steps {step} train_time {train_t:.1f}s cpu_time {cpu_t:.1f}s final_em {em:.4f} time_to_99.9 "
          + (f"{hit_t:.1f}s@{hit_step}" if hit_t is not None else "NOT_REACHED"), flush=True)


if __name__ == "__main__":
    main()
