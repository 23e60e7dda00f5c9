#!/usr/bin/env python3
"""Smallest per-position cosine between the logits of two .folio files of one model (a float32
reference and a stored variant: bf16, `--weights int8`, ...) over held-out prompts, each prompt's
ids followed by the first 64 ids of its continuation, from `folio run --logits`.

    python3 Tools/train/quant_cosine.py REF.folio VARIANT.folio [VARIANT.folio ...]
        --prompts val_prompts.json [--count 10] [--folio .build/release/folio]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np


def logits(folio, model, ids, scratch):
    out = os.path.join(scratch, "l.npy")
    subprocess.run([folio, "run", model, "--tokens", ",".join(map(str, ids)), "--max-tokens", "0", "--logits", out],
                   check=True, capture_output=True)
    return np.load(out).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--folio", default=".build/release/folio")
    args = ap.parse_args()
    prompts = json.load(open(args.prompts))["prompts"][:args.count]
    with tempfile.TemporaryDirectory() as scratch:
        refs = [logits(args.folio, args.reference, p["ids"] + p["continuation_ids"][:64], scratch) for p in prompts]
        for v in args.variants:
            worst = 1.0
            for p, a in zip(prompts, refs):
                b = logits(args.folio, v, p["ids"] + p["continuation_ids"][:64], scratch)
                c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
                worst = min(worst, float(c.min()))
            print(json.dumps(dict(reference=args.reference, variant=v, prompts=len(prompts), min_cosine=worst)))


if __name__ == "__main__":
    main()
