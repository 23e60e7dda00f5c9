#!/usr/bin/env python3
"""Regenerate the golden Folio files of Formats/golden and their expected inspect output.

Reference tooling only: Folio never imports or runs this script. Every input is built here
by hand as a safetensors file (8-byte little-endian header length, JSON header, raw
little-endian data), from integer formulas rather than a random generator, so the inputs
are the same bytes on every machine and numpy version. Each input is then converted with
`folio convert`; the reference writer is deterministic, so running this script again gives
byte-identical files. Beside each NAME.folio the script stores NAME.inspect.json, exactly
what `folio inspect --json NAME.folio` prints (the document names no path), and it checks
that `folio verify` accepts every file.

`example.folio` is the worked example of Formats/FOLIO.md section 12, written by
Tools/reference/make_spec_example.py from the specification alone; the script checks that
the reference writer produces the same bytes from the equivalent safetensors file.

Usage (from anywhere; paths are resolved from the repository root):
    python3 Tools/reference/make_golden.py                      # uses .build/release/folio
    python3 Tools/reference/make_golden.py --folio /tmp/folio    # another build of the CLI
    python3 Tools/reference/make_golden.py --out /tmp/golden     # write elsewhere

Requires numpy, and the `xxhash` package for make_spec_example.py.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------
# Deterministic values

def ints(n: int, seed: int, lo: int = -32768, hi: int = 32767) -> np.ndarray:
    """n integers in [lo, hi] from a 64-bit linear congruential generator (Knuth's MMIX
    constants), the same on every platform."""
    x = (seed * 0x9E3779B97F4A7C15 + 1) & MASK64
    span = hi - lo + 1
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
        out[i] = lo + ((x >> 24) % span)
    return out


def floats(shape, seed: int, scale_bits: int = 15) -> np.ndarray:
    """float32 values k / 2^scale_bits with |k| < 2^15: exact in binary32 and binary64."""
    n = int(np.prod(shape, dtype=np.int64))
    return (ints(n, seed).astype(np.float64) / float(1 << scale_bits)).astype(np.float32).reshape(shape)


def table(rows: int, width: int, seed: int) -> np.ndarray:
    """A float32 table whose rows differ in magnitude and centre, as embedding rows do.
    Row r is scaled by 2^(r % 5 - 2) and shifted by (r % 3 - 1) / 8; row 3 is constant
    (every value 0.25), row 5 all zero, so both special cases of the quantizers occur."""
    t = floats((rows, width), seed).astype(np.float64)
    for r in range(rows):
        t[r] = t[r] * 2.0 ** (r % 5 - 2) + (r % 3 - 1) / 8
    if rows > 3:
        t[3] = 0.25
    if rows > 5:
        t[5] = 0.0
    return t.astype(np.float32)  # every value is exact: few significant bits, power-of-two scales


def bf16_bytes(a: np.ndarray) -> bytes:
    """float32 -> bfloat16, round to nearest even (the writer's rule for finite values)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype("<u2").tobytes()


def le(a: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(a).astype(np.dtype(dtype).newbyteorder("<")).tobytes()


# ---------------------------------------------------------------------------------------
# Safetensors and Hugging Face folders

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
              "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


def write_safetensors(path: str, tensors, metadata=None) -> None:
    """tensors: list of (name, dtype, shape, data bytes), stored in this order."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    for name, dtype, shape, data in tensors:
        count = 1
        for d in shape:
            count *= d
        assert len(data) == count * DTYPE_SIZE[dtype], (name, len(data))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------
# The golden set

def plain_inputs(tmp: str):
    """plain.folio: every plain dtype, a 0-d tensor, and an empty tensor placed last (so
    data_size ends at the empty tensor's 64-aligned start, past the previous end)."""
    t = []
    t.append(("bool", "BOOL", [5], bytes([1, 0, 0, 1, 1])))
    t.append(("u8", "U8", [2, 3], le(ints(6, 1, 0, 255), "u1")))
    t.append(("i8", "I8", [7], le(ints(7, 2, -128, 127), "i1")))
    t.append(("u16", "U16", [3], le(ints(3, 3, 0, 65535), "u2")))
    t.append(("i16", "I16", [3], le(ints(3, 4, -32768, 32767), "i2")))
    t.append(("u32", "U32", [2], le(np.array([0, 4294967295], dtype=np.uint64), "u4")))
    t.append(("i32", "I32", [2, 2], le(np.array([-2147483648, -1, 0, 2147483647]), "i4")))
    t.append(("u64", "U64", [2], le(np.array([1, 18446744073709551615], dtype=np.uint64), "u8")))
    t.append(("i64", "I64", [2], le(np.array([-9223372036854775808, 9223372036854775807]), "i8")))
    t.append(("f16", "F16", [4], le(np.array([1.0, -2.5, 65504.0, 2.0 ** -24]), "f2")))
    t.append(("bf16", "BF16", [2, 3], bf16_bytes(floats((2, 3), 5))))
    t.append(("f32", "F32", [2, 3], le(floats((2, 3), 6), "f4")))
    t.append(("f64", "F64", [3], le(np.array([0.1, -1e300, 2.0 ** -1074]), "f8")))
    t.append(("f8_e4m3", "F8_E4M3", [4], bytes([0x38, 0xB8, 0x7E, 0x01])))  # 1, -1, 448, 2^-9
    t.append(("f8_e5m2", "F8_E5M2", [4], bytes([0x3C, 0xBC, 0x7B, 0x7C])))  # 1, -1, 57344, inf
    t.append(("scalar", "F32", [], le(np.array([3.5]), "f4")))
    t.append(("empty", "F32", [0, 4], b""))
    path = os.path.join(tmp, "plain.safetensors")
    write_safetensors(path, t, metadata={"format": "pt", "source": "Tools/reference/make_golden.py"})
    return path, []


def int8_inputs(tmp: str):
    """int8.folio: a 16 x 256 embedding table quantized to int8 (one float32 scale per row),
    then a dense norm vector."""
    path = os.path.join(tmp, "int8.safetensors")
    write_safetensors(path, [
        ("model.embed_tokens.weight", "F32", [16, 256], le(table(16, 256, 10), "f4")),
        ("model.norm.weight", "F32", [256], le(1.0 + floats((256,), 11, 20), "f4")),
    ], metadata={"format": "pt"})
    return path, ["--embeddings", "int8"]


def int4_inputs(tmp: str):
    """int4.folio: a bfloat16 matrix quantized to int4/g32 by a --quantize rule (its
    source_dtype records BF16), next to an F32 bias that is copied."""
    path = os.path.join(tmp, "int4.safetensors")
    write_safetensors(path, [
        ("layers.0.mlp.up_proj.weight", "BF16", [8, 128], bf16_bytes(table(8, 128, 20))),
        ("layers.0.mlp.up_proj.bias", "F32", [8], le(floats((8,), 21), "f4")),
    ])
    return path, ["--quantize", "*.up_proj.weight=int4/g32"]


def affine8_inputs(tmp: str):
    """affine8.folio: a float16 matrix quantized to affine8/g64 by a --quantize rule."""
    path = os.path.join(tmp, "affine8.safetensors")
    write_safetensors(path, [
        ("proj.weight", "F16", [12, 128], le(table(12, 128, 30), "f2")),
    ], metadata={})
    return path, ["--quantize", "proj.weight=affine8/g64"]


def page16k_inputs(tmp: str):
    """page16k.folio: page_size 16384 (the header is padded to 16384 - 32 bytes); a 40 x 512
    bfloat16 embedding table as int8/g32, 30 records of 544 bytes per page, so 2 pages."""
    path = os.path.join(tmp, "page16k.safetensors")
    write_safetensors(path, [
        ("model.embed_tokens.weight", "BF16", [40, 512], bf16_bytes(table(40, 512, 40))),
        ("model.norm.weight", "BF16", [512], bf16_bytes(1.0 + floats((512,), 41, 20))),
    ])
    return path, ["--embeddings", "int8/g32", "--page-size", "16384"]


def oversized_inputs(tmp: str):
    """oversized.folio: a paged BF16 table (--embeddings bf16 pages an F32 table) whose
    6000-byte records exceed the 4096-byte page: row stride 8192, one record per block."""
    path = os.path.join(tmp, "oversized.safetensors")
    write_safetensors(path, [
        ("wte.weight", "F32", [3, 3000], le(table(3, 3000, 50), "f4")),
    ])
    return path, ["--embeddings", "bf16"]


def model_inputs(tmp: str):
    """model.folio: a Hugging Face folder, so the file carries embedded files (config.json,
    tokenizer files, one in a subfolder) before the tensors."""
    d = os.path.join(tmp, "model")
    os.makedirs(d, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8,
              "hidden_size": 64, "num_hidden_layers": 0, "tie_word_embeddings": True}
    write_text(os.path.join(d, "config.json"), json.dumps(config, indent=2) + "\n")
    write_text(os.path.join(d, "tokenizer_config.json"), '{"bos_token": "<s>", "eos_token": "</s>"}\n')
    vocab = ["<unk>", "<s>", "</s>", "a", "b", "c", "ab", "bc"]
    tok = {"version": "1.0", "model": {"type": "BPE", "vocab": {v: i for i, v in enumerate(vocab)},
                                       "merges": ["a b", "b c"]}}
    write_text(os.path.join(d, "tokenizer.json"), json.dumps(tok, separators=(",", ":")) + "\n")
    write_text(os.path.join(d, "original", "params.json"), '{"dim": 64, "n_layers": 0}\n')
    write_text(os.path.join(d, "README.md"), "not embedded: only .json, .txt, .model and .tiktoken files are\n")
    write_safetensors(os.path.join(d, "model.safetensors"), [
        ("model.embed_tokens.weight", "F32", [8, 64], le(table(8, 64, 60), "f4")),
        ("model.norm.weight", "F32", [64], le(np.ones(64), "f4")),
    ], metadata={"format": "pt"})
    return d, ["--embeddings", "int8/g64"]


def empty_inputs(tmp: str):
    """empty.folio: no tensors, no files, empty metadata: the smallest valid file (data_size
    0, no chunk, table hash of empty input), 4112 bytes."""
    path = os.path.join(tmp, "empty.safetensors")
    write_safetensors(path, [], metadata={})
    return path, []


GOLDEN = [
    ("plain", plain_inputs),
    ("int8", int8_inputs),
    ("int4", int4_inputs),
    ("affine8", affine8_inputs),
    ("page16k", page16k_inputs),
    ("oversized", oversized_inputs),
    ("model", model_inputs),
    ("empty", empty_inputs),
]


# ---------------------------------------------------------------------------------------

def run(cmd, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, **kw)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')}")
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folio", default=os.environ.get("FOLIO", os.path.join(ROOT, ".build", "release", "folio")),
                    help="the folio command-line tool (default: $FOLIO or .build/release/folio)")
    ap.add_argument("--out", default=os.path.join(ROOT, "Formats", "golden"), help="output folder")
    args = ap.parse_args()
    folio = os.path.abspath(args.folio)
    if not os.access(folio, os.X_OK):
        sys.exit(f"no folio binary at {folio} (build it, or pass --folio)")
    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):
        if name.endswith(".folio") or name.endswith(".inspect.json"):
            os.remove(os.path.join(args.out, name))

    with tempfile.TemporaryDirectory() as tmp:
        for name, make in GOLDEN:
            src, options = make(tmp)
            dst = os.path.join(args.out, name + ".folio")
            run([folio, "convert", src, dst] + options)

        # The worked example of the specification, written without the reference writer...
        example = os.path.join(args.out, "example.folio")
        run([sys.executable, os.path.join(ROOT, "Tools", "reference", "make_spec_example.py"), "--out", example])
        # ...is what the reference writer produces for the same tensor.
        src = os.path.join(tmp, "example.safetensors")
        write_safetensors(src, [("x", "F32", [2], struct.pack("<2f", 1.0, -2.0))])
        again = os.path.join(tmp, "example.folio")
        run([folio, "convert", src, again])
        with open(example, "rb") as a, open(again, "rb") as b:
            if a.read() != b.read():
                sys.exit("the reference writer does not reproduce example.folio: spec and code disagree")

    for name in [n for n, _ in GOLDEN] + ["example"]:
        path = os.path.join(args.out, name + ".folio")
        run([folio, "verify", path])
        out = run([folio, "inspect", "--json", path]).stdout
        with open(os.path.join(args.out, name + ".inspect.json"), "wb") as f:
            f.write(out)
        print(f"{name + '.folio':18s} {os.path.getsize(path):6d} bytes")


if __name__ == "__main__":
    main()
