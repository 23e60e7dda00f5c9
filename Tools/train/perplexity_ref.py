#!/usr/bin/env python3
"""PyTorch's perplexity of an exported model folder (model.py, float32) over a token-id file,
with the sliding-window recipe `folio perplexity` uses (transformers' perplexity guide: windows
of --window tokens every --stride tokens, each token scored once, the first never).

    python3 Tools/train/perplexity_ref.py --folder DIR --model ngram|twin --ids FILE [--window 256 --stride 128]

Prints one JSON line: tokens scored, summed and mean NLL (nats), perplexity.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", required=True)
    ap.add_argument("--model", choices=["ngram", "twin"], required=True)
    ap.add_argument("--ids", required=True, help="token ids separated by spaces or commas")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = M.load_folder(args.model, args.folder)
    ids = [int(x) for x in open(args.ids).read().replace(",", " ").split()]
    total, scored, prev = 0.0, 0, 0
    for begin in range(0, len(ids), args.stride):
        end = min(begin + args.window, len(ids))
        with torch.no_grad():
            logp = torch.log_softmax(m(torch.tensor([ids[begin:end]])).double()[0], dim=-1)
        for p in range(max(prev, begin + 1), end):
            total -= float(logp[p - 1 - begin, ids[p]])
            scored += 1
        prev = end
        if end == len(ids):
            break
    print(json.dumps(dict(model=args.model, scored=scored, total_nll=total, mean_nll=total / scored,
                          perplexity=math.exp(total / scored), window=args.window, stride=args.stride)))


if __name__ == "__main__":
    main()
