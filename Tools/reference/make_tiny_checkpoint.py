#!/usr/bin/env python3
"""Writes Tests/Fixtures/tiny-llama: a small Hugging Face style Llama folder (random
weights, bfloat16, LlamaForCausalLM tensor names) that the README demo converts.

Only numpy is needed: the safetensors file is written by hand (8-byte little-endian
header size, JSON header, raw little-endian data), because safetensors.numpy has no bf16.
"""
import json
import os
import sys

import numpy as np

VOCAB, DIM, HIDDEN, LAYERS, HEADS, KV_HEADS = 512, 64, 172, 2, 4, 2


def bf16_bytes(a: np.ndarray) -> bytes:
    """Round float32 to bfloat16 (nearest even) and return the little-endian bytes."""
    u = a.astype(np.float32).view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def main(out_dir: str) -> None:
    rng = np.random.default_rng(0)
    head_dim = DIM // HEADS
    tensors = {"model.embed_tokens.weight": (VOCAB, DIM)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": (DIM,),
            p + "self_attn.q_proj.weight": (HEADS * head_dim, DIM),
            p + "self_attn.k_proj.weight": (KV_HEADS * head_dim, DIM),
            p + "self_attn.v_proj.weight": (KV_HEADS * head_dim, DIM),
            p + "self_attn.o_proj.weight": (DIM, HEADS * head_dim),
            p + "post_attention_layernorm.weight": (DIM,),
            p + "mlp.gate_proj.weight": (HIDDEN, DIM),
            p + "mlp.up_proj.weight": (HIDDEN, DIM),
            p + "mlp.down_proj.weight": (DIM, HIDDEN),
        })
    tensors["model.norm.weight"] = (DIM,)
    tensors["lm_head.weight"] = (VOCAB, DIM)

    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape in tensors.items():
        if name.endswith("norm.weight"):
            values = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            values = 0.02 * rng.standard_normal(shape)
        blob = bf16_bytes(np.asarray(values, dtype=np.float32))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": DIM, "intermediate_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 256, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/tiny-llama")
