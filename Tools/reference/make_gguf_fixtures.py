#!/usr/bin/env python3
"""Writes Tests/Fixtures/gguf: GGUF files made by the `gguf` package (PyPI) and, beside each,
the values gguf-py's own dequantization gives, as a safetensors file Folio must match
bit for bit.

    python3 Tools/reference/make_gguf_fixtures.py [OUT_DIR]

types.gguf holds one tensor per supported ggml type (F32, F16, BF16, F64, I8..I64, Q4_0,
Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) plus metadata of every value type.
Types gguf-py can quantize are made from Gaussian values; K-quant blocks are random bytes
with finite float16 scales (gguf-py only dequantizes them). expected.safetensors holds, per
tensor, gguf.quants.dequantize's float32 output (plain integer and float types keep their
dtype). q8_0.gguf is a Q8_0 model-like file for the --keep-quantized round trip.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from safetensors.numpy import save_file

SCALE_OFFSETS = {  # byte offsets of float16 fields in each block (ggml-common.h layouts)
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_blocks(rng, qtype, rows, ne0):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nblocks = rows * ne0 // block
    raw = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        scales = (rng.standard_normal(nblocks) * 0.01).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(rows, ne0 // block * size)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(os.path.join(out_dir, "types.gguf"), "llama")
    w.add_uint32("test.u32", 7)
    w.add_int32("test.i32", -7)
    w.add_float32("test.f32", 0.5)
    w.add_float64("test.f64", 1e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo")
    w.add_uint64("test.u64", 2**63 + 1)
    w.add_int64("test.i64", -(2**62))
    w.add_uint8("test.u8", 255)
    w.add_int16("test.i16", -300)
    w.add_array("test.strings", ["a", "bb", "ccc"])
    w.add_array("test.ints", [1, 2, 3])
    expected = {}
    rows, ne0 = 3, 512
    x = rng.standard_normal((rows, ne0)).astype(np.float32)
    plain = {
        "f32": x, "f16": x.astype(np.float16), "f64": x.astype(np.float64),
        "i8": rng.integers(-128, 128, (rows, ne0), dtype=np.int8),
        "i16": rng.integers(-2**15, 2**15, (rows, ne0), dtype=np.int16),
        "i32": rng.integers(-2**31, 2**31, (rows, ne0), dtype=np.int32),
        "i64": rng.integers(-2**62, 2**62, (rows, ne0), dtype=np.int64),
    }
    for name, arr in plain.items():
        w.add_tensor(f"plain.{name}", arr)
        expected[f"plain.{name}"] = arr
    bf = gguf.quants.quantize(x, T.BF16)
    w.add_tensor("plain.bf16", bf, raw_dtype=T.BF16)
    expected["plain.bf16"] = gguf.quants.dequantize(bf, T.BF16)
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        q = gguf.quants.quantize(x * 0.1, qtype)
        w.add_tensor(f"quant.{qtype.name}", q, raw_dtype=qtype)
        expected[f"quant.{qtype.name}"] = gguf.quants.dequantize(q, qtype)
    for qtype in [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        q = random_blocks(rng, qtype, rows, ne0)
        w.add_tensor(f"quant.{qtype.name}", q, raw_dtype=qtype)
        expected[f"quant.{qtype.name}"] = gguf.quants.dequantize(q, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file({k: np.ascontiguousarray(v) for k, v in expected.items()}, os.path.join(out_dir, "expected.safetensors"))

    # A Q8_0 "model": token embeddings and a projection, for --keep-quantized.
    w = gguf.GGUFWriter(os.path.join(out_dir, "q8_0.gguf"), "llama")
    emb = (rng.standard_normal((64, 256)) * 0.02).astype(np.float32)
    proj = (rng.standard_normal((32, 256)) * 0.02).astype(np.float32)
    exp = {}
    for name, arr in [("token_embd.weight", emb), ("blk.0.attn_q.weight", proj)]:
        q = gguf.quants.quantize(arr, T.Q8_0)
        w.add_tensor(name, q, raw_dtype=T.Q8_0)
        exp[name] = gguf.quants.dequantize(q, T.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(256, dtype=np.float32))
    exp["output_norm.weight"] = np.ones(256, dtype=np.float32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(exp, os.path.join(out_dir, "q8_0.expected.safetensors"))
    print("wrote", sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/gguf")
