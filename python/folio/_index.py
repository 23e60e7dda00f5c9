"""A sharded model: NAME.folio.index.json and its shards (Formats/FOREIGN.md section 7)."""

import os

import numpy as np

from ._errors import FolioError
from ._file import FolioFile, _check_framework, rows_first_key, to_framework
from ._header import MAX_DIM, is_int, parse_dtype, parse_json

MAX_INDEX = 256 << 20


class _Part:
    __slots__ = ("shard", "tensor", "start", "end")


class _Entry:
    __slots__ = ("name", "dtype", "shape", "parts", "rows", "width")


class FolioIndex:
    """An open sharded model; the same reading methods as FolioFile, across shards."""

    def __init__(self, path, framework="np", exotic="float32"):
        self.path = os.fspath(path)
        self._framework = _check_framework(framework, exotic)
        self._exotic = exotic
        where = self.path
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_INDEX + 1)
        except OSError as e:
            raise FolioError(f"{where}: cannot open: {e.strerror}") from None
        if len(raw) > MAX_INDEX:
            raise FolioError(f"{where}: the index is larger than 256 MiB")
        top = parse_json(raw, where)
        if not isinstance(top, dict):
            raise FolioError(f"{where}: not a JSON object")
        if top.get("format") != "folio-index":
            raise FolioError(f"{where}: field 'format': must be \"folio-index\"")
        if type(top.get("version")) is not int or top.get("version") != 1:
            raise FolioError(f"{where}: field 'version': must be 1")
        shards = top.get("shards")
        if not isinstance(shards, list) or not shards:
            raise FolioError(f"{where}: field 'shards': must be a non-empty array")
        folder = os.path.dirname(self.path)
        self._shards = {}
        for i, name in enumerate(shards):
            if not isinstance(name, str) or not name.endswith(".folio") or "/" in name or name in self._shards:
                raise FolioError(f"{where}: field 'shards[{i}]': {name!r} is not a distinct shard file name")
            self._shards[name] = FolioFile(os.path.join(folder, name), framework, exotic)
        meta = top.get("metadata")
        if meta is not None and (not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values())):
            raise FolioError(f"{where}: field 'metadata': every value must be a string")
        self._metadata = None if meta is None else dict(meta)
        files = top.get("files", {})
        if not isinstance(files, dict):
            raise FolioError(f"{where}: field 'files': must be an object")
        for name, shard in files.items():
            if shard not in self._shards or name not in self._shards[shard].files():
                raise FolioError(f"{where}: field 'files.{name}': shard {shard!r} holds no such file")
        self._file_shard = dict(files)
        tensors = top.get("tensors")
        if not isinstance(tensors, list):
            raise FolioError(f"{where}: field 'tensors': must be an array")
        self._entries = {}
        used = set()
        for i, e in enumerate(tensors):
            at = f"{where}: field 'tensors[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in self._entries:
                raise FolioError(f"{at}.name': missing or listed twice")
            entry = _Entry()
            entry.name = e["name"]
            entry.dtype = e.get("dtype")
            if not isinstance(entry.dtype, str) or parse_dtype(entry.dtype) is None:
                raise FolioError(f"{at}.dtype': unknown dtype {entry.dtype!r}")
            shape = e.get("shape")
            if not isinstance(shape, list) or len(shape) > 32:
                raise FolioError(f"{at}.shape': must be an array of at most 32 integers")
            product = 1
            for d in shape:
                if not is_int(d) or d > MAX_DIM or product * d > MAX_DIM:
                    raise FolioError(f"{at}.shape': {shape} exceeds 2^59 elements")
                product *= d
            entry.shape = list(shape)
            entry.width = shape[-1] if shape else 1
            entry.rows = 1 if not shape else (0 if entry.width == 0 else product // entry.width)
            parts = e.get("parts")
            if not isinstance(parts, list) or not parts:
                raise FolioError(f"{at}.parts': must be a non-empty array")
            entry.parts = []
            covered = 0
            for j, p in enumerate(parts):
                pat = f"{at}.parts[{j}]"
                if not isinstance(p, dict) or p.get("shard") not in self._shards:
                    raise FolioError(f"{pat}.shard': not a listed shard")
                shard = self._shards[p["shard"]]
                if not isinstance(p.get("tensor"), str) or p["tensor"] not in shard:
                    raise FolioError(f"{pat}.tensor': {p.get('tensor')!r} is not a tensor of {p['shard']}")
                if (p["shard"], p["tensor"]) in used:
                    raise FolioError(f"{pat}': the shard tensor is used twice")
                used.add((p["shard"], p["tensor"]))
                info = shard.tensor_info(p["tensor"])
                if info["dtype"] != entry.dtype:
                    raise FolioError(f"{pat}': dtype {info['dtype']} differs from {entry.dtype}")
                part = _Part()
                part.shard, part.tensor = shard, p["tensor"]
                if "rows" in p:
                    r = p["rows"]
                    ok = (isinstance(r, list) and len(r) == 2 and all(is_int(x) for x in r)
                          and r[0] == covered and r[0] < r[1] <= entry.rows
                          and info["shape"] == [r[1] - r[0], entry.width])
                    if not ok:
                        raise FolioError(f"{pat}.rows': must continue at row {covered} and match the "
                                         f"shard tensor's shape {info['shape']}")
                    part.start, part.end = r
                else:
                    if len(parts) != 1 or info["shape"] != entry.shape:
                        raise FolioError(f"{pat}': a part without rows must be the only one, of shape {entry.shape}")
                    part.start, part.end = 0, entry.rows
                covered = part.end
                entry.parts.append(part)
            if covered != entry.rows:
                raise FolioError(f"{at}.parts': cover rows 0..<{covered}, the tensor has {entry.rows}")
            self._entries[entry.name] = entry
        for sname, shard in self._shards.items():
            for tname in shard.keys():
                if (sname, tname) not in used:
                    raise FolioError(f"{shard.path}: tensor '{tname}': is not listed in the index "
                                     f"{os.path.basename(self.path)}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for s in self._shards.values():
            s.close()

    def keys(self):
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def metadata(self):
        return None if self._metadata is None else dict(self._metadata)

    def files(self):
        return list(self._file_shard)

    def get_file(self, name):
        if name not in self._file_shard:
            raise FolioError(f"{self.path}: no embedded file '{name}'")
        return self._shards[self._file_shard[name]].get_file(name)

    def config(self):
        for s in self._shards.values():
            c = s.config()
            if c is not None:
                return c
        return None

    def _entry(self, name):
        e = self._entries.get(name)
        if e is None:
            raise FolioError(f"{self.path}: no tensor '{name}'")
        return e

    def tensor_info(self, name):
        e = self._entry(name)
        return {"name": e.name, "dtype": e.dtype, "shape": list(e.shape),
                "parts": [dict(shard=os.path.basename(p.shard.path), tensor=p.tensor, rows=[p.start, p.end])
                          for p in e.parts]}

    def get_tensor(self, name):
        e = self._entry(name)
        if len(e.parts) == 1:
            p = e.parts[0]
            return p.shard.get_tensor(p.tensor)
        pieces = [p.shard._array(p.shard._info(p.tensor)).reshape(p.end - p.start, e.width) for p in e.parts]
        whole = np.concatenate(pieces).reshape(e.shape)
        return to_framework(whole, e.dtype, self._framework, self._exotic)

    def get_rows(self, name, ids):
        e = self._entry(name)
        ids = np.asarray(ids).astype(np.int64).reshape(-1)
        bad = (ids < 0) | (ids >= e.rows)
        if bad.any():
            raise FolioError(f"{self.path}: tensor '{name}': row {int(ids[bad][0])} is out of range (0..<{e.rows})")
        out = None
        for p in e.parts:
            mask = (ids >= p.start) & (ids < p.end)
            if not mask.any():
                continue
            t = p.shard._info(p.tensor)
            values = p.shard._values(t, p.shard._records(t, ids[mask] - p.start))
            if out is None:
                out = np.empty((ids.size, e.width), values.dtype)
            out[mask] = values
        if out is None:
            first = e.parts[0]
            t = first.shard._info(first.tensor)
            out = first.shard._values(t, np.zeros((0, t.record_size), np.uint8))
        return to_framework(out, e.dtype, self._framework, self._exotic)

    def get_slice(self, name):
        e = self._entry(name)
        if len(e.parts) == 1:
            p = e.parts[0]
            return p.shard.get_slice(p.tensor)
        return _SplitSlice(self, e)

    def verify(self):
        """Verify every shard; raises FolioError naming the shard and chunk of the first damage."""
        return {os.path.basename(s.path): s.verify() for s in self._shards.values()}


class _SplitSlice:
    """Indexing into a table split over shards (always rank 2: FOREIGN.md 7.2)."""

    def __init__(self, owner, entry):
        self._owner, self._e = owner, entry

    def get_shape(self):
        return list(self._e.shape)

    def get_dtype(self):
        return self._e.dtype

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if not rows_first_key(key):
            return self._owner.get_tensor(self._e.name)[key]
        picked = np.arange(self._e.rows, dtype=np.int64)[key[0]]
        scalar = np.ndim(picked) == 0
        values = self._owner.get_rows(self._e.name, np.atleast_1d(picked))
        return values[(0,) + key[1:]] if scalar else values[(slice(None),) + key[1:]]
