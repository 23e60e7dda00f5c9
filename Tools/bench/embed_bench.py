#!/usr/bin/env python3
"""Sentences per second at batch 32: Folio's `folio embed` against sentence-transformers
(torch on CPU, 2 threads) on the same texts and the same machine, in one run.

    python3 Tools/bench/embed_bench.py [--n 2048] [--folio .build/release/folio]

Texts: the 58 test sentences (Tests/Fixtures/minilm/sentences.json) repeated to N, newlines
replaced by spaces. Model: all-MiniLM-L6-v2 from ~/.cache/folio (Tools/fetch-minilm),
converted to .folio with float32 weights. Folio's figure excludes model loading (reported
separately by `folio embed --timing`); sentence-transformers' excludes its load too. Each
side runs three times; the best is kept.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2"))
    args = ap.parse_args()
    base = [s.replace("\n", " ").replace("\r", " ").replace("\0", " ") for s in json.load(open("Tests/Fixtures/minilm/sentences.json"))]
    base = [s for s in base if s.strip()]
    texts = (base * (args.n // len(base) + 1))[:args.n]
    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(args.model, device="cpu")
    st.encode(texts[:64], batch_size=32)
    st_best = min(timed(lambda: st.encode(texts, batch_size=32)) for _ in range(3))
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "minilm.folio")
        subprocess.run([args.folio, "convert", args.model, model], check=True, stdout=subprocess.DEVNULL)
        path = os.path.join(d, "texts.txt")
        open(path, "w").write("\n".join(texts))
        rates = []
        for _ in range(3):
            r = subprocess.run([args.folio, "embed", model, "--file", path, "--batch-size", "32", "--timing"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            rates.append(float(re.search(r"([0-9.]+) texts/s", r.stderr).group(1)))
        folio_rate = max(rates)
    st_rate = len(texts) / st_best
    print(f"{len(texts)} texts, batch 32, torch threads {torch.get_num_threads()}, nproc {os.cpu_count()}")
    print(f"sentence-transformers: {st_rate:.1f} texts/s")
    print(f"folio embed:           {folio_rate:.1f} texts/s  ({folio_rate / st_rate:.2f}x sentence-transformers)")


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
