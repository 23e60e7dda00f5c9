#!/usr/bin/env python3
"""Whether sensitivity-aware rounding calibrated on a large multilingual corpus gives
all-MiniLM-L6-v2's int4/g32 word embeddings a cosine of at least 0.999 on every test
sentence (issue 5's bound), where int4_sensitivity.py's 50 calibration sentences gave 0.99881.

Reference tooling only: Folio never imports or runs this script. The calibration corpus is
the translated messages of the gettext catalogs of this Debian machine
(/usr/share/locale/*/LC_MESSAGES/*.mo; 174 languages here): for each language, up to 12
messages of 25-200 characters (placeholders removed), drawn with seed 0 and shuffled; none
is a test sentence. The rounding is int4_sensitivity.py's `h_aware`, with each row's own H
taken coherently: a row that occurs several times in a sentence has its Jacobians summed
before J^T (I - o o^T) J is formed, as its one error enters every occurrence. Rows the
corpus never shows use the mean H over all tokens. The script reports the min and mean
cosine over the 58 test sentences after the first 200, 400, ... calibration sentences.

Usage: python3 Tools/reference/int4_calibration.py [--model DIR] [--sentences 600] [--step 200]
(about 1.5 s per calibration sentence and 2 minutes per report on 2 cores; needs
Tools/fetch-minilm first)
"""
import argparse
import gettext
import glob
import os
import random
import re

import numpy as np
import torch

from int4_sensitivity import TestSet, h_aware, pooled, search


def corpus(test, per_language=12):
    """Messages of the machine's gettext catalogs, `per_language` per language, seeded."""
    by_language = {}
    for path in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for key, value in catalog.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                continue
            for text in (value, key):
                text = re.sub(r"%[-#0-9.]*[a-zA-Z]|\{[^}]*\}|[\n\t]+", " ", text).strip()
                if 25 <= len(text) <= 200 and text not in test:
                    by_language.setdefault(path.split("/")[4], []).append(text)
    random.seed(0)
    chosen = []
    for language in sorted(by_language):
        random.shuffle(by_language[language])
        chosen += by_language[language][:per_language]
    chosen = sorted(set(chosen))
    random.shuffle(chosen)
    return chosen, len(by_language)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/folio/all-MiniLM-L6-v2"))
    ap.add_argument("--sentences", type=int, default=600)
    ap.add_argument("--step", type=int, default=200)
    ap.add_argument("--ridge", type=float, default=0.5, help="H + ridge * trace(H) / dim * I")
    args = ap.parse_args()
    t = TestSet(args.model)
    sentences, model, w0, used, dim = t.sentences, t.model, t.w0, t.used, t.dim
    calibration, languages = corpus(set(sentences))
    print(f"corpus: {len(calibration)} messages in {languages} languages", flush=True)
    bert, tok = model[0].auto_model, model.tokenizer
    table = t.weight.detach()
    base = search(w0[used].reshape(-1, 32).astype(np.float64)).reshape(len(used), dim)

    def embed(z, mask):
        return pooled(bert, z, mask)

    def report(n, total, tokens, own, counts):
        one = total / tokens
        rows = np.empty_like(base)
        for i, r in enumerate(used):
            h = own[r] / counts[r] if r in own else one
            rows[i] = h_aware(w0[r].astype(np.float64), base[i], h + args.ridge * np.trace(h) / dim * np.eye(dim))
        cos = t.cosines(rows)
        worst = int(cos.argmin())
        print(f"{n:5d} calibration sentences ({len(own)}/{len(used)} test rows seen): min {cos.min():.5f} mean {cos.mean():.5f}  worst {sentences[worst][:28]!r}", flush=True)

    # H is kept only for the rows the test sentences use: the others do not change the result.
    wanted = set(used)
    total, tokens, own, counts = np.zeros((dim, dim)), 0, {}, {}
    for k, s in enumerate(calibration[:args.sentences]):
        enc = tok([s], return_tensors="pt", truncation=True, max_length=model.max_seq_length)
        z, mask = table[enc["input_ids"]].clone(), enc["attention_mask"]
        with torch.no_grad():
            o = embed(z, mask).numpy().astype(np.float64)
        jac = torch.autograd.functional.jacobian(lambda v: embed(v, mask), z, vectorize=True)[:, 0].permute(1, 0, 2).numpy().astype(np.float64)
        p = np.eye(dim) - np.outer(o, o)
        summed = {}
        for t, r in enumerate(enc["input_ids"][0].tolist()):
            total += jac[t].T @ p @ jac[t]
            tokens += 1
            summed[r] = summed.get(r, 0) + jac[t]
        for r, j in summed.items():
            if r in wanted:
                own[r] = own.get(r, 0) + j.T @ p @ j
                counts[r] = counts.get(r, 0) + 1
        if (k + 1) % args.step == 0 or k + 1 == args.sentences:
            report(k + 1, total, tokens, own, counts)


if __name__ == "__main__":
    main()
