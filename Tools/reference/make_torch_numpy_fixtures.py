#!/usr/bin/env python3
"""Writes the PyTorch and NumPy fixtures of Tests/Fixtures/pytorch and Tests/Fixtures/numpy.

Valid inputs come from torch.save / np.save / np.savez themselves; beside each, a
safetensors file (written by the safetensors package) holds the same tensors, so that the
Swift tests compare Folio's reading with values that Python wrote. Malicious and malformed
inputs go to */corrupt/, each named after its defect; corrupt/expected.json maps every file
to a phrase its error message must contain.

Needs: torch, numpy, safetensors (PyPI). Deterministic: re-running rewrites the same bytes
except where torch and numpy embed a serialization id or the time.

    python3 Tools/reference/make_torch_numpy_fixtures.py
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import torch
from safetensors.torch import save_file as save_torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures")
PT = os.path.join(ROOT, "pytorch")
NP = os.path.join(ROOT, "numpy")
MARKER = "/tmp/folio_pickle_MARKER"


def put(z, name, data, compression=zipfile.ZIP_STORED):
    """zipfile's writestr with a fixed date, so that re-running gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = compression
    z.writestr(info, data)


def clean(d):
    os.makedirs(os.path.join(d, "corrupt"), exist_ok=True)
    for sub in (d, os.path.join(d, "corrupt")):
        for f in os.listdir(sub):
            if os.path.isfile(os.path.join(sub, f)):
                os.remove(os.path.join(sub, f))


# ---------------------------------------------------------------- PyTorch

def torch_state_dict():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(4, 3, generator=g)
    big = torch.randn(10, generator=g)
    sd = collections.OrderedDict()
    sd["layer.weight"] = base
    sd["layer.bias"] = torch.randn(4, generator=g)
    sd["half"] = torch.randn(2, 5, generator=g).to(torch.float16)
    sd["bf16"] = torch.randn(3, 4, generator=g).to(torch.bfloat16)
    sd["f64"] = torch.randn(3, generator=g).to(torch.float64)
    sd["ids"] = torch.arange(7, dtype=torch.int64) * 1_000_000_007
    sd["i32"] = torch.tensor([-5, 0, 2147483647], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 7], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["transposed"] = base.t()                  # a non-contiguous view sharing base's storage
    sd["strided"] = big[::3]                     # a strided 1-D view
    sd["permuted"] = torch.randn(2, 3, 5, generator=g).permute(2, 0, 1)[1:]  # 3-D, offset, no unit stride
    sd["slice"] = big[2:6].view(2, 2)            # contiguous, at a storage offset
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["fp8"] = torch.tensor([0.5, -2.0, 448.0]).to(torch.float8_e4m3fn)  # _rebuild_tensor_v3
    sd["u16"] = torch.tensor([1, 65535], dtype=torch.uint16)            # _rebuild_tensor_v3
    return sd


def reference(sd, path):
    save_torch({k: v.contiguous().clone() for k, v in sd.items()}, path)


def rezip(src, dst, compression):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            put(zout, info.filename, zin.read(info.filename), compression)


class StorageRef:
    def __init__(self, type_, key, numel):
        self.type, self.key, self.numel = type_, key, numel


class TensorRef:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", obj.type, obj.key, "cpu", obj.numel)
        return None


