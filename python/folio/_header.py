"""The checks of Formats/FOLIO.md section 9.2, in the reference reader's order.

Everything here works on the preamble, the header bytes and the file size; nothing reads
the data region. Each failure raises FolioError with the file and the field named.
"""

import json
import unicodedata

from ._errors import FolioError

MAGIC = b"\x89FOLIO\r\n"
END_MAGIC = b"FOLIOEND"
MAX_HEADER = 1 << 26
MAX_DIM = 1 << 59
MAX_INT = (1 << 63) - 1
MAX_TENSORS = 1 << 20
MAX_FILES = 1 << 16

# Plain dtypes (section 5): name -> element size in bytes.
PLAIN = {
    "BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "U32": 4, "I32": 4, "U64": 8,
    "I64": 8, "F16": 2, "BF16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}
GROUPS = (16, 32, 64, 128, 256)
TENSOR_KEYS = {"name", "dtype", "shape", "offset", "nbytes", "layout", "row_stride",
               "rows_per_page", "source_dtype"}
COMPRESSED_KEYS = {"codec", "planes", "chunk_bytes", "stored_nbytes", "index_hash"}
TOP_KEYS = {"page_size", "chunk_size", "data_size", "metadata", "tensors", "files"}


class Scheme:
    """A quantized dtype of section 6: kind ('int8', 'int8g', 'int4', 'affine8', 'int3', 'int2') and group N."""

    __slots__ = ("name", "kind", "group")

    def __init__(self, name, kind, group):
        self.name, self.kind, self.group = name, kind, group

    def record_size(self, width):
        """RS of section 6.1, or None when the row cannot be encoded."""
        if width < 1:
            return None
        if self.kind == "int8":
            return width + 4
        if width % self.group:
            return None
        g = width // self.group
        if self.kind == "int8g":
            return width + 2 * g
        if self.kind == "int4":
            return 4 * g + width // 2
        if self.kind == "int3":
            return 4 * g + width // 8 * 3
        if self.kind == "int2":
            return 4 * g + width // 4
        return 4 * g + width  # affine8


def parse_dtype(name):
    """A plain dtype name (returned as str) or a Scheme; None for anything else."""
    if name in PLAIN:
        return name
    if name == "int8":
        return Scheme(name, "int8", 0)
    for prefix, kind in (("int8/g", "int8g"), ("int4/g", "int4"), ("affine8/g", "affine8"), ("int3/g", "int3"), ("int2/g", "int2")):
        if name.startswith(prefix):
            digits = name[len(prefix):]
            if digits.isdigit() and digits.isascii() and not digits.startswith("0"):
                n = int(digits)
                if n in GROUPS:
                    return Scheme(name, kind, n)
    return None


def align_up(v, a):
    return (v + a - 1) // a * a


# ---------------------------------------------------------------- strict JSON (4.1)

class _Neg(int):
    """An integer literal written with a minus sign (so '-0' is told from '0')."""


class _Fraction(float):
    """A number literal with a fraction or an exponent."""


def _parse_int(text):
    if len(text) > 400:
        raise ValueError("a number literal is longer than 400 bytes")
    return _Neg(int(text)) if text.startswith("-") else int(text)


def _parse_float(text):
    if len(text) > 400:
        raise ValueError("a number literal is longer than 400 bytes")
    return _Fraction(float(text))


def _constant(text):
    raise ValueError(f"'{text}' is not JSON")


def _pairs(pairs):
    seen = set()
    for key, _ in pairs:
        canonical = unicodedata.normalize("NFC", key)
        if canonical in seen:
            raise ValueError(f"duplicate key '{key}'")
        seen.add(canonical)
    return _Object(pairs)


class _Object(dict):
    """A JSON object that remembers its members in file order (dicts do) and their count."""


def _depth_ok(value, depth=0):
    if depth > 64:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return True


def _check_strings(value):
    """Every string (keys included) must be valid Unicode scalars: no lone surrogates."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")  # raises on surrogates
        elif isinstance(v, dict):
            for k, x in v.items():
                k.encode("utf-8")
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def parse_json(raw, what):
    """Parse bytes as one JSON text under section 4.1; raise FolioError naming `what`."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise FolioError(f"{what}: the header starts with a byte order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FolioError(f"{what}: the header is not valid UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_parse_int,
                           parse_float=_parse_float, parse_constant=_constant)
        _check_strings(value)
    except RecursionError:
        raise FolioError(f"{what}: the header nests deeper than 64 levels") from None
    except (ValueError, UnicodeEncodeError) as e:
        raise FolioError(f"{what}: the header is not valid JSON: {e}") from None
    if not _depth_ok(value):
        raise FolioError(f"{what}: the header nests deeper than 64 levels")
    return value


def is_int(v):
    return (type(v) is int) and 0 <= v <= MAX_INT


# ---------------------------------------------------------------- layout

class TensorInfo:
    """One validated tensor entry: where its logical bytes are and how they are laid out."""

    __slots__ = ("name", "dtype", "scheme", "shape", "offset", "nbytes", "layout", "row_stride",
                 "rows_per_page", "block", "record_size", "rows", "width", "source_dtype",
                 "codec", "planes", "chunk_bytes", "stored_nbytes", "index_hash")

    def count(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def rel(self, r):
        """Offset of row r's record from the start of the logical bytes."""
        if self.layout == "paged":
            return (r // self.rows_per_page) * self.block + (r % self.rows_per_page) * self.row_stride
        return r * self.row_stride

    def stored_range(self):
        return self.offset, (self.stored_nbytes if self.codec else self.nbytes)


def _paged_layout(rs, align, page):
    a = align_up(rs, align)
    if a <= page:
        return a, page // a, page
    stride = align_up(rs, page)
    return stride, 1, stride


def _tensor(entry, i, version, page, where):
    if not isinstance(entry, dict):
        raise FolioError(f"{where}: field 'tensors[{i}]': not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not 1 <= len(name.encode("utf-8")) <= 4096:
        raise FolioError(f"{where}: field 'tensors[{i}].name': must be a string of 1-4096 bytes")
    at = f"{where}: tensor '{name}'"
    allowed = TENSOR_KEYS | (COMPRESSED_KEYS if version >= 2 else set())
    for key in entry:
        if key not in allowed:
            raise FolioError(f"{at}: unknown field '{key}'")
    dtype_name = entry.get("dtype")
    dtype = parse_dtype(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise FolioError(f"{at}: field 'dtype': unknown dtype {json.dumps(dtype_name)}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 32:
        raise FolioError(f"{at}: field 'shape': must be an array of at most 32 integers")
    product = 1
    for d in shape:
        if not is_int(d) or d > MAX_DIM:
            raise FolioError(f"{at}: field 'shape': {d} is not an integer at most 2^59")
        product *= d
        if product > MAX_DIM:
            raise FolioError(f"{at}: field 'shape': the element count exceeds 2^59")
    for key in ("offset", "nbytes"):
        if not is_int(entry.get(key)):
            raise FolioError(f"{at}: field '{key}': must be a non-negative integer")
    source = entry.get("source_dtype")
    if "source_dtype" in entry and (not isinstance(source, str) or source not in PLAIN):
        raise FolioError(f"{at}: field 'source_dtype': not a plain dtype")
    layout = entry.get("layout", "dense")
    layouts = ("dense", "paged", "records") if version >= 3 else ("dense", "paged")
    if layout not in layouts or not isinstance(layout, str):
        raise FolioError(f"{at}: field 'layout': {json.dumps(layout)} is not a layout of version {version}")

    t = TensorInfo()
    t.name, t.shape, t.offset, t.nbytes, t.layout = name, list(shape), entry["offset"], entry["nbytes"], layout
    t.source_dtype = source
    t.scheme = dtype if isinstance(dtype, Scheme) else None
    t.dtype = dtype_name
    t.width = shape[-1] if shape else 1
    count = product
    t.rows = _prod(shape[:-1])
    t.rows_per_page = t.block = None
    if layout == "dense":
        if t.scheme is not None:
            raise FolioError(f"{at}: a quantized tensor must be paged or records, not dense")
        if "row_stride" in entry or "rows_per_page" in entry:
            raise FolioError(f"{at}: a dense tensor has no row_stride or rows_per_page")
        if t.nbytes != count * PLAIN[dtype_name]:
            raise FolioError(f"{at}: field 'nbytes': {t.nbytes}, expected {count * PLAIN[dtype_name]}")
        if t.offset % 64:
            raise FolioError(f"{at}: field 'offset': {t.offset} is not a multiple of 64")
        t.record_size = t.width * PLAIN[dtype_name]
        t.row_stride = t.record_size
    else:
        if not shape:
            raise FolioError(f"{at}: a {layout} tensor needs rank 1 or more")
        if t.scheme is not None:
            rs = t.scheme.record_size(t.width)
            if rs is None:
                raise FolioError(f"{at}: rows of {t.width} values cannot be encoded as {dtype_name}")
            align = 4
        else:
            if layout == "records":
                raise FolioError(f"{at}: a records tensor must have a quantized dtype")
            rs = t.width * PLAIN[dtype_name]
            align = PLAIN[dtype_name]
        if rs <= 0:
            raise FolioError(f"{at}: rows of zero bytes cannot be paged")
        t.record_size = rs
        rows = t.rows
        if layout == "paged":
            stride, rpp, block = _paged_layout(rs, align, page)
            if entry.get("rows_per_page") != rpp or type(entry.get("rows_per_page")) is not int:
                raise FolioError(f"{at}: field 'rows_per_page': {entry.get('rows_per_page')}, expected {rpp}")
            t.rows_per_page, t.block = rpp, block
            offset_align = page
        else:
            stride = align_up(rs, 64)
            if "rows_per_page" in entry:
                raise FolioError(f"{at}: a records tensor has no rows_per_page")
            offset_align = 64
        if entry.get("row_stride") != stride or type(entry.get("row_stride")) is not int:
            raise FolioError(f"{at}: field 'row_stride': {entry.get('row_stride')}, expected {stride}")
        t.row_stride = stride
        expected = 0 if rows == 0 else t.rel(rows - 1) + rs
        if t.nbytes != expected:
            raise FolioError(f"{at}: field 'nbytes': {t.nbytes}, expected {expected}")
        # A compressed tensor's offset is that of its stored bytes: a multiple of 64 (15.1).
        if t.offset % offset_align and "codec" not in entry:
            raise FolioError(f"{at}: field 'offset': {t.offset} is not a multiple of {offset_align}")

    t.codec = entry.get("codec")
    t.planes = False
    t.chunk_bytes = t.stored_nbytes = t.index_hash = None
    if "codec" not in entry:
        for key in COMPRESSED_KEYS - {"codec"}:
            if key in entry:
                raise FolioError(f"{at}: field '{key}' without 'codec'")
    else:
        if t.codec not in ("lz4", "zstd"):
            raise FolioError(f"{at}: field 'codec': {json.dumps(t.codec)} is not lz4 or zstd")
        planes = entry.get("planes", False)
        if not isinstance(planes, bool):
            raise FolioError(f"{at}: field 'planes': not a boolean")
        if planes and (t.scheme is not None or PLAIN[dtype_name] not in (2, 4)):
            raise FolioError(f"{at}: field 'planes': only for plain dtypes of 2 or 4 bytes")
        t.planes = planes
        for key in ("chunk_bytes", "stored_nbytes"):
            if not is_int(entry.get(key)):
                raise FolioError(f"{at}: field '{key}': must be a non-negative integer")
        t.chunk_bytes, t.stored_nbytes = entry["chunk_bytes"], entry["stored_nbytes"]
        h = entry.get("index_hash")
        if not isinstance(h, str) or len(h) != 16 or any(c not in "0123456789abcdef" for c in h):
            raise FolioError(f"{at}: field 'index_hash': must be 16 lower-case hex digits")
        t.index_hash = int(h, 16)
        k = t.chunk_bytes
        if k <= 0:
            raise FolioError(f"{at}: field 'chunk_bytes': must be positive")
        if layout == "paged":
            if k % t.block or k > max(1 << 26, t.block):
                raise FolioError(f"{at}: field 'chunk_bytes': {k} is not whole pages of {t.block} bytes")
        else:
            size = PLAIN[dtype_name] if t.scheme is None else 1
            if k % size or k > (1 << 26):
                raise FolioError(f"{at}: field 'chunk_bytes': {k} is not whole elements")
        n = -(-t.nbytes // k)
        if not (n * 33 <= t.stored_nbytes <= t.nbytes + 32 * n):
            raise FolioError(f"{at}: field 'stored_nbytes': {t.stored_nbytes} cannot hold {n} chunks")
        if t.offset % 64:
            raise FolioError(f"{at}: field 'offset': {t.offset} is not a multiple of 64")
    return t


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


def _safe_path(name):
    if name.startswith("/") or "\\" in name:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


class Header:
    __slots__ = ("version", "page_size", "chunk_size", "data_size", "data_start", "metadata",
                 "tensors", "files", "file_size")


def parse_header(preamble, header_bytes, file_size, where, xxh3):
    """Checks 1-22 of section 9.2 (the caller checks 23, the end magic, and the hash in 7)."""
    h = Header()
    h.version = int.from_bytes(preamble[8:12], "little")
    if h.version not in (1, 2, 3):
        raise FolioError(f"{where}: unsupported version {h.version} (this reader knows 1, 2 and 3)")
    flags = int.from_bytes(preamble[12:16], "little")
    if flags != 0:
        raise FolioError(f"{where}: flags are {flags}, must be 0")
    length = int.from_bytes(preamble[16:24], "little")
    if not 1 <= length <= MAX_HEADER:
        raise FolioError(f"{where}: header length {length} is out of range (1 to 64 MiB)")
    if 32 + length > file_size:
        raise FolioError(f"{where}: truncated: the header needs {32 + length} bytes, the file has {file_size}")
    if len(header_bytes) != length:
        raise FolioError(f"{where}: truncated: could not read the header")
    stored = int.from_bytes(preamble[24:32], "little")
    if xxh3(header_bytes) != stored:
        raise FolioError(f"{where}: header hash mismatch (the header is damaged)")
    top = parse_json(header_bytes, where)
    if not isinstance(top, dict):
        raise FolioError(f"{where}: the header is not a JSON object")
    for key in top:
        if key not in TOP_KEYS:
            raise FolioError(f"{where}: unknown header field '{key}'")
    p = top.get("page_size")
    if not is_int(p) or p & (p - 1) or not 4096 <= p <= 1 << 26:
        raise FolioError(f"{where}: field 'page_size': {p} is not a power of two from 4096 to 2^26")
    c = top.get("chunk_size")
    if not is_int(c) or c & (c - 1) or not 4096 <= c <= 1 << 20:
        raise FolioError(f"{where}: field 'chunk_size': {c} is not a power of two from 4096 to 2^20")
    s = top.get("data_size")
    if not is_int(s) or s > (1 << 62) - 1:
        raise FolioError(f"{where}: field 'data_size': {s} is not an integer below 2^62")
    h.page_size, h.chunk_size, h.data_size = p, c, s
    meta = top.get("metadata")
    if "metadata" in top:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise FolioError(f"{where}: field 'metadata': every value must be a string")
        meta = dict(meta)
    h.metadata = meta
    tensors = top.get("tensors")
    if not isinstance(tensors, list) or len(tensors) > MAX_TENSORS:
        raise FolioError(f"{where}: field 'tensors': must be an array of at most 2^20 entries")
    h.tensors = []
    seen = set()
    for i, entry in enumerate(tensors):
        t = _tensor(entry, i, h.version, p, where)
        key = unicodedata.normalize("NFC", t.name)
        if key in seen:
            raise FolioError(f"{where}: tensor '{t.name}': listed twice")
        seen.add(key)
        h.tensors.append(t)
    files = top.get("files", [])
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise FolioError(f"{where}: field 'files': must be an array of at most 2^16 entries")
    h.files = []
    seen = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or any(k not in ("name", "offset", "nbytes") for k in entry):
            raise FolioError(f"{where}: field 'files[{i}]': must be an object of name, offset and nbytes")
        name = entry.get("name")
        if not isinstance(name, str) or not 1 <= len(name.encode("utf-8")) <= 4096 or not _safe_path(name):
            raise FolioError(f"{where}: field 'files[{i}].name': {json.dumps(name)} is not a safe relative path")
        key = unicodedata.normalize("NFC", name)
        if key in seen:
            raise FolioError(f"{where}: file '{name}': listed twice")
        seen.add(key)
        if not is_int(entry.get("offset")) or not is_int(entry.get("nbytes")):
            raise FolioError(f"{where}: file '{name}': offset and nbytes must be non-negative integers")
        if entry["offset"] % 64:
            raise FolioError(f"{where}: file '{name}': offset {entry['offset']} is not a multiple of 64")
        h.files.append((name, entry["offset"], entry["nbytes"]))
    if (32 + length) % p:
        raise FolioError(f"{where}: the data region does not start at a page boundary")
    items = [(t.name, *t.stored_range()) for t in h.tensors] + list(h.files)
    end = 0
    for name, off, n in items:
        if off + n > s:
            raise FolioError(f"{where}: '{name}': bytes [{off}, {off + n}) lie beyond data_size {s}")
        end = max(end, off + n)
    if end != s:
        raise FolioError(f"{where}: field 'data_size': {s}, but the last item ends at {end}")
    ranges = sorted((off, off + n, name) for name, off, n in items if n > 0)
    for (a0, a1, an), (b0, b1, bn) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise FolioError(f"{where}: '{an}' and '{bn}' overlap")
    chunks = -(-s // c)
    expected = 32 + length + s + 8 * chunks + 16
    if file_size != expected:
        what = "truncated" if file_size < expected else "trailing bytes"
        raise FolioError(f"{where}: {what}: the file has {file_size} bytes, its header describes {expected}")
    h.data_start = 32 + length
    h.file_size = file_size
    return h
