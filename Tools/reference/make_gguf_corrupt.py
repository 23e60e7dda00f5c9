#!/usr/bin/env python3
"""Writes Tests/Fixtures/gguf/corrupt: malformed GGUF files, one defect each, and
expected.json mapping each file to a phrase its one-line error must contain.

    python3 Tools/reference/make_gguf_corrupt.py

Files are built by a tiny GGUF writer here (layout from ggml's docs/gguf.md): magic,
u32 version, u64 tensor count, u64 kv count, key-values, tensor infos, padding to
general.alignment (32), data.
"""
import json
import os
import struct

OUT = "Tests/Fixtures/gguf/corrupt"


def s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def kv_str(key, value):
    return s(key) + struct.pack("<I", 8) + s(value)


def tensor(name, dims, typ, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", typ, offset)


def gguf(kvs, tensors, data=b"", version=3, tcount=None, kcount=None, pad=True):
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if tcount is None else tcount, len(kvs) if kcount is None else kcount)
    body = head + b"".join(kvs) + b"".join(tensors)
    if pad:
        body += b"\0" * (-len(body) % 32)
    return body + data


ARCH = kv_str(b"general.architecture", b"llama")
W = tensor(b"w", [32, 2], 0, 0)  # F32 [2, 32]: 256 bytes
DATA = b"\0" * 256


def main():
    os.makedirs(OUT, exist_ok=True)
    valid = gguf([ARCH], [W], DATA)
    cases = {
        "bad-magic.gguf": (b"GGML" + valid[4:], "bad magic"),
        "version-1.gguf": (gguf([ARCH], [W], DATA, version=1), "version 1"),
        "version-4.gguf": (gguf([ARCH], [W], DATA, version=4), "version 4"),
        "truncated-preamble.gguf": (valid[:10], "truncated"),
        "truncated-in-kv.gguf": (valid[:40], "truncated"),
        "truncated-in-tensor-info.gguf": (valid[:len(gguf([ARCH], [], pad=False)) + 10], "truncated"),
        "truncated-data.gguf": (valid[:-1], "past the end"),
        "tensor-count-huge.gguf": (gguf([ARCH], [W], DATA, tcount=1 << 62), "tensor_count"),
        "kv-count-huge.gguf": (gguf([ARCH], [W], DATA, kcount=1 << 40), "kv_count"),
        "kv-count-past-end.gguf": (gguf([ARCH], [W], DATA, kcount=3), "key 2"),
        "unknown-kv-type.gguf": (gguf([s(b"k") + struct.pack("<I", 13) + b"\0" * 8], [W], DATA), "unknown metadata value type"),
        "string-length-huge.gguf": (gguf([s(b"k") + struct.pack("<IQ", 8, 1 << 40)], [W], DATA), "string length"),
        "string-past-end.gguf": (gguf([s(b"k") + struct.pack("<IQ", 8, 100000)], [W], DATA), "truncated"),
        "invalid-utf8-key.gguf": (gguf([s(b"\xff\xfe") + struct.pack("<I", 4) + b"\0" * 4], [W], DATA), "UTF-8"),
        "duplicate-key.gguf": (gguf([ARCH, ARCH], [W], DATA), "duplicate key"),
        "array-count-huge.gguf": (gguf([s(b"a") + struct.pack("<IIQ", 9, 4, 1 << 50)], [W], DATA), "array count"),
        "arrays-nested-too-deep.gguf": (gguf([s(b"a") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 4, 0)], [W], DATA), "nested"),
        "bad-bool.gguf": (gguf([s(b"b") + struct.pack("<IB", 7, 2)], [W], DATA), "bool"),
        "bad-alignment.gguf": (gguf([s(b"general.alignment") + struct.pack("<II", 4, 24)], [W], DATA), "general.alignment"),
        "unknown-ggml-type.gguf": (gguf([ARCH], [tensor(b"w", [32, 2], 99, 0)], DATA), "not supported"),
        "iq-type-unsupported.gguf": (gguf([ARCH], [tensor(b"w", [256, 1], 16, 0)], DATA), "IQ2_XXS"),
        "n-dims-zero.gguf": (gguf([ARCH], [tensor(b"w", [], 0, 0)], DATA), "n_dims"),
        "n-dims-five.gguf": (gguf([ARCH], [tensor(b"w", [1, 1, 1, 1, 1], 0, 0)], DATA), "n_dims"),
        "dims-overflow.gguf": (gguf([ARCH], [tensor(b"w", [1 << 40, 1 << 40], 0, 0)], DATA), "overflow"),
        "dim-huge.gguf": (gguf([ARCH], [tensor(b"w", [32, (1 << 64) - 1], 0, 0)], DATA), "too large"),
        "block-size-mismatch.gguf": (gguf([ARCH], [tensor(b"w", [31, 2], 8, 0)], DATA), "block size"),
        "offset-misaligned.gguf": (gguf([ARCH], [tensor(b"w", [32, 2], 0, 8)], DATA), "alignment"),
        "offset-past-end.gguf": (gguf([ARCH], [tensor(b"w", [32, 2], 0, 1 << 20)], DATA), "expected 0"),
        "offset-out-of-range.gguf": (gguf([ARCH], [tensor(b"w", [32, 2], 0, 1 << 63)], DATA), "out of range"),
        "overlapping-tensors.gguf": (gguf([ARCH], [tensor(b"w", [32, 4], 0, 0), tensor(b"v", [32], 0, 64)], b"\0" * 1024), "expected 512"),
        "tensor-gap.gguf": (gguf([ARCH], [tensor(b"w", [32], 0, 0), tensor(b"v", [32], 0, 256)], b"\0" * 1024), "expected 128"),
        "tensor-name-too-long.gguf": (gguf([ARCH], [tensor(b"n" * 64, [32], 0, 0)], DATA), "at most 63"),
        "duplicate-tensor-name.gguf": (gguf([ARCH], [tensor(b"w", [32], 0, 0), tensor(b"w", [32], 0, 128)], DATA), "duplicate tensor name"),
        "tensor-name-invalid-utf8.gguf": (gguf([ARCH], [tensor(b"w\xff", [32], 0, 0)], DATA), "UTF-8"),
    }
    expected = {}
    for name, (data, phrase) in cases.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        expected[name] = phrase
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(cases)} files to {OUT}")


if __name__ == "__main__":
    main()
