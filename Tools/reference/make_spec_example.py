#!/usr/bin/env python3
"""Build the worked example of Formats/FOLIO.md section 12 by hand and print its hex dump.

Reference tooling only: Folio never imports or runs this script. It re-derives from the
specification alone the bytes the Swift writer produces for the same plan, so that the
hashes quoted in the specification can be reproduced independently.

The example file holds one dense F32 tensor "x" of shape [2] with values [1.0, -2.0],
page_size 4096 and the default chunk_size 1048576 (1 MiB), no metadata, no embedded files.

Also printed: the paged-layout numbers quoted in section 7 and the decoded values of the
hand-made int4/g32 record of section 6.

Usage:
    python3 Tools/reference/make_spec_example.py                  # dump and hashes
    python3 Tools/reference/make_spec_example.py --out ex.folio   # also write the file

Requires the `xxhash` package (pip install xxhash), whose xxh3_64 is XXH3-64 with seed 0.
"""
import argparse
import json
import struct
import sys

try:
    import xxhash
except ImportError:
    sys.exit("this script needs the xxhash package: pip install xxhash")

MAGIC = b"\x89FOLIO\r\n"
END_MAGIC = b"FOLIOEND"
VERSION = 1
PREAMBLE = 32
FOOTER = 16


def xxh3(b: bytes) -> int:
    return xxhash.xxh3_64_intdigest(b, seed=0)


def align_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def json_string(s: str) -> str:
    """A JSON string escaped as the reference writer escapes it (section 4.6)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)  # raw UTF-8, "/" and U+007F included
    out.append('"')
    return "".join(out)


def serialize(v) -> str:
    """Compact JSON (no whitespace), object members in insertion order."""
    if isinstance(v, dict):
        return "{" + ",".join(json_string(k) + ":" + serialize(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(serialize(x) for x in v) + "]"
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return str(v)
    raise TypeError(f"not a Folio header value: {v!r}")


def header_json(page_size, chunk_size, data_size, tensors, metadata=None, files=()):
    """The header JSON in the reference writer's canonical form (section 4.6)."""
    members = {"page_size": page_size, "chunk_size": chunk_size, "data_size": data_size}
    if metadata is not None:
        members["metadata"] = dict(metadata)  # present even when empty
    members["tensors"] = tensors
    if files:
        members["files"] = list(files)  # omitted when empty
    return serialize(members).encode("utf-8")


def build_file(page_size, chunk_size, header: bytes, data: bytes) -> bytes:
    pad = align_up(PREAMBLE + len(header), page_size) - (PREAMBLE + len(header))
    header = header + b" " * pad
    pre = MAGIC + struct.pack("<IIQQ", VERSION, 0, len(header), xxh3(header))
    table = b"".join(struct.pack("<Q", xxh3(data[i:i + chunk_size])) for i in range(0, len(data), chunk_size))
    return pre + header + data + table + struct.pack("<Q", xxh3(table)) + END_MAGIC


def check_file(f: bytes):
    """A minimal reader: the fixed parts, both checksums, every chunk, the size equation."""
    assert f[:8] == MAGIC
    version, flags, hlen, hhash = struct.unpack_from("<IIQQ", f, 8)
    assert version == 1 and flags == 0 and 0 < hlen <= 64 << 20
    header = f[PREAMBLE:PREAMBLE + hlen]
    assert xxh3(header) == hhash, "header hash"
    h = json.loads(header)
    data_off = PREAMBLE + hlen
    assert data_off % h["page_size"] == 0
    ds, cs = h["data_size"], h["chunk_size"]
    chunks = 0 if ds == 0 else (ds - 1) // cs + 1
    assert len(f) == data_off + ds + 8 * chunks + FOOTER, "size equation"
    assert f[-8:] == END_MAGIC
    t0 = data_off + ds
    table = f[t0:t0 + 8 * chunks]
    assert struct.unpack_from("<Q", f, len(f) - 16)[0] == xxh3(table), "table hash"
    for i in range(chunks):
        lo, hi = i * cs, min(ds, (i + 1) * cs)
        assert struct.unpack_from("<Q", table, 8 * i)[0] == xxh3(f[data_off + lo:data_off + hi]), f"chunk {i}"
    return h, data_off


def hexdump(b: bytes, start: int, end: int, notes=None):
    notes = notes or {}
    for row in range(start - start % 16, end, 16):
        lo, hi = max(row, start), min(row + 16, end)
        cells = ["  " if (row + k) < lo or (row + k) >= hi else f"{b[row + k]:02x}" for k in range(16)]
        text = "".join(chr(c) if 32 <= c < 127 else "." for c in b[lo:hi])
        line = f"{row:08x}  {' '.join(cells[:8])}  {' '.join(cells[8:])}  |{text}|"
        if row in notes:
            line += "  " + notes[row]
        print(line)


