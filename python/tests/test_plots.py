"""`folio inspect --plot` and `folio diff --plot`: the overview page names every
floating-point tensor and links its pictures, and every picture is a valid PNG (chunk CRCs,
zlib stream, 720x240 RGB, no filter) with something drawn on it."""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLIO = os.environ.get("FOLIO", os.path.join(ROOT, ".build", "debug", "folio"))


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    at, chunks = 8, {}
    while at < len(data):
        n, = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        crc, = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC of {kind}"
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        at += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    raw = zlib.decompress(chunks[b"IDAT"])
    assert b"IEND" in chunks
    return w, h, depth, color, raw


class Plots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(FOLIO):
            raise unittest.SkipTest(f"no folio binary at {FOLIO}")
        cls.tmp = tempfile.mkdtemp(prefix="folio-plots-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_folder(self, folder, expect_names):
        html = open(os.path.join(folder, "index.html"), encoding="utf-8").read()
        for name in expect_names:
            self.assertIn(f"<b>{name}</b>", html)
        images = re.findall(r'<img src="([^"]+)"', html)
        self.assertGreater(len(images), 0)
        for img in images:
            w, h, depth, color, raw = read_png(os.path.join(folder, img))
            self.assertEqual((w, h, depth, color), (720, 240, 8, 2), img)
            self.assertEqual(len(raw), (w * 3 + 1) * h, img)
            self.assertTrue(all(raw[y * (w * 3 + 1)] == 0 for y in range(h)), img)
            drawn = sum(1 for i in range(0, len(raw) - 2, 3) if raw[i:i + 3] != b"\xff\xff\xff")
            self.assertGreater(drawn, 0.01 * w * h, f"{img}: almost nothing drawn")
        return images

    def test_inspect_and_diff_pictures(self):
        src = os.path.join(ROOT, "Tests", "Fixtures", "trained", "twin.folio")
        out = os.path.join(self.tmp, "inspect")
        done = subprocess.run([FOLIO, "inspect", src, "--plot", out, "--tensor", "model.layers.0.*"], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        images = self.check_folder(out, ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"])
        self.assertIn("model.layers.0.self_attn.q_proj.weight.steps.png", images)  # int4: steps per row
        self.assertNotIn("model.layers.0.mlp.down_proj.weight.steps.png", images)  # bf16: none

        f32 = os.path.join(self.tmp, "twin-f32.folio")
        self.assertEqual(subprocess.run([FOLIO, "convert", src, f32, "--quantize", "*=f32"], capture_output=True).returncode, 0)
        out = os.path.join(self.tmp, "diff")
        done = subprocess.run([FOLIO, "diff", f32, src, "--plot", out], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        images = self.check_folder(out, ["lm_head.weight", "model.norm.weight"])
        for kind in ("values", "error", "rows", "groups"):
            self.assertIn(f"lm_head.weight.{kind}.png", images)


    def test_non_finite_values_do_not_crash(self):
        import numpy as np
        from safetensors.numpy import save_file
        a = np.random.default_rng(0).standard_normal((40, 64)).astype(np.float32)
        b = a.copy()
        b[3, 5], b[7, 0], b[9, 9] = np.nan, np.inf, -np.inf
        pa, pb = os.path.join(self.tmp, "a.safetensors"), os.path.join(self.tmp, "b.safetensors")
        save_file({"w": a, "big": np.full((4, 32), 3e17, np.float32)}, pa)
        save_file({"w": b, "big": np.full((4, 32), 3e17, np.float32)}, pb)
        for args in (["diff", pa, pb, "--plot", os.path.join(self.tmp, "nan-diff")], ["inspect", pb, "--plot", os.path.join(self.tmp, "nan-inspect")]):
            done = subprocess.run([FOLIO, *args], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"{args}: {done.stderr}")


if __name__ == "__main__":
    unittest.main()
