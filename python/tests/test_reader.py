"""The Python reader against the Swift tool: every golden file, every test fixture and a set
of conversions read equal (bitwise) to what `folio convert` and `folio rows` give.

Run from the repository root:  FOLIO=.build/debug/folio python -m unittest discover python/tests
"""

import glob
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import folio

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLIO = os.environ.get("FOLIO", os.path.join(ROOT, ".build", "debug", "folio"))
GOLDEN = sorted(glob.glob(os.path.join(ROOT, "Formats", "golden", "*.folio")))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "U32": 4, "I32": 4, "U64": 8,
                      "I64": 8, "F16": 2, "BF16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def run_folio(*args):
    done = subprocess.run([FOLIO, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"folio {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def read_safetensors(path):
    """name -> (dtype, shape, raw bytes), and __metadata__ (None when absent)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], data[base + a:base + b])
    return out, meta


def stored_bits(reader, name):
    """The tensor as bytes: stored bits for plain dtypes, little-endian float32 for quantized."""
    x = reader.get_tensor(name)
    return np.ascontiguousarray(x).tobytes()


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class ReaderCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(FOLIO):
            raise unittest.SkipTest(f"no folio binary at {FOLIO} (build it, or set FOLIO)")
        cls.tmp = tempfile.mkdtemp(prefix="folio-py-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_equal_to_export(self, path):
        """Every tensor of `path` (file or index) equals the Swift tool's safetensors export."""
        out = os.path.join(self.tmp, "export.safetensors")
        if os.path.exists(out):
            os.remove(out)
        run_folio("convert", path, out)
        expected, meta = read_safetensors(out)
        with folio.safe_open(path, exotic="bits") as f:
            self.assertEqual(sorted(f.keys()), sorted(expected), path)
            self.assertEqual(f.metadata(), meta, path)
            for name in f.keys():
                dtype, shape, raw = expected[name]
                info = f.tensor_info(name)
                self.assertEqual(info["shape"], shape, f"{path}: {name}")
                if info["dtype"] in SAFETENSORS_DTYPES:
                    self.assertEqual(dtype, info["dtype"], f"{path}: {name}")
                else:
                    self.assertEqual(dtype, "F32", f"{path}: {name}")
                got = stored_bits(f, name)
                self.assertEqual(len(got), len(raw), f"{path}: {name}")
                self.assertTrue(got == raw, f"{path}: tensor '{name}' differs from folio convert")
                self.assert_rows_and_slices(f, name)
        return expected

    def assert_rows_and_slices(self, f, name):
        whole = f.get_tensor(name)
        info = f.tensor_info(name)
        shape = info["shape"]
        if not shape or 0 in shape:
            return
        flat = whole.reshape(-1, shape[-1])
        rng = np.random.default_rng(len(name))
        ids = rng.integers(0, flat.shape[0], size=min(7, flat.shape[0]))
        rows = f.get_rows(name, ids)
        self.assertTrue(same_bits(rows, flat[ids]), name)
        sl = f.get_slice(name)
        self.assertEqual(sl.get_shape(), shape)
        for key in (slice(None), slice(0, 1), -1, slice(1, None, 2)):
            want = whole[key]
            got = sl[key]
            self.assertEqual(np.shape(got), np.shape(want), f"{name}[{key}]")
            self.assertTrue(same_bits(got, want), f"{name}[{key}]")
        if len(shape) >= 2:
            got = sl[0, 1:3]
            self.assertTrue(same_bits(got, whole[0, 1:3]), name)


class GoldenFiles(ReaderCase):
    def test_every_golden_file_equals_the_export(self):
        self.assertGreaterEqual(len(GOLDEN), 9)
        for path in GOLDEN:
            self.assert_equal_to_export(path)

    def test_inspect_fields_match_the_golden_inspect_json(self):
        for path in GOLDEN:
            with open(path[:-len(".folio")] + ".inspect.json") as j:
                want = json.load(j)
            with folio.safe_open(path) as f:
                self.assertEqual(f.version, want["version"])
                self.assertEqual(f.page_size, want["page_size"])
                self.assertEqual(f.files(), [x["name"] for x in want["files"]])
                for t in want["tensors"]:
                    info = f.tensor_info(t["name"])
                    for key in ("dtype", "shape", "offset", "nbytes", "row_stride", "rows_per_page", "source_dtype"):
                        if key in t:
                            self.assertEqual(info[key], t[key], f"{path}: {t['name']}.{key}")

    def test_rows_equal_folio_rows(self):
        for path in GOLDEN:
            with folio.safe_open(path) as f:
                for name in f.keys():
                    shape = f.tensor_info(name)["shape"]
                    if len(shape) != 2 or shape[0] == 0:
                        continue
                    ids = sorted({0, shape[0] // 2, shape[0] - 1})
                    out = json.loads(run_folio("rows", path, name, ",".join(map(str, ids)), "--json"))
                    want = np.array(out["rows"], dtype=np.float64).astype(np.float32)
                    got = f.get_rows(name, ids).astype(np.float32)
                    self.assertTrue(np.array_equal(got.view(np.uint32), want.view(np.uint32)),
                                    f"{path}: {name} rows {ids}")

    def test_embedded_files_equal_the_folder_export(self):
        path = os.path.join(ROOT, "Formats", "golden", "model.folio")
        out = os.path.join(self.tmp, "model-folder") + "/"
        run_folio("convert", path, out)
        with folio.safe_open(path) as f:
            self.assertIn("config.json", f.files())
            for name in f.files():
                with open(os.path.join(out, name), "rb") as g:
                    self.assertEqual(f.get_file(name), g.read(), name)
            self.assertIsInstance(f.config(), dict)

    def test_widened_exotic_floats(self):
        with folio.safe_open(os.path.join(ROOT, "Formats", "golden", "plain.folio")) as f:
            bf16 = f.get_tensor("bf16")
            self.assertEqual(bf16.dtype, np.float32)
            with folio.safe_open(f.path, exotic="bits") as g:
                bits = g.get_tensor("bf16")
                self.assertEqual(bits.dtype, np.uint16)
                self.assertTrue(np.array_equal((bf16.view(np.uint32) >> 16).astype(np.uint16), bits))
            e4 = f.get_tensor("f8_e4m3")
            self.assertEqual(e4[:3].tolist(), [1.0, -1.0, 448.0])

    def test_dense_tensors_are_views_of_the_mapping(self):
        with folio.safe_open(os.path.join(ROOT, "Formats", "golden", "plain.folio")) as f:
            x = f.get_tensor("f32")
            self.assertFalse(x.flags.owndata)
            self.assertIsInstance(x.base, (memoryview, object))
            # Read-only, as the file is: a write raises instead of changing later reads.
            self.assertFalse(x.flags.writeable)
            with self.assertRaises(ValueError):
                x[0, 0] = 12345.0

    def test_slices_follow_numpy_for_every_key(self):
        path = os.path.join(ROOT, "Formats", "golden", "int8.folio")
        with folio.safe_open(path) as f:
            whole = f.get_tensor("model.embed_tokens.weight")
            sl = f.get_slice("model.embed_tokens.weight")
            for key in [(Ellipsis, 0), (None,), ([[0, 1], [2, 3]],), (), (slice(None), [1, 5]), (Ellipsis,), (3, Ellipsis)]:
                self.assertTrue(same_bits(sl[key], whole[key]), f"{key}")

    @unittest.skipUnless(__import__("importlib").util.find_spec("torch"), "torch not installed")
    def test_torch_tensors(self):
        import torch
        path = os.path.join(ROOT, "Formats", "golden", "plain.folio")
        with folio.safe_open(path, framework="pt") as f, folio.safe_open(path, exotic="bits") as g:
            for name in f.keys():
                t = f.get_tensor(name)
                self.assertIsInstance(t, torch.Tensor, name)
                self.assertEqual(t.reshape(-1).view(torch.uint8).numpy().tobytes(), g.get_tensor(name).tobytes(), name)
            self.assertEqual(f.get_tensor("bf16").dtype, torch.bfloat16)
            self.assertEqual(f.get_tensor("f8_e4m3").dtype, torch.float8_e4m3fn)


class Fixtures(ReaderCase):
    def test_trained_fixtures(self):
        for name in ("ngram.folio", "twin.folio"):
            path = os.path.join(FIXTURES, "trained", name)
            self.assert_equal_to_export(path)
            with folio.safe_open(path) as f:
                self.assertEqual(f.version, 3)
                self.assertIsNotNone(f.config())
                self.assertEqual(f.verify()["data_bytes"] > 0, True)

    def test_conversions_of_every_layout_and_codec(self):
        src = os.path.join(FIXTURES, "tiny-llama")
        variants = {
            "plain": [],
            "bf16": ["--quantize", "*=bf16"],
            "f16": ["--quantize", "*=f16"],
            "int8": ["--quantize", "*.weight=int8"],
            "int8g32": ["--quantize", "*.weight=int8/g32"],
            "int4g64": ["--quantize", "*proj.weight=int4/g64", "--embeddings", "int4/g32"],
            "affine8": ["--quantize", "*proj.weight=affine8/g32"],
            "int3-int2": ["--embeddings", "int3/g32", "--quantize", "*proj.weight=int2/g16"],
            "weights-int8": ["--weights", "int8"],
            "weights-int4": ["--weights", "int4"],
            "page16k": ["--embeddings", "int8/g32", "--page-size", "16384"],
            "lz4": ["--quantize", "*=bf16", "--compress", "lz4", "--chunk-bytes", "4096"],
            "zstd-planes": ["--compress", "zstd:9", "--byte-planes", "--chunk-bytes", "4096"],
            "zstd-int4": ["--weights", "int4", "--compress", "zstd", "--chunk-bytes", "4096"],
        }
        for label, args in variants.items():
            dst = os.path.join(self.tmp, f"tiny-{label}.folio")
            run_folio("convert", src, dst, *args)
            with self.subTest(label):
                self.assert_equal_to_export(dst)
                with folio.safe_open(dst) as f:
                    f.verify()

    def test_sharded_index_fixture(self):
        path = os.path.join(FIXTURES, "index", "model.folio.index.json")
        self.assert_equal_to_export(path)
        with folio.safe_open(path) as f:
            self.assertEqual(len(f.verify()), 5)
            t = f.tensor_info("model.embed_tokens.weight")
            self.assertEqual(len(t["parts"]), 5)
            whole = f.get_tensor("model.embed_tokens.weight")
            sl = f.get_slice("model.embed_tokens.weight")
            for key in [(slice(100, 250),), (Ellipsis, 0), (None,), ([[0, 599], [130, 250]],), (-1, slice(3, 9))]:
                self.assertTrue(same_bits(sl[key], whole[key]), f"{key}")

    def test_sharded_compressed_conversion(self):
        src = os.path.join(FIXTURES, "tiny-llama")
        dst = os.path.join(self.tmp, "shards", "model.folio")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        run_folio("convert", src, dst, "--embeddings", "int8", "--max-shard-size", "64KB", "--compress", "lz4")
        self.assert_equal_to_export(os.path.join(os.path.dirname(dst), "model.folio.index.json"))

    def test_corrupt_indexes_are_refused(self):
        corrupt = sorted(glob.glob(os.path.join(FIXTURES, "index", "corrupt-*.folio.index.json")))
        self.assertGreaterEqual(len(corrupt), 10)
        for path in corrupt:
            with self.subTest(os.path.basename(path)):
                with self.assertRaises(folio.FolioError) as e:
                    folio.safe_open(path)
                self.assertEqual(len(str(e.exception).splitlines()), 1)


class Damage(ReaderCase):
    def copy(self, src, name):
        dst = os.path.join(self.tmp, name)
        shutil.copyfile(src, dst)
        return dst

    def flip(self, path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x01]))

    def test_a_flipped_data_byte_fails_verify_naming_the_chunk(self):
        path = self.copy(os.path.join(ROOT, "Formats", "golden", "int8.folio"), "flip-data.folio")
        self.flip(path, 4096 + 100)
        with folio.safe_open(path) as f:
            with self.assertRaises(folio.FolioError) as e:
                f.verify()
        msg = str(e.exception)
        self.assertIn("chunk 0 (bytes [4096, 9536))", msg)
        self.assertIn("tensor 'model.embed_tokens.weight'", msg)

    def test_a_damaged_chunk_table_fails_verify(self):
        path = self.copy(os.path.join(ROOT, "Formats", "golden", "int8.folio"), "flip-table.folio")
        self.flip(path, os.path.getsize(path) - 20)
        with folio.safe_open(path) as f:
            with self.assertRaisesRegex(folio.FolioError, "chunk table is damaged"):
                f.verify()

    def test_damaged_compressed_chunk_is_never_returned(self):
        dst = os.path.join(self.tmp, "damaged-zstd.folio")
        run_folio("convert", os.path.join(FIXTURES, "tiny-llama"), dst, "--compress", "zstd", "--chunk-bytes", "4096")
        with folio.safe_open(dst) as f:
            name = next(n for n in f.keys() if f.tensor_info(n).get("codec"))
            start = f.tensor_info(name)["offset"] + 10
        self.flip(dst, start)
        with folio.safe_open(dst) as f:
            with self.assertRaisesRegex(folio.FolioError, f"tensor '{name}': chunk 0"):
                f.get_tensor(name)
            with self.assertRaisesRegex(folio.FolioError, "is damaged"):
                f.verify()

    def test_broken_files_are_refused_on_open(self):
        good = os.path.join(ROOT, "Formats", "golden", "int8.folio")
        data = open(good, "rb").read()
        cases = {
            "truncated": data[:-1],
            "trailing": data + b"\0",
            "magic": b"X" + data[1:],
            "short": data[:5],
            "header-byte": data[:40] + bytes([data[40] ^ 1]) + data[41:],
            "end-magic": data[:-1] + b"X",
            "version": data[:8] + struct.pack("<I", 9) + data[12:],
        }
        expect = {"truncated": "truncated", "trailing": "trailing bytes", "magic": "bad magic",
                  "short": "truncated", "header-byte": "header hash", "end-magic": "FOLIOEND",
                  "version": "version 9"}
        for label, blob in cases.items():
            path = os.path.join(self.tmp, f"broken-{label}.folio")
            with open(path, "wb") as f:
                f.write(blob)
            with self.subTest(label):
                with self.assertRaises(folio.FolioError) as e:
                    folio.safe_open(path)
                self.assertIn(expect[label], str(e.exception))
                self.assertIn(path, str(e.exception))

    def test_crafted_headers_with_valid_hashes_are_refused(self):
        import xxhash
        good = os.path.join(ROOT, "Formats", "golden", "int8.folio")
        data = open(good, "rb").read()
        length = struct.unpack("<Q", data[16:24])[0]
        header = json.loads(data[32:32 + length])

        def craft(label, change, raw=None):
            h = json.loads(json.dumps(header))
            if change:
                change(h)
            text = raw if raw is not None else json.dumps(h, separators=(",", ":")).encode()
            padded = text + b" " * (length - len(text))
            blob = data[:24] + struct.pack("<Q", xxhash.xxh3_64_intdigest(padded)) + padded + data[32 + length:]
            path = os.path.join(self.tmp, f"crafted-{label}.folio")
            with open(path, "wb") as f:
                f.write(blob)
            return path

        def setter(key, value, tensor=0):
            def change(h):
                h["tensors"][tensor][key] = value
            return change

        def overlap(h):
            # The norm vector grown to end at data_size, starting 4 bytes before the table ends.
            h["tensors"][1].update(shape=[272], nbytes=1088, offset=4352)

        cases = {
            "offset-beyond": (setter("offset", 1 << 40), "beyond data_size"),
            "negative-dim": (setter("shape", [-16, 256]), "field 'shape'"),
            "float-offset": (None, "field 'offset'"),
            "wrong-stride": (setter("row_stride", 256), "field 'row_stride'"),
            "bad-dtype": (setter("dtype", "int4"), "unknown dtype"),
            "unknown-key": (setter("extra", 1), "unknown field 'extra'"),
            "duplicate-key": (None, "duplicate key"),
            "overlap": (overlap, "overlap"),
        }
        raw_cases = {
            "float-offset": json.dumps(header, separators=(",", ":")).replace('"offset":0,', '"offset":0.0,', 1).encode(),
            "duplicate-key": json.dumps(header, separators=(",", ":")).replace('"page_size":4096', '"page_size":4096,"page_size":4096', 1).encode(),
        }
        for label, (change, needle) in cases.items():
            path = craft(label, change, raw_cases.get(label))
            with self.subTest(label):
                with self.assertRaises(folio.FolioError) as e:
                    folio.safe_open(path)
                self.assertIn(needle, str(e.exception))
                self.assertEqual(len(str(e.exception).splitlines()), 1)

    def test_the_corrupt_corpus(self):
        """Formats/corrupt: each file fails where its README table says (open or verify)."""
        table = open(os.path.join(ROOT, "Formats", "corrupt", "README.md")).read()
        rows = [line.split("|") for line in table.splitlines() if line.startswith("| `")]
        self.assertGreaterEqual(len(rows), 30)
        for row in rows:
            name, stage = row[1].strip().strip("`"), row[3].strip()
            path = os.path.join(ROOT, "Formats", "corrupt", name)
            with self.subTest(name):
                if "verify" in stage:
                    with folio.safe_open(path) as f:
                        with self.assertRaises(folio.FolioError) as e:
                            f.verify()
                else:
                    with self.assertRaises(folio.FolioError) as e:
                        folio.safe_open(path)
                self.assertIn(path, str(e.exception))
                self.assertEqual(len(str(e.exception).splitlines()), 1)

    def test_a_safetensors_file_is_told_to_convert(self):
        path = os.path.join(FIXTURES, "tiny-llama", "model.safetensors")
        with self.assertRaisesRegex(folio.FolioError, "convert it with `folio convert`"):
            folio.safe_open(path)

    def test_out_of_range_rows_are_refused(self):
        with folio.safe_open(os.path.join(ROOT, "Formats", "golden", "int8.folio")) as f:
            with self.assertRaisesRegex(folio.FolioError, "row 16 is out of range"):
                f.get_rows("model.embed_tokens.weight", [0, 16])


if __name__ == "__main__":
    unittest.main()