def handmade(path, root, storages, protocol=2, byteorder=b"little", pkl=None):
    """A torch.save-style zip with a pickle made here (so that it can lie)."""
    if pkl is None:
        buf = io.BytesIO()
        Pickler(buf, protocol=protocol).dump(root)
        pkl = buf.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        put(z, "archive/data.pkl", pkl)
        put(z, "archive/byteorder", byteorder)
        for key, data in storages.items():
            put(z, "archive/data/" + key, data)
        put(z, "archive/version", b"3\n")


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def make_torch():
    clean(PT)
    sd = torch_state_dict()
    torch.save(sd, os.path.join(PT, "state_dict.pt"))
    reference(sd, os.path.join(PT, "state_dict.safetensors"))
    torch.save(sd, os.path.join(PT, "protocol4.pt"), pickle_protocol=4)
    rezip(os.path.join(PT, "state_dict.pt"), os.path.join(PT, "deflated.pt"), zipfile.ZIP_DEFLATED)

    lin = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(lin.weight, 0.25)
    torch.nn.init.constant_(lin.bias, -1.5)
    module = torch.nn.Sequential(lin, torch.nn.LayerNorm(2))
    msd = module.state_dict()                    # OrderedDict with _metadata (pickled via BUILD)
    torch.save({"model": msd, "epoch": 3, "optimizer": {"lr": 0.1, "betas": (0.9, 0.99)},
                "params": [torch.nn.Parameter(torch.ones(2))]}, os.path.join(PT, "nested.bin"))
    nested = {("model." + k): v for k, v in msd.items()}
    nested["params.0"] = torch.ones(2)
    reference(nested, os.path.join(PT, "nested.safetensors"))

    f32 = torch.arange(6, dtype=torch.float32)
    data = f32.numpy().tobytes()
    handmade(os.path.join(PT, "handmade.pt"), {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2, 3), (3, 1))}, {"0": data})

    # ---- refused and malformed
    C = os.path.join(PT, "corrupt")
    expected = {}

    def bad(name, phrase):
        expected[name] = phrase
        return os.path.join(C, name)

    torch.save(sd, bad("legacy.pt", "legacy PyTorch format (before 1.6)"), _use_new_zipfile_serialization=False)
    handmade(bad("os_system.pt", "posix.system"), {"w": Evil(os.system, "touch " + MARKER)}, {})
    handmade(bad("os_system_protocol4.pt", "posix.system"), Evil(os.system, "touch " + MARKER), {}, protocol=4)
    handmade(bad("builtins_eval.pt", "__builtin__.eval"), {"w": Evil(eval, "open('%s', 'w')" % MARKER)}, {})
    # Protocol 2 writes Python 2 module names (__builtin__); protocol 4 the Python 3 ones.
    handmade(bad("subprocess_call.pt", "subprocess.call"), Evil(subprocess.call, ["touch", MARKER]), {}, protocol=4)
    good = io.BytesIO()
    Pickler(good, protocol=2).dump({"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2, 3), (3, 1))})
    good = good.getvalue()
    handmade(bad("truncated_pickle.pt", "truncated"), None, {"0": data}, pkl=good[: len(good) // 2])
    handmade(bad("unknown_opcode.pt", "unknown opcode 0xFF"), None, {"0": data}, pkl=good[:2] + b"\xff" + good[2:])
    # NEWOBJ: protocol 2's way of instantiating a class (refused even for allowed names).
    handmade(bad("newobj.pt", "NEWOBJ"), None, {}, pkl=b"\x80\x02ccollections\nOrderedDict\n)\x81.")
    handmade(bad("after_stop.pt", "after STOP"), None, {"0": data}, pkl=good + b"N")
    handmade(bad("storage_offset_out_of_range.pt", "reaches past its storage"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 5, (2, 3), (3, 1))}, {"0": data})
    handmade(bad("stride_out_of_range.pt", "reaches past its storage"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2, 3), (1, 3))}, {"0": data})
    handmade(bad("storage_size_mismatch.pt", "declares 8 elements"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 8), 0, (2, 3), (3, 1))}, {"0": data})
    handmade(bad("overflowing_shape.pt", "overflows"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2**40, 2**40, 2**40), (1, 1, 1))}, {"0": data})
    handmade(bad("overflowing_stride.pt", "reaches past its storage"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2, 3), (2**62, 1))}, {"0": data})
    handmade(bad("negative_stride.pt", "non-negative"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (2, 3), (-3, 1))}, {"0": data})
    handmade(bad("huge_integer.pt", "non-negative integer"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 2**70, (2, 3), (3, 1))}, {"0": data})
    handmade(bad("missing_storage.pt", "has no member archive/data/9"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "9", 6), 0, (2, 3), (3, 1))}, {"0": data})
    handmade(bad("storage_key_path.pt", "storage key"),
             {"w": TensorRef(StorageRef(torch.FloatStorage, "../0", 6), 0, (2, 3), (3, 1))}, {"0": data})
    handmade(bad("unknown_storage_type.pt", "torch.ComplexFloatStorage"),
             {"w": TensorRef(StorageRef(torch.ComplexFloatStorage, "0", 3), 0, (3,), (1,))}, {"0": data})
    handmade(bad("big_endian.pt", "little-endian"), {"w": TensorRef(StorageRef(torch.FloatStorage, "0", 6), 0, (6,), (1,))},
             {"0": data}, byteorder=b"big")
    handmade(bad("bad_memo.pt", "memo entry 9"), None, {}, pkl=b"\x80\x02h\x09.")
    handmade(bad("stack_underflow.pt", "stack underflow"), None, {}, pkl=b"\x80\x02s.")
    handmade(bad("dict_key_list.pt", "cannot be a dict key"), None, {}, pkl=b"\x80\x02}]Ns.")
    handmade(bad("deep_tuples.pt", "nested deeper"), None, {}, pkl=b"\x80\x02N" + b"\x85" * 1000 + b".")
    handmade(bad("self_containing.pt", "contains itself"), None, {}, pkl=b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.")
    with zipfile.ZipFile(bad("no_data_pkl.pt", "no <name>/data.pkl"), "w") as z:
        put(z, "archive/version", b"3\n")
    src = open(os.path.join(PT, "state_dict.pt"), "rb").read()
    open(bad("truncated_zip.pt", "zip"), "wb").write(src[: len(src) - 200])
    open(bad("not_zip.pt", "not a PyTorch checkpoint"), "wb").write(b"hello, this is not a checkpoint\n")
    with open(os.path.join(C, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)

    # The malicious fixtures are real: Python's own pickle would run the command.
    if os.path.exists(MARKER):
        os.remove(MARKER)
    with zipfile.ZipFile(os.path.join(C, "os_system.pt")) as z:
        pickle.loads(z.read("archive/data.pkl"))
    assert os.path.exists(MARKER), "os_system.pt should create the marker when unpickled by Python"
    os.remove(MARKER)


# ---------------------------------------------------------------- NumPy

def numpy_arrays():
    rng = np.random.default_rng(11)
    return {
        "f16": rng.standard_normal((3, 4)).astype(np.float16),
        "f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u8": np.array([0, 1, 255], dtype=np.uint8),
        "i16": np.array([-32768, 32767], dtype=np.int16),
        "u16": np.array([0, 65535], dtype=np.uint16),
        "i32": np.array([[-2147483648, 5], [6, 2147483647]], dtype=np.int32),
        "u32": np.array([4294967295], dtype=np.uint32),
        "i64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "model/embed": rng.standard_normal((8, 16)).astype(np.float32),
    }


def npy_bytes(a, version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def npy_raw(header, data=b"", version=(1, 0)):
    """A .npy with a header dict written by hand (padded as numpy pads it)."""
    h = header.encode("latin1")
    pre = 10 if version == (1, 0) else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    size = len(h).to_bytes(2 if version == (1, 0) else 4, "little")
    return b"\x93NUMPY" + bytes(version) + size + h + data


def raw_zip(name, data, offset32=None, extra=b"", flags=0, zip64_eocd_start=None, total=1, sizes32=None):
    """A one-member stored zip written byte by byte, so that its directory can lie."""
    crc = zlib.crc32(data)
    name = name.encode()
    csize = usize = len(data) if sizes32 is None else sizes32
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, 0, crc, csize, usize, len(name), 0) + name + data
    cd_start = len(local)
    off = 0 if offset32 is None else offset32
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 45 if extra else 20, flags, 0, 0, 0, crc, csize, usize,
                          len(name), len(extra), 0, 0, 0, 0, off) + name + extra
    out = local + central
    if zip64_eocd_start is not None:
        record_at = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, total, total, len(central), zip64_eocd_start)
        out += struct.pack("<IIQI", 0x07064B50, 0, record_at, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, total if total < 0xFFFF else 0xFFFF, total if total < 0xFFFF else 0xFFFF,
                       len(central), cd_start, 0)
    return out


