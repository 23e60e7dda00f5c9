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
    """Values, squared errors and refits (s, m) of one round for groups g [n, N]."""
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
    return x, err, ns, (sx - ns * sq) / n


def search_values(g, starts, keep, more, top=15):
    """Dequantized values of the search's best pair per group (np.round is ties-to-even, as
    Folio), and that pair's squared error per group."""
    lo, hi = g.min(1, keepdims=True), g.max(1, keepdims=True)
    r = hi - lo
    firsts = [one_round(g, (r - (a + b) * r) / top, lo + a * r, top) for a, b in starts]
    errs = np.array([f[1][:, 0] for f in firsts])
    ss = np.array([f[2][:, 0] for f in firsts])
    ms = np.array([f[3][:, 0] for f in firsts])
    rows = np.arange(g.shape[0])
    choice = errs.argmin(0)
    best = np.array([f[0] for f in firsts])[choice, rows]
    best_err = errs[choice, rows][:, None]
    for k in np.argsort(errs, 0)[:keep]:
        s, m = ss[k, rows][:, None], ms[k, rows][:, None]
        for _ in range(more):
            ok = (s > 0) & np.isfinite(s) & np.isfinite(m)
            x, e, s, m = one_round(g, np.where(ok, s, 1.0), np.where(ok, m, 0.0), top)
            e = np.where(ok, e, np.inf)
            best = np.where(e < best_err, x, best)
            best_err = np.minimum(e, best_err)
    return best, best_err[:, 0]


def search(g, starts, keep, more, top=15):
    """Mean squared error per value of the search over groups g."""
    return search_values(g, starts, keep, more, top)[1].mean() / g.shape[1]


def grid(step, limit):
    n = int(round(limit / step))
    return [(i * step, j * step) for i in range(n + 1) for j in range(n + 1)]


# Folio's search (folio_affine_search) and the one before it.
FOLIO = (grid(0.025, 0.1), 3, 3)
SIX = ([(0, 0), (0.03, 0.03), (0.06, 0.06), (0.06, 0), (0, 0.06), (0.1, 0.1)], 6, 2)


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
    variants = [
        ("six, 3 rounds each", *SIX),
        ("5x5 to 0.1, best 1 +3", grid(0.025, 0.1), 1, 3),
        ("5x5 to 0.1, best 3 +3 (Folio)", *FOLIO),
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
