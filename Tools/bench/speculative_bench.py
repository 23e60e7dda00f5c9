#!/usr/bin/env python3
"""Speculative decoding in `folio run` on held-out code prompts: for each prompt, plain greedy
decoding of the model, then the same with a draft model (`--draft`) and with prompt lookup
(`--lookup`), in one run, runners taking turns prompt by prompt. Reports acceptance (accepted
/ proposed tokens), tokens per second of decoding and the speedup over plain decoding (decode
time summed over the prompts), and checks that every output equals plain greedy decoding.

    python3 Tools/bench/speculative_bench.py --model M.folio --draft D.folio --prompts val_prompts.json
        [--folio .build/release/folio] [--max-tokens 128] [--draft-tokens 2] [--lookup-tokens 5]
        [--threads 2] [--json]
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lookups_bench import cpu_name as cpu_model  # noqa: E402  (the same /proc/cpuinfo reading)


def run(folio, model, ids, max_tokens, threads, extra):
    cmd = [folio, "run", model, "--tokens", ",".join(map(str, ids)), "--max-tokens", str(max_tokens), "--json",
           "--threads", str(threads)] + extra
    d = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    steps = max(0, len(d["tokens"]) - 1)
    return d, (steps / d["tokens_per_second"]) if d["tokens_per_second"] > 0 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--model", required=True)
    ap.add_argument("--draft", required=True)
    ap.add_argument("--prompts", required=True, help="val_prompts.json of Tools/train/train.py")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--draft-tokens", type=int, default=2)
    ap.add_argument("--lookup-tokens", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    prompts = [p["ids"] for p in json.load(open(args.prompts))["prompts"]]
    modes = {"plain": [], "draft": ["--draft", args.draft, "--draft-tokens", str(args.draft_tokens)],
             "lookup": ["--lookup", "--draft-tokens", str(args.lookup_tokens)]}
    totals = {m: dict(seconds=0.0, tokens=0, proposed=0, accepted=0, passes=0, identical=0) for m in modes}
    for ids in prompts:
        plain = None
        for name, extra in modes.items():
            d, seconds = run(args.folio, args.model, ids, args.max_tokens, args.threads, extra)
            t = totals[name]
            t["seconds"] += seconds
            t["tokens"] += max(0, len(d["tokens"]) - 1)
            t["proposed"] += d.get("draft_proposed", 0)
            t["accepted"] += d.get("draft_accepted", 0)
            t["passes"] += d.get("verify_passes", 0)
            if name == "plain":
                plain = d["tokens"]
            t["identical"] += int(d["tokens"] == plain)
    base = totals["plain"]["seconds"]
    report = dict(cpu=cpu_model(), prompts=len(prompts), max_tokens=args.max_tokens, threads=args.threads,
                  draft_tokens=args.draft_tokens, lookup_tokens=args.lookup_tokens, modes={})
    for name, t in totals.items():
        report["modes"][name] = dict(
            decode_tokens_per_second=t["tokens"] / t["seconds"] if t["seconds"] else 0,
            speedup=base / t["seconds"] if t["seconds"] else 0,
            acceptance=(t["accepted"] / t["proposed"]) if t["proposed"] else None,
            tokens_per_pass=(t["tokens"] / t["passes"]) if t["passes"] else None,
            identical_to_plain=f"{t['identical']}/{len(prompts)}")
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['cpu']}, {len(prompts)} prompts, {args.max_tokens} new tokens, {args.threads} threads")
    for name, r in report["modes"].items():
        acc = "-" if r["acceptance"] is None else f"{r['acceptance']:.3f}"
        tpp = "-" if r["tokens_per_pass"] is None else f"{r['tokens_per_pass']:.2f}"
        print(f"{name:7s} {r['decode_tokens_per_second']:9.1f} tok/s  speedup {r['speedup']:.2f}x  acceptance {acc}  "
              f"tokens/pass {tpp}  identical {r['identical_to_plain']}")


if __name__ == "__main__":
    main()