def make_numpy():
    clean(NP)
    arrays = numpy_arrays()
    np.savez(os.path.join(NP, "arrays.npz"), **arrays)
    np.savez_compressed(os.path.join(NP, "arrays_compressed.npz"), **arrays)
    # (np.ascontiguousarray would turn the 0-d array into shape [1].)
    save_torch({k: torch.from_numpy(v.copy()) for k, v in arrays.items()}, os.path.join(NP, "arrays.safetensors"))
    np.save(os.path.join(NP, "f32.npy"), arrays["f32"])
    for v in [(2, 0), (3, 0)]:
        open(os.path.join(NP, "f16_v%d.npy" % v[0]), "wb").write(npy_bytes(arrays["f16"], v))
    np.save(os.path.join(NP, "scalar.npy"), arrays["scalar"])
    # A member larger than one inflation window would be too big to ship; the tests shrink
    # the window instead. This one just has many rows.
    np.savez_compressed(os.path.join(NP, "rows_compressed.npz"), table=np.arange(16 * 300, dtype=np.float32).reshape(300, 16))

    C = os.path.join(NP, "corrupt")
    expected = {}

    def bad(name, phrase, content):
        expected[name] = phrase
        open(os.path.join(C, name), "wb").write(content)

    f4 = np.arange(3, dtype="<f4").tobytes()
    good = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"
    bad("bad_magic.npy", "neither a .npy", b"\x93NUMPX\x01\x00" + npy_raw(good, f4)[8:])
    bad("version_4.npy", "format version 4.0", npy_raw(good, f4)[:6] + b"\x04\x00" + npy_raw(good, f4)[8:])
    bad("truncated_preamble.npy", "truncated", b"\x93NUMPY\x01")
    bad("header_past_end.npy", "truncated", npy_raw(good, f4)[:40])
    bad("huge_header_length.npy", "exceeds the limit", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f" + b" " * 20)
    bad("big_endian.npy", "big-endian", npy_raw("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", f4))
    bad("fortran_order.npy", "Fortran order", npy_raw("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", f4))
    bad("object_dtype.npy", "pickled Python objects", npy_raw("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x80\x02N."))
    bad("complex_dtype.npy", "'<c8' is not supported", npy_raw("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4 * 2))
    bad("structured_dtype.npy", "structured dtype", npy_raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", f4))
    bad("shape_not_tuple.npy", "not a tuple", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", f4))
    bad("negative_dim.npy", "non-negative integer", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f4))
    bad("overflowing_shape.npy", "overflows", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", f4))
    bad("integer_overflow.npy", "integer overflows", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", f4))
    bad("missing_key.npy", "lacks 'fortran_order'", npy_raw("{'descr': '<f4', 'shape': (3,), }", f4))
    bad("extra_key.npy", "unexpected key 'extra'", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1, }", f4))
    bad("duplicate_key.npy", "duplicate key", npy_raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4))
    d = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}"
    bad("no_newline.npy", "newline", b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d + f4)
    bad("not_a_dict.npy", "expected '{'", npy_raw("['descr', '<f4']", f4))
    bad("truncated_data.npy", "truncated", npy_raw(good, f4[:8]))
    bad("trailing_bytes.npy", "bytes after the array data", npy_raw(good, f4 + b"\0\0\0\0"))
    buf = io.BytesIO()
    np.savez(buf, names=np.array(["a", None], dtype=object), ok=np.zeros(2))
    bad("object_array.npz", "pickled Python objects", buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        put(z, "notes.txt", b"hello")
    bad("not_npy_member.npz", "not a .npy array", buf.getvalue())
    member = npy_raw(good, f4)
    bad("valid_handmade_zip_control.npz", "NOT AN ERROR", raw_zip("a.npy", member))
    del expected["valid_handmade_zip_control.npz"]
    os.rename(os.path.join(C, "valid_handmade_zip_control.npz"), os.path.join(NP, "handmade.npz"))
    # Offsets and sizes past 2^63 (ZIPFoundation would trap seeking to them), in zip64 fields.
    bad("zip64_local_offset_huge.npz", "runs past the end of the file",
        raw_zip("a.npy", member, offset32=0xFFFFFFFF, extra=struct.pack("<HHQ", 1, 8, 2**63 + 5)))
    bad("zip64_directory_start_huge.npz", "runs past the end of the file", raw_zip("a.npy", member, zip64_eocd_start=2**63 + 1))
    bad("zip64_descriptor_size_huge.npz", "runs past the end of the file",
        raw_zip("a.npy", member, flags=8, sizes32=0xFFFFFFFF, extra=struct.pack("<HHQQ", 1, 16, 2**64 - 10, 2**64 - 10)))
    bad("member_count_huge.npz", "claims", raw_zip("a.npy", member, total=40000))
    bad("member_count_short.npz", "entry 1", raw_zip("a.npy", member, total=2))
    whole = open(os.path.join(NP, "arrays.npz"), "rb").read()
    bad("truncated.npz", "zip", whole[: len(whole) // 2])
    with open(os.path.join(C, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    make_torch()
    make_numpy()
    print("wrote", PT, "and", NP, file=sys.stderr)
