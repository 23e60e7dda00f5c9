#!/usr/bin/env python3
"""Writes a large synthetic safetensors checkpoint in a stream (never holding it whole),
for measuring Folio's peak memory while converting.

    python3 Tools/bench/make_big_safetensors.py OUT.safetensors [--gib 4]

Tensors: one bf16 embedding table `model.embed_tokens.weight` of about 3/4 of the size and
bf16 `model.layers.N.mlp.weight` matrices for the rest; values are normal(0, 0.02).
"""
import argparse
import json

import numpy as np


def bf16(a: np.ndarray) -> bytes:
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--dim", type=int, default=1024)
    args = ap.parse_args()
    total = int(args.gib * (1 << 30))
    dim = args.dim
    emb_rows = int(total * 0.75) // (2 * dim)
    layer_rows = 4 * dim
    layers = max(1, (total - emb_rows * dim * 2) // (layer_rows * dim * 2))
    shapes = {"model.embed_tokens.weight": (emb_rows, dim)}
    for i in range(layers):
        shapes[f"model.layers.{i}.mlp.weight"] = (layer_rows, dim)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (r, c) in shapes.items():
        n = r * c * 2
        header[name] = {"dtype": "BF16", "shape": [r, c], "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(0)
    with open(args.out, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, (r, c) in shapes.items():
            step = max(1, (1 << 24) // c)
            for start in range(0, r, step):
                n = min(step, r - start)
                f.write(bf16(0.02 * rng.standard_normal((n, c), dtype=np.float32)))
    print(f"wrote {args.out}: {offset + 8 + len(text)} bytes, {len(shapes)} tensors")


if __name__ == "__main__":
    main()
