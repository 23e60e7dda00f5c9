#!/usr/bin/env python3
"""How close can 8-bit weights come to a float32 decoder? For each family fixture of
Tests/Fixtures/families (tiny random checkpoints, i.i.d. Gaussian weights), the smallest
per-position cosine between float32 logits and logits with perturbed weights, on the
fixture's prompts, for:

  int8/g32   Folio's `--weights int8` (every matrix but MoE routers as int8/g32: a float16
             scale absmax/127 per group of 32, codes rounded to nearest), emulated here;
             `swift test --filter FamilyTests` prints the same figure for Folio's own run;
  scalar8    each matrix W plus white Gaussian noise of variance var(W) * (pi e / 6) * 2^-16:
             the least mean squared error of any scalar quantizer (each weight coded alone,
             round-to-nearest on any grid, even entropy-coded) at 8 bits per weight, by
             high-resolution theory (Gish and Pierce 1968); int8/g32's own error is within a
             few percent of it (printed as mse ratio);
  shannon    the same with variance var(W) * 2^(-2R), R = 8.5 bits per weight (int8/g32's rate
             with its scales): the distortion-rate bound of a Gaussian source, the least error
             of any code of that rate, vector codes included.
  Noise columns: min over positions, mean over 3 draws.

    python3 Tools/reference/int8_bound.py [--only NAME]

If `scalar8` stays below 0.9999 for a family, no 8-bit scalar weight code reaches cosine
0.9999 on that fixture (only vector codes or error shaping toward insensitive directions,
GPTQ-style, could); `shannon` says whether any 8.5-bit code could.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
RATE = 8.5


def is_router(name):
    return ".router." in name or name.endswith(".gate.weight") or "ffn_gate_inp" in name


def int8_g32(w):
    flat = w.reshape(-1, 32)
    scale = (flat.abs().amax(dim=1, keepdim=True) / 127).to(torch.float16).to(torch.float32)
    q = torch.where(scale > 0, torch.round(flat / torch.where(scale > 0, scale, 1)), torch.zeros_like(flat)).clamp(-127, 127)
    return (q * scale).reshape(w.shape)


def min_cosine(a, b):
    a, b = a.double(), b.double()
    c = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return float(c.min())


def run(name):
    d = ROOT / "Tests/Fixtures/families" / name
    ref = json.loads((d / "reference.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    prompts = [torch.tensor([p["ids"]]) for p in ref["prompts"]]
    with torch.no_grad():
        base = [model(p).logits[0] for p in prompts]
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    targets = [n for n, p in model.named_parameters() if p.ndim >= 2 and not is_router(n) and p.shape[-1] % 32 == 0]

    def measure():
        with torch.no_grad():
            return min(min_cosine(model(p).logits[0], b) for p, b in zip(prompts, base))

    def restore():
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(original[n])

    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in targets:
                p.copy_(int8_g32(original[n]))
    q = measure()
    restore()
    mse = np.mean([float(((int8_g32(original[n]) - original[n]) ** 2).mean() / original[n].var()) for n in targets])
    scalar = np.pi * np.e / 6 * 2.0 ** -16
    gen = torch.Generator().manual_seed(0)

    def noisy(relative_variance):
        draws = []
        for _ in range(3):
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in targets:
                        w = original[n]
                        p.copy_(w + torch.randn(w.shape, generator=gen) * float(w.std()) * relative_variance ** 0.5)
            draws.append(measure())
            restore()
        return float(np.mean(draws))

    return q, mse / scalar, noisy(scalar), noisy(2.0 ** (-2 * RATE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    names = sorted(p.name for p in (ROOT / "Tests/Fixtures/families").iterdir() if (p / "reference.json").exists())
    print(f"{'family':24} {'int8/g32':>10} {'mse ratio':>10} {'scalar8':>10} {'shannon@8.5':>12}")
    for name in names:
        if args.only and name != args.only:
            continue
        q, ratio, sc, sh = run(name)
        print(f"{name:24} {q:10.6f} {ratio:10.3f} {sc:10.6f} {sh:12.6f}")


if __name__ == "__main__":
    main()
