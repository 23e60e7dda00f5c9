#!/usr/bin/env python3
"""Whether any data-free 4-bit code can give all-MiniLM-L6-v2 word embeddings a cosine of at
least 0.999 on every test sentence (issue 5's int4/g32 bound).

Reference tooling only: Folio never imports or runs this script. A quantizer that does not
look at the model's inputs makes an error that the network sees as noise in no preferred
direction. The smallest such error a code of R bits per value can make on a Gaussian source
of variance v is D(R) = v * 2^(-2R) (Shannon's rate-distortion bound; Cover & Thomas,
Elements of Information Theory, 2nd ed., theorem 10.3.2). At R = 4 that is v / 256, about
25 % less squared error than Folio's int4/g32 search reaches. Neither scalar nor vector
quantization, nor any rotation of the rows (which keeps the total variance), does better
at 4 bits per value.

The script checks that the groups of 32 are Gaussian enough for the bound to apply (the
entropy power of the group-normalised values over their variance: 1 for a Gaussian, and the
Shannon lower bound is that ratio times v / 256), then replaces each used word-embedding row
by the output of the Gaussian test channel that meets the bound exactly, with each group's
own mean and variance (so the per-group side information is free), and prints the min and
mean cosine over the 58 test sentences for several seeds, beside Folio's search (also with
groups of 16 and 8, which cost 6 and 8 bits per value).

Usage: python3 Tools/reference/int4_bound.py [--model DIR] [--seeds 8]
(a few minutes on 2 cores; needs Tools/fetch-minilm first)
"""
import argparse
import os

import numpy as np

from affine_search import FOLIO, search_values
from int4_sensitivity import TestSet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2"))
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    t = TestSet(args.model)
    sentences, w0, used, cosines = t.sentences, t.w0, t.used, t.cosines
    x = w0[used].astype(np.float64)
    groups = x.reshape(len(used), -1, 32)
    mean, var = groups.mean(2, keepdims=True), groups.var(2, keepdims=True)

    z = ((w0.reshape(-1, 32) - w0.reshape(-1, 32).mean(1, keepdims=True)) / w0.reshape(-1, 32).std(1, keepdims=True)).ravel()
    counts, edges = np.histogram(z, bins=400, range=(-6, 6))
    p = counts[counts > 0] / counts.sum()
    entropy = -(p * np.log(p)).sum() + np.log(edges[1] - edges[0])
    print(f"all groups of 32, normalised: entropy power / variance {np.exp(2 * entropy) / (2 * np.pi * np.e):.4f} (Gaussian: 1)")

    folio = search_values(x.reshape(-1, 32), *FOLIO)[0].reshape(groups.shape)
    print(f"squared error / group variance: Folio's search {((folio - groups) ** 2).mean() / var.mean():.5f}, bound 2^-8 = {2 ** -8:.5f}")
    cos = cosines(folio)
    print(f"{'Folio search (int4/g32)':34s} min {cos.min():.5f} mean {cos.mean():.5f}", flush=True)
    # Smaller groups spend more bits on (scale, min): int4/g16 costs 6 bits per value, g8 8 bits.
    for g in (16, 8):
        cos = cosines(search_values(x.reshape(-1, g), *FOLIO)[0])
        print(f"{f'Folio search (int4/g{g})':34s} min {cos.min():.5f} mean {cos.mean():.5f}", flush=True)
    d = var * 2.0 ** -8
    a = 1 - d / np.where(var > 0, var, 1)
    mins = []
    for seed in range(args.seeds):
        noise = np.random.default_rng(seed).standard_normal(groups.shape)
        # Gaussian test channel: x = y + n with y ~ N(mean, v - d) and n ~ N(0, d) independent,
        # realised forwards as y = mean + a (x - mean) + sqrt(a d) noise.
        y = mean + a * (groups - mean) + noise * np.sqrt(a * d)
        cos = cosines(y)
        mins.append(cos.min())
        print(f"{'rate-distortion bound, seed ' + str(seed):34s} min {cos.min():.5f} mean {cos.mean():.5f}  worst {sentences[int(cos.argmin())][:28]!r}", flush=True)
    print(f"bound over {args.seeds} seeds: min cosine {min(mins):.5f} to {max(mins):.5f}; at least 0.999 in {sum(m >= 0.999 for m in mins)} of {args.seeds}")


if __name__ == "__main__":
    main()
