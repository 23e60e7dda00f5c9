"""One .folio file: opened by its preamble, header and last 8 bytes, read through a mapping."""

import json
import mmap
import os
from collections import OrderedDict

import numpy as np
import xxhash

from . import _decode
from ._errors import FolioError
from ._header import END_MAGIC, MAGIC, parse_header

_INDEX_ENTRY = 32
_CACHE_BYTES = 64 << 20


def xxh3(data):
    return xxhash.xxh3_64_intdigest(data)


def _check_framework(framework, exotic):
    if framework not in ("np", "numpy", "pt", "torch"):
        raise FolioError(f"framework '{framework}': expected 'np' or 'pt'")
    if exotic not in ("float32", "bits"):
        raise FolioError(f"exotic '{exotic}': expected 'float32' or 'bits'")
    if framework in ("pt", "torch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise FolioError("framework 'pt' needs PyTorch (pip install torch)") from None
        return "pt"
    return "np"


def to_framework(array, dtype, framework, exotic):
    """The array handed to the caller: NumPy as is, or a torch tensor sharing its memory."""
    if framework == "np":
        if dtype in _decode.EXOTIC and exotic == "float32" and array.dtype != np.float32:
            return _decode.widen(dtype, array)
        return array
    import torch
    if dtype in _decode.EXOTIC and array.dtype != np.float32:
        torch_dtype = {"BF16": torch.bfloat16, "F8_E4M3": torch.float8_e4m3fn,
                       "F8_E5M2": torch.float8_e5m2}[dtype]
        signed = array.view(np.int16 if dtype == "BF16" else np.int8)
        return torch.from_numpy(signed).view(torch_dtype)
    return torch.from_numpy(array)


class _ChunkIndex:
    __slots__ = ("offsets", "sizes", "stored_hashes", "raw_hashes")


class FolioFile:
    """An open .folio file. Use through `folio.safe_open`."""

    def __init__(self, path, framework="np", exotic="float32"):
        self.path = os.fspath(path)
        self._where = self.path
        self._framework = _check_framework(framework, exotic)
        self._exotic = exotic
        self._mm = None
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise FolioError(f"{self.path}: cannot open: {e.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            preamble = f.read(32)
            if len(preamble) < 8 and MAGIC.startswith(preamble):
                raise FolioError(f"{self.path}: truncated: {size} bytes, too short for the magic")
            if preamble[:8] != MAGIC:
                hint = ""
                if len(preamble) >= 9 and preamble[8:9] == b"{":
                    hint = "; it looks like safetensors: convert it with `folio convert`"
                raise FolioError(f"{self.path}: not a Folio file (bad magic bytes){hint}")
            if len(preamble) < 32:
                raise FolioError(f"{self.path}: truncated: {size} bytes, the preamble needs 32")
            length = int.from_bytes(preamble[16:24], "little")
            header = b""
            if 1 <= length <= (1 << 26) and 32 + length <= size:
                header = f.read(length)
            self._h = parse_header(preamble, header, size, self.path, xxh3)
            f.seek(size - 8)
            if f.read(8) != END_MAGIC:
                raise FolioError(f"{self.path}: the end magic FOLIOEND is missing (truncated or damaged)")
            # numpy gets read-only views of a read-only mapping; torch (which wants writable
            # memory) views of a private copy-on-write one, whose writes never reach the file.
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY if self._framework == "pt" else mmap.ACCESS_READ)
            self._verify_mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self._framework == "pt" else self._mm
        self._u8 = np.frombuffer(self._mm, np.uint8)
        self._tensors = OrderedDict((t.name, t) for t in self._h.tensors)
        self._files = OrderedDict((n, (o, s)) for n, o, s in self._h.files)
        self._indexes = {}
        self._cache = OrderedDict()
        self._cache_bytes = 0

    # -------------------------------------------------------------- context and basics

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Drops this reader's references to the mapping; arrays already returned keep it alive."""
        self._u8 = None
        self._mm = None
        self._verify_mm = None

    def _bytes(self):
        if self._u8 is None:
            raise FolioError(f"{self.path}: the file is closed")
        return self._u8

    @property
    def version(self):
        return self._h.version

    @property
    def page_size(self):
        return self._h.page_size

    def keys(self):
        """Tensor names in header order."""
        return list(self._tensors)

    def __contains__(self, name):
        return name in self._tensors

    def metadata(self):
        """The string map (safetensors' __metadata__), or None when the header has none."""
        return None if self._h.metadata is None else dict(self._h.metadata)

    def files(self):
        """Names of the embedded files (config.json, tokenizer.json, ...)."""
        return list(self._files)

    def get_file(self, name):
        """The bytes of an embedded file."""
        if name not in self._files:
            raise FolioError(f"{self.path}: no embedded file '{name}'")
        off, n = self._files[name]
        start = self._h.data_start + off
        return self._bytes()[start:start + n].tobytes()

    def config(self):
        """The embedded config.json as a dict, or None when the file carries none."""
        if "config.json" not in self._files:
            return None
        try:
            return json.loads(self.get_file("config.json"))
        except ValueError as e:
            raise FolioError(f"{self.path}: file 'config.json': not valid JSON: {e}") from None

    def _info(self, name):
        t = self._tensors.get(name)
        if t is None:
            raise FolioError(f"{self.path}: no tensor '{name}'")
        return t

    def tensor_info(self, name):
        """The header entry of a tensor as a dict (dtype, shape, layout, offsets, codec)."""
        t = self._info(name)
        out = {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "layout": t.layout,
               "offset": self._h.data_start + t.offset, "nbytes": t.nbytes}
        if t.layout != "dense":
            out["row_stride"] = t.row_stride
        if t.rows_per_page is not None:
            out["rows_per_page"] = t.rows_per_page
        if t.source_dtype:
            out["source_dtype"] = t.source_dtype
        if t.codec:
            out.update(codec=t.codec, planes=t.planes, chunk_bytes=t.chunk_bytes,
                       stored_nbytes=t.stored_nbytes)
        return out

    # -------------------------------------------------------------- compressed tensors

    def _index(self, t):
        ix = self._indexes.get(t.name)
        if ix is not None:
            return ix
        n = -(-t.nbytes // t.chunk_bytes)
        start = self._h.data_start + t.offset + t.stored_nbytes - _INDEX_ENTRY * n
        raw = self._bytes()[start:start + _INDEX_ENTRY * n]
        at = f"{self.path}: tensor '{t.name}'"
        if xxh3(raw) != t.index_hash:
            raise FolioError(f"{at}: the chunk index is damaged (its hash does not match index_hash)")
        entries = raw.view("<u8").reshape(n, 4) if n else np.zeros((0, 4), np.uint64)
        expected = 0
        for i in range(n):
            off, size = int(entries[i, 0]), int(entries[i, 1])
            raw_size = min(t.chunk_bytes, t.nbytes - i * t.chunk_bytes)
            if off != expected or not 1 <= size <= raw_size:
                raise FolioError(f"{at}: chunk {i}: index entry (offset {off}, size {size}) is inconsistent")
            expected += size
        if expected != t.stored_nbytes - _INDEX_ENTRY * n:
            raise FolioError(f"{at}: the chunk index does not end where the stored chunks do")
        ix = _ChunkIndex()
        ix.offsets, ix.sizes = entries[:, 0].astype(np.int64), entries[:, 1].astype(np.int64)
        ix.stored_hashes, ix.raw_hashes = entries[:, 2].copy(), entries[:, 3].copy()
        self._indexes[t.name] = ix
        return ix

    def _chunk(self, t, i, use_cache=True):
        """The logical bytes of chunk i of a compressed tensor, checked by both hashes."""
        key = (t.name, i)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        ix = self._index(t)
        raw_size = min(t.chunk_bytes, t.nbytes - i * t.chunk_bytes)
        start = self._h.data_start + t.offset + int(ix.offsets[i])
        stored = self._bytes()[start:start + int(ix.sizes[i])]
        at = f"{self.path}: tensor '{t.name}': chunk {i}"
        if xxh3(stored) != int(ix.stored_hashes[i]):
            raise FolioError(f"{at}: stored bytes are damaged (hash mismatch)")
        if stored.size == raw_size:
            data = stored
        else:
            try:
                raw = _decode.decompress(t.codec, stored, raw_size)
            except ValueError as e:
                raise FolioError(f"{at}: {t.codec} data is damaged: {e}") from None
            if len(raw) != raw_size:
                raise FolioError(f"{at}: decompresses to {len(raw)} bytes, expected {raw_size}")
            if t.planes:
                raw = _decode.unplane(raw, 2 if t.dtype in ("F16", "BF16", "U16", "I16") else 4)
            data = np.frombuffer(raw, np.uint8)
        if xxh3(data) != int(ix.raw_hashes[i]):
            raise FolioError(f"{at}: decompressed bytes are damaged (hash mismatch)")
        if use_cache:
            self._cache[key] = data
            self._cache_bytes += data.size
            while self._cache_bytes > _CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.size
        return data

    def _logical(self, t):
        """All logical bytes of a tensor: a view of the mapping, or the chunks decompressed."""
        if not t.codec:
            start = self._h.data_start + t.offset
            return self._bytes()[start:start + t.nbytes]
        n = -(-t.nbytes // t.chunk_bytes)
        out = np.empty(t.nbytes, np.uint8)
        for i in range(n):
            out[i * t.chunk_bytes:i * t.chunk_bytes + min(t.chunk_bytes, t.nbytes - i * t.chunk_bytes)] = \
                self._chunk(t, i, use_cache=False)
        return out

    def _logical_range(self, t, start, length):
        if not t.codec:
            s = self._h.data_start + t.offset + start
            return self._bytes()[s:s + length]
        k = t.chunk_bytes
        first, last = start // k, (start + length - 1) // k
        if first == last:
            c = self._chunk(t, first)
            return c[start - first * k:start - first * k + length]
        parts = [self._chunk(t, i) for i in range(first, last + 1)]
        joined = np.concatenate(parts)
        return joined[start - first * k:start - first * k + length]

    # -------------------------------------------------------------- rows and values

    def _all_records(self, t):
        """[R, RS] uint8 records of a paged or records tensor (views where the layout allows)."""
        base = self._logical(t)
        rs, rows = t.record_size, t.rows
        if rows == 0:
            return np.zeros((0, rs), np.uint8)
        strided = np.lib.stride_tricks.as_strided
        if t.layout == "records":
            return strided(base, (rows, rs), (t.row_stride, 1), writeable=False)
        rpp, block = t.rows_per_page, t.block
        full = rows // rpp
        pieces = []
        if full:
            pieces.append(strided(base, (full, rpp, rs), (block, t.row_stride, 1),
                                  writeable=False).reshape(full * rpp, rs))
        rest = rows - full * rpp
        if rest:
            pieces.append(strided(base[full * block:], (rest, rs), (t.row_stride, 1), writeable=False))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _row_ids(self, t, ids):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            ids = ids.reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise FolioError(f"{self.path}: tensor '{t.name}': row ids must be integers")
        ids = ids.astype(np.int64)
        bad = (ids < 0) | (ids >= t.rows)
        if bad.any():
            r = int(ids[bad][0])
            raise FolioError(f"{self.path}: tensor '{t.name}': row {r} is out of range (0..<{t.rows})")
        return ids

    def _records(self, t, ids):
        """[n, RS] uint8 records of the rows `ids` (already checked)."""
        rs = t.record_size
        if t.layout == "dense":
            starts = ids * t.row_stride
        elif t.layout == "records":
            starts = ids * t.row_stride
        else:
            starts = (ids // t.rows_per_page) * t.block + (ids % t.rows_per_page) * t.row_stride
        if not t.codec:
            base = self._logical(t)
            return base[starts[:, None] + np.arange(rs, dtype=np.int64)]
        out = np.empty((ids.size, rs), np.uint8)
        for j, s in enumerate(starts.tolist()):
            out[j] = self._logical_range(t, s, rs)
        return out

    def _values(self, t, records):
        """Values [n, W] of n records: dequantized float32, or the plain dtype's values."""
        if t.scheme is not None:
            return _decode.dequantize(t.scheme, records, t.width)
        dtype = _decode.NUMPY[t.dtype]
        size = np.dtype(dtype).itemsize
        body = np.ascontiguousarray(records[:, :t.width * size])
        return body.view(dtype).reshape(records.shape[0], t.width)

    def _array(self, t):
        """The whole tensor as an array of its shape (stored bits for BF16 / F8)."""
        if t.layout == "dense":
            dtype = _decode.NUMPY[t.dtype]
            if t.count() == 0:
                return np.zeros(t.shape, dtype)
            if not t.codec:
                return np.frombuffer(self._mm, dtype, t.count(),
                                     self._h.data_start + t.offset).reshape(t.shape)
            return self._logical(t).view(dtype).reshape(t.shape)
        values = self._values(t, self._all_records(t))
        return values.reshape(t.shape)

    def get_tensor(self, name):
        """The tensor: a zero-copy view for dense plain tensors, dequantized float32 for quantized ones."""
        self._bytes()
        t = self._info(name)
        return to_framework(self._array(t), t.dtype, self._framework, self._exotic)

    def get_rows(self, name, ids):
        """Rows `ids` of the tensor seen as [R, W] (an embedding lookup), dequantized for quantized dtypes."""
        self._bytes()
        t = self._info(name)
        ids = self._row_ids(t, ids)
        values = self._values(t, self._records(t, ids))
        return to_framework(values, t.dtype, self._framework, self._exotic)

    def get_slice(self, name):
        """A lazy slice object, as safetensors': get_shape(), get_dtype() and indexing."""
        return TensorSlice(self, self._info(name))

    # -------------------------------------------------------------- verification

    def _holders(self, start, end):
        names = []
        for t in self._h.tensors:
            off, n = t.stored_range()
            if n and off < end and start < off + n:
                names.append(f"tensor '{t.name}'")
        for n, off, size in self._h.files:
            if size and off < end and start < off + size:
                names.append(f"file '{n}'")
        return ", ".join(names) if names else "padding"

    def verify(self):
        """Hash every data chunk, the chunk table and every compressed chunk.

        Returns {"chunks": C, "data_bytes": S} for an intact file; raises FolioError naming
        the first damaged chunk (its absolute byte range and what it holds) and how many more.
        The file's own bytes are hashed, never what a caller wrote into a returned tensor.
        """
        self._bytes()
        u8 = np.frombuffer(self._verify_mm, np.uint8)
        h = self._h
        d, s, c = h.data_start, h.data_size, h.chunk_size
        count = -(-s // c)
        table = u8[d + s:d + s + 8 * count]
        stored = int.from_bytes(u8[h.file_size - 16:h.file_size - 8].tobytes(), "little")
        if xxh3(table) != stored:
            raise FolioError(f"{self.path}: the chunk table is damaged (bytes [{d + s}, {h.file_size - 8}))")
        hashes = table.view("<u8")
        damaged = []
        for i in range(count):
            a, b = d + i * c, d + min((i + 1) * c, s)
            if xxh3(u8[a:b]) != int(hashes[i]):
                damaged.append((i, a, b))
        if damaged:
            i, a, b = damaged[0]
            more = f"; {len(damaged) - 1} more damaged chunks" if len(damaged) > 1 else ""
            raise FolioError(f"{self.path}: chunk {i} (bytes [{a}, {b})) is damaged; it holds "
                             f"{self._holders(a - d, b - d)}{more}")
        for t in h.tensors:
            if t.codec:
                for i in range(-(-t.nbytes // t.chunk_bytes)):
                    self._chunk(t, i, use_cache=False)
        return {"chunks": count, "data_bytes": s}


def rows_first_key(key):
    """Whether an index tuple picks rows by its first entry and narrows the rest with ints and
    slices only (then only those rows need reading); Ellipsis, None, empty or nd index keys
    are left to numpy on the whole tensor."""
    return bool(key) and all(isinstance(k, (int, np.integer, slice)) or
                             (i == 0 and isinstance(k, (list, np.ndarray)) and np.ndim(k) == 1) for i, k in enumerate(key))


class TensorSlice:
    """Lazy indexing into one tensor; only the rows asked for are read and decoded."""

    def __init__(self, owner, info):
        self._owner, self._t = owner, info

    def get_shape(self):
        return list(self._t.shape)

    def get_dtype(self):
        return self._t.dtype

    def __getitem__(self, key):
        o, t = self._owner, self._t
        if not isinstance(key, tuple):
            key = (key,)
        if t.layout == "dense" and not t.codec:
            array = o._array(t)[key]
            return to_framework(_contiguous(array) if o._framework == "pt" else array,
                                t.dtype, o._framework, o._exotic)
        if not t.shape or not rows_first_key(key):
            # Ellipsis, None, multi-dimensional index arrays: numpy's own semantics on the whole tensor.
            return to_framework(_contiguous(o._array(t)[key]), t.dtype, o._framework, o._exotic)
        first, rest = key[0], key[1:]
        outer = t.shape[0]
        picked = np.arange(outer, dtype=np.int64)[first]
        scalar = np.ndim(picked) == 0
        picked = np.atleast_1d(picked)
        per = t.rows // outer if outer else 0
        if len(t.shape) == 1:
            ids = np.zeros(1, np.int64)
            values = o._values(t, o._records(t, ids)).reshape(-1)[picked]
            out = values[0] if scalar else values
            if rest:
                raise IndexError("too many indices for a tensor of rank 1")
        else:
            ids = (picked[:, None] * per + np.arange(per, dtype=np.int64)).reshape(-1)
            values = o._values(t, o._records(t, ids)).reshape([picked.size] + t.shape[1:])
            out = values[(0,) + rest] if scalar else values[(slice(None),) + rest]
        return to_framework(_contiguous(out), t.dtype, o._framework, o._exotic)


def _contiguous(a):
    """A C-contiguous copy where needed; keeps 0-d arrays 0-d (np.ascontiguousarray does not)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")
