"""Value decoding: row records of section 6 and the plain dtypes of section 5, as NumPy arrays.

Reconstruction follows section 6.3 exactly: binary16 parameters are widened to binary32 and
every product and sum is a separate binary32 operation (NumPy ufuncs never fuse them), so the
values are bit for bit those of the Swift reader.
"""

import numpy as np

from ._errors import FolioError

NUMPY = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.dtype("<u2"), "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    # Stored bits of the dtypes NumPy has no type for.
    "BF16": np.dtype("<u2"), "F8_E4M3": np.uint8, "F8_E5M2": np.uint8,
}
EXOTIC = ("BF16", "F8_E4M3", "F8_E5M2")


def _e4m3_table():
    out = np.empty(256, np.float32)
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            v = float("nan")
        elif e == 0:
            v = m / 8 * 2.0 ** -6
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        out[b] = -v if s else v
    return out


_E4M3 = _e4m3_table()


def widen(dtype, bits):
    """float32 values of BF16 / F8 stored bits (exact, as section 5's informative note)."""
    if dtype == "BF16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F8_E5M2":
        return (bits.astype(np.uint16) << 8).view(np.float16).astype(np.float32)
    return _E4M3[bits]


def dequantize(scheme, records, width):
    """float32 values [n, width] of n row records (a uint8 array [n, >= RS])."""
    n = records.shape[0]
    kind = scheme.kind
    if kind == "int8":
        scale = np.ascontiguousarray(records[:, :4]).view("<f4")
        codes = records[:, 4:4 + width].view(np.int8).astype(np.float32)
        return scale * codes
    group = scheme.group
    g = width // group
    if kind == "int8g":
        scale = np.ascontiguousarray(records[:, :2 * g]).view("<f2").astype(np.float32)
        codes = records[:, 2 * g:2 * g + width].view(np.int8).astype(np.float32)
        return (scale[:, :, None] * codes.reshape(n, g, group)).reshape(n, width)
    params = np.ascontiguousarray(records[:, :4 * g]).view("<f2").astype(np.float32).reshape(n, g, 2)
    scale, minimum = params[:, :, 0:1], params[:, :, 1:2]
    if kind == "int4":
        packed = records[:, 4 * g:4 * g + width // 2]
        codes = np.empty((n, width), np.float32)
        codes[:, 0::2] = packed & 0x0F
        codes[:, 1::2] = packed >> 4
    elif kind in ("int3", "int2"):
        # The packed bytes are one little-endian bit string; code j is bits [b*j, b*j + b).
        b = 3 if kind == "int3" else 2
        packed = np.ascontiguousarray(records[:, 4 * g:4 * g + width * b // 8])
        bits = np.unpackbits(packed, axis=1, bitorder="little").reshape(n, width, b).astype(np.uint8)
        codes = (bits * (1 << np.arange(b, dtype=np.uint8))).sum(axis=2).astype(np.float32)
    else:  # affine8
        codes = records[:, 4 * g:4 * g + width].astype(np.float32)
    product = scale * codes.reshape(n, g, group)
    return (product + minimum).reshape(n, width)


# ---------------------------------------------------------------- codecs (section 15)

def _lz4_length(src, i, length, what):
    """A 4-bit length from a token, extended by the bytes that follow while it is 15 (each
    added, until one below 255); returns the length and the position after it."""
    if length == 15:
        while True:
            if i >= len(src):
                raise ValueError(f"{what} length runs past the block")
            b = src[i]
            i += 1
            length += b
            if b != 255:
                break
    return length, i


def _lz4_block(src, raw_size):
    """The LZ4 block format, decoded in pure Python (used when the lz4 package is absent)."""
    out = bytearray()
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        length, i = _lz4_length(src, i, token >> 4, "literal")
        if i + length > n:
            raise ValueError("literals run past the block")
        out += src[i:i + length]
        i += length
        if i == n:
            break
        if i + 2 > n:
            raise ValueError("a match offset is cut off")
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        if offset == 0 or offset > len(out):
            raise ValueError("a match offset points before the output")
        length, i = _lz4_length(src, i, token & 15, "match")
        length += 4
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:
            while length > 0:
                piece = out[start:start + min(offset, length)]
                out += piece
                length -= len(piece)
                start += len(piece)
        if len(out) > raw_size:
            raise ValueError("decompresses to more bytes than the chunk holds")
    return bytes(out)


def decompress(codec, data, raw_size):
    """The raw bytes of one stored chunk; raises ValueError on a damaged stream."""
    if codec == "lz4":
        try:
            import lz4.block
        except ImportError:
            return _lz4_block(bytes(data), raw_size)
        try:
            return lz4.block.decompress(bytes(data), uncompressed_size=raw_size)
        except Exception as e:  # lz4 raises LZ4BlockError
            raise ValueError(str(e)) from None
    try:
        import zstandard
    except ImportError:
        raise FolioError("this file holds zstd-compressed tensors: pip install zstandard "
                         "(or folio-reader[zstd]) to read them") from None
    try:
        return zstandard.ZstdDecompressor().decompress(bytes(data), max_output_size=raw_size)
    except zstandard.ZstdError as e:
        raise ValueError(str(e)) from None


def unplane(raw, element_size):
    """Inverse of section 15.3: e planes of m bytes back to m interleaved elements."""
    a = np.frombuffer(raw, np.uint8)
    m = a.size // element_size
    return a.reshape(element_size, m).T.reshape(-1).tobytes()