def paged_layout(record, alignment, page):
    """(row_stride, rows_per_page, block_size) of section 7.2."""
    a = align_up(record, alignment)
    if a <= page:
        return a, page // a, page
    big = align_up(record, page)
    return big, 1, big


def paged_nbytes(record, stride, rpp, block, rows):
    if rows == 0:
        return 0
    last = rows - 1
    return (last // rpp) * block + (last % rpp) * stride + record


def f16_to_f32(bits: int) -> float:
    return struct.unpack("<e", struct.pack("<H", bits))[0]


def f32(x: float) -> float:
    """Round a Python float (binary64) to binary32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the example file here")
    args = ap.parse_args()

    page, chunk = 4096, 1 << 20
    data = struct.pack("<2f", 1.0, -2.0)
    tensors = [{"name": "x", "dtype": "F32", "shape": [2], "offset": 0, "nbytes": len(data)}]
    hj = header_json(page, chunk, len(data), tensors)
    f = build_file(page, chunk, hj, data)
    h, data_off = check_file(f)
    assert struct.unpack_from("<2f", f, data_off) == (1.0, -2.0)
    if args.out:
        with open(args.out, "wb") as out:
            out.write(f)

    hlen = struct.unpack_from("<Q", f, 16)[0]
    header_hash = struct.unpack_from("<Q", f, 24)[0]
    trailer = data_off + len(data)
    chunk0 = struct.unpack_from("<Q", f, trailer)[0]
    table_hash = struct.unpack_from("<Q", f, trailer + 8)[0]

    print("== Example file ==")
    print(f"header JSON ({len(hj)} bytes): {hj.decode()}")
    print(f"header_length      = {hlen} (0x{hlen:x}); padding = {hlen - len(hj)} spaces")
    print(f"data offset        = {data_off}")
    print(f"file size          = {len(f)}")
    print(f"header XXH3-64     = 0x{header_hash:016x}")
    print(f"chunk 0 XXH3-64    = 0x{chunk0:016x}  (of the 8 data bytes)")
    print(f"table XXH3-64      = 0x{table_hash:016x}  (of the 8-byte table)")
    print(f"XXH3-64 of b''     = 0x{xxh3(b''):016x}  (table hash of a file with data_size 0)")
    print(f"XXH3-64 of whole   = 0x{xxh3(f):016x}  (whole file, for comparing copies only)")
    print()
    print("-- preamble and start of header --")
    hexdump(f, 0, 32 + 48)
    print("   ...")
    print("-- end of header JSON, padding --")
    jend = 32 + len(hj)
    hexdump(f, jend - 16 - (jend % 16), jend + 16)
    print("   ...")
    hexdump(f, data_off - 16, data_off)
    print("-- data region and trailer --")
    hexdump(f, data_off, len(f))
    print()

    print("== Paged layouts (page_size 4096) ==")
    cases = [
        ("int8, 256 wide", 256 + 4, 4, 1000),
        ("int8/g32, 256 wide", 256 + 8 * 2, 4, 1000),
        ("int4/g32, 256 wide", 8 * 4 + 128, 4, 1000),
        ("affine8/g64, 256 wide", 4 * 4 + 256, 4, 1000),
        ("F32, 256 wide", 256 * 4, 4, 1000),
        ("BF16, 3000 wide", 3000 * 2, 2, 10),
        ("int8, 5000 wide", 5000 + 4, 4, 10),
        ("int8, 255 wide", 255 + 4, 4, 1000),
    ]
    for label, rec, al, rows in cases:
        s, rpp, blk = paged_layout(rec, al, page)
        n = paged_nbytes(rec, s, rpp, blk, rows)
        print(f"{label:24s} record {rec:5d} stride {s:5d} rows/page {rpp:3d} block {blk:5d}; "
              f"{rows} rows: nbytes {n}, row {rows - 1} at {((rows - 1) // rpp) * blk + ((rows - 1) % rpp) * s}")
    print()

    print("== int4/g32 record of section 6 (width 32) ==")
    scale_bits, min_bits = 0x3800, 0xC400  # float16 0.5 and -4.0
    codes = list(range(16)) + list(range(15, -1, -1))
    rec = struct.pack("<HH", scale_bits, min_bits) + bytes(codes[2 * i] | (codes[2 * i + 1] << 4) for i in range(16))
    print("record bytes:", rec.hex(" "))
    s, m = f16_to_f32(scale_bits), f16_to_f32(min_bits)
    packed = rec[4:]
    q = [(packed[j // 2] >> (4 * (j & 1))) & 0x0F for j in range(32)]
    assert q == codes
    vals = [f32(f32(s * v) + m) for v in q]
    print("values:", vals)


if __name__ == "__main__":
    main()
