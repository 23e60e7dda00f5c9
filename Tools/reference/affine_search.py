#!/usr/bin/env python3
"""How the affine quantizer's search was chosen (Formats/FOLIO.md section 6.6, informative).

Reference tooling only: Folio never imports or runs this script. It re-implements the
search of Sources/CFolioKernels/kernels.c (folio_affine_search) in numpy for several grids
of starting ranges, and prints the mean squared error of int4/g32 (top = 15) per value and
the passes over a group each costs, on three sets of groups of 32:

- 100,000 Gaussian groups and 100,000 Student-t (4 degrees of freedom) groups, seed 0;
- every fourth group of all-MiniLM-L6-v2's word embeddings, when Tools/fetch-minilm has
  fetched it (or pass --minilm PATH to its model.safetensors).

Each start (lo raised by a, hi lowered by b, in fractions of hi - lo) gets one round: (s, m)
rounded to float16, codes, their squared error, and the least-squares refit. The `keep`
starts with the smallest errors continue for `more` rounds from their refits. (Folio also
skips starts whose refit is unusable and stops a start early when its refit rounds to the
same float16 pair. On the Gaussian set cast to float32, `folio convert --quantize '*=int4'`
and back gave MSE 0.0048217, against 0.0048218 here.) "six" is the
search Folio used before: six fixed starts, each refined three rounds.

Usage: python3 Tools/reference/affine_search.py [--minilm PATH]
"""
import argparse
import os

import numpy as np


def f16(x):
    return x.astype(np.float16).astype(np.float32).astype(np.float64)


def one_round(g, s, m, top):
    s16, m16 = f16(s), f16(m)
    bad = ~(s16 > 0)
    s16 = np.where(bad, 1.0, s16)
    q = np.clip(np.round((g - m16) / s16), 0, top)
    x = s16 * q + m16
    err = np.where(bad, np.inf, ((g - x) ** 2).sum(1, keepdims=True))
    n = g.shape[1]
    sq, sqq = q.sum(1, keepdims=True), (q * q).sum(1, keepdims=True)
    sx, sqx = g.sum(1, keepdims=True), (q * g).sum(1, keepdims=True)
    det = n * sqq - sq * sq
    det = np.where(np.abs(det) < 1e-30, 1e-30, det)
    ns = (n * sqx - sq * sx) / det
    return err, ns, (sx - ns * sq) / n


def search(g, starts, keep, more, top=15):
    """Smallest squared error per group over the search (np.round is ties-to-even, as Folio)."""
    lo, hi = g.min(1, keepdims=True), g.max(1, keepdims=True)
    r = hi - lo
    errs, ss, ms = [], [], []
    for a, b in starts:
        e, s, m = one_round(g, (r - (a + b) * r) / top, lo + a * r, top)
        errs.append(e[:, 0]); ss.append(s[:, 0]); ms.append(m[:, 0])
    errs, ss, ms = np.array(errs), np.array(ss), np.array(ms)
    best = errs.min(0)
    rows = np.arange(g.shape[0])
    for k in np.argsort(errs, 0)[:keep]:
        s, m = ss[k, rows][:, None], ms[k, rows][:, None]
        for _ in range(more):
            ok = (s > 0) & np.isfinite(s) & np.isfinite(m)
            e, s, m = one_round(g, np.where(ok, s, 1.0), np.where(ok, m, 0.0), top)
            best = np.minimum(best, np.where(ok, e, np.inf)[:, 0])
    return best.mean() / g.shape[1]


def grid(step, limit):
    n = int(round(limit / step))
    return [(i * step, j * step) for i in range(n + 1) for j in range(n + 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", default=os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2/model.safetensors"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sets = {"gauss": rng.standard_normal((100_000, 32)), "t4": rng.standard_t(4, (100_000, 32))}
    if os.path.exists(args.minilm):
        from safetensors.numpy import load_file
        w = load_file(args.minilm)["embeddings.word_embeddings.weight"]
        sets["minilm"] = w.reshape(-1, 32).astype(np.float64)[::4]
    six = [(0, 0), (0.03, 0.03), (0.06, 0.06), (0.06, 0), (0, 0.06), (0.1, 0.1)]
    variants = [
        ("six, 3 rounds each", six, 6, 2),
        ("5x5 to 0.1, best 1 +3", grid(0.025, 0.1), 1, 3),
        ("5x5 to 0.1, best 3 +3 (Folio)", grid(0.025, 0.1), 3, 3),
        ("6x6 to 0.1, best 3 +3", grid(0.02, 0.1), 3, 3),
        ("11x11 to 0.1, best 3 +2", grid(0.01, 0.1), 3, 2),
        ("9x9 to 0.16, best 3 +2", grid(0.02, 0.16), 3, 2),
    ]
    base = None
    print(f"{'search':32s} {'passes':>6s} " + " ".join(f"{k:>20s}" for k in sets))
    for name, starts, keep, more in variants:
        mse = [search(g, starts, keep, more) for g in sets.values()]
        base = base or mse
        cells = " ".join(f"{v:11.5g} ({v / b - 1:+6.2%})" for v, b in zip(mse, base))
        print(f"{name:32s} {len(starts) + keep * more:6d} {cells}", flush=True)


if __name__ == "__main__":
    main()
