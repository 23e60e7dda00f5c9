#!/usr/bin/env python3
"""Writes a large synthetic checkpoint in a stream (never holding it whole), for measuring
Folio's conversion throughput and peak memory.

    python3 Tools/bench/make_big_safetensors.py OUT.safetensors [--gib 4]
    python3 Tools/bench/make_big_safetensors.py OUT_FOLDER --gib 10 --shards 4

Tensors: one bf16 embedding table `model.embed_tokens.weight` of about 3/4 of the size and
bf16 `model.layers.N.mlp.weight` matrices for the rest; values are normal(0, 0.02). With
--shards, OUT_FOLDER becomes a Hugging Face folder: model-0000k-of-0000n.safetensors,
model.safetensors.index.json and a config.json (the embedding table fills the first shards
on its own, as transformers does with a tensor larger than a shard).
"""
import argparse
import json
import os

import numpy as np


def bf16(a: np.ndarray) -> bytes:
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def write_file(path, shapes, rng, metadata):
    header, offset = {"__metadata__": metadata}, 0
    for name, (r, c) in shapes.items():
        n = r * c * 2
        header[name] = {"dtype": "BF16", "shape": [r, c], "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, (r, c) in shapes.items():
            step = max(1, (1 << 24) // c)
            for start in range(0, r, step):
                n = min(step, r - start)
                f.write(bf16(0.02 * rng.standard_normal((n, c), dtype=np.float32)))
    return offset + 8 + len(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--shards", type=int, default=0)
    args = ap.parse_args()
    total = int(args.gib * (1 << 30))
    dim = args.dim
    emb_rows = int(total * 0.75) // (2 * dim)
    layer_rows = 4 * dim
    layers = max(1, (total - emb_rows * dim * 2) // (layer_rows * dim * 2))
    shapes = {"model.embed_tokens.weight": (emb_rows, dim)}
    for i in range(layers):
        shapes[f"model.layers.{i}.mlp.weight"] = (layer_rows, dim)
    rng = np.random.default_rng(0)
    if not args.shards:
        size = write_file(args.out, shapes, rng, {"format": "pt"})
        print(f"wrote {args.out}: {size} bytes, {len(shapes)} tensors")
        return
    os.makedirs(args.out, exist_ok=True)
    # The embedding table alone in shard 1; the layers spread over the others.
    names = list(shapes)
    groups = [[names[0]]]
    rest = names[1:]
    per = max(1, -(-len(rest) // max(1, args.shards - 1)))
    groups += [rest[i:i + per] for i in range(0, len(rest), per)]
    n = len(groups)
    weight_map, size = {}, 0
    for k, g in enumerate(groups):
        fname = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        size += write_file(os.path.join(args.out, fname), {t: shapes[t] for t in g}, rng, {"format": "pt"})
        weight_map.update({t: fname for t in g})
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": dim, "vocab_size": emb_rows}, f)
    print(f"wrote {args.out}: {size} bytes in {n} shards, {len(shapes)} tensors")


if __name__ == "__main__":
    main()
