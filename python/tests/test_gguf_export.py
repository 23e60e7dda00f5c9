"""`folio convert X.folio out.gguf` read by gguf-py (llama.cpp's Python package): every key
reads, and every tensor, dequantized by gguf-py, equals the Folio file's values bit for bit
(q/k rows un-permuted back to Hugging Face's order). llama.cpp's logits on the same files:
Tools/reference/check_gguf_export.py.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import folio

try:
    import gguf
    from gguf import GGUFReader
except ImportError:  # the test environment installs it; skip elsewhere
    gguf = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLIO = os.environ.get("FOLIO", os.path.join(ROOT, ".build", "debug", "folio"))
NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(name):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    return f"blk.{parts[2]}.{NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def unpermute(w, heads):
    """GGUF row 2j + s of a head is Hugging Face row s * h/2 + j."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


@unittest.skipIf(gguf is None, "gguf (gguf-py) not installed")
class GGUFExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(FOLIO):
            raise unittest.SkipTest(f"no folio binary at {FOLIO}")
        cls.tmp = tempfile.mkdtemp(prefix="folio-gguf-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, folio_path, expect_types):
        out = os.path.join(self.tmp, os.path.basename(folio_path) + ".gguf")
        done = subprocess.run([FOLIO, "convert", folio_path, out], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        reader = GGUFReader(out)
        fields = {k: f.contents() for k, f in reader.fields.items()}
        self.assertEqual(fields["general.architecture"], "llama")
        with folio.safe_open(folio_path) as f:
            config = f.config()
            self.assertEqual(fields["llama.block_count"], config["num_hidden_layers"])
            self.assertEqual(fields["llama.embedding_length"], config["hidden_size"])
            self.assertEqual(len(fields["tokenizer.ggml.tokens"]), config["vocab_size"])
            tensors = {t.name: t for t in reader.tensors}
            seen = set()
            for name in f.keys():
                g = gguf_name(name)
                t = tensors[g]
                seen.add(t.tensor_type.name)
                got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(f.tensor_info(name)["shape"])
                if ".q_proj." in name:
                    got = unpermute(got, config["num_attention_heads"])
                elif ".k_proj." in name:
                    got = unpermute(got, config.get("num_key_value_heads", config["num_attention_heads"]))
                want = f.get_tensor(name).astype(np.float32)
                self.assertEqual(got.astype(np.float32).tobytes(), want.tobytes(), f"{name} -> {g} ({t.tensor_type.name})")
        self.assertTrue(expect_types <= seen, seen)
        return fields, tensors

    def test_trained_twin_as_stored(self):
        fields, _ = self.check(os.path.join(ROOT, "Tests", "Fixtures", "trained", "twin.folio"), {"Q4_1", "Q8_0", "BF16", "F32"})
        self.assertEqual(fields["tokenizer.ggml.model"], "gpt2")
        self.assertEqual(fields["tokenizer.ggml.pre"], "gpt-2")
        self.assertEqual(fields["general.file_type"], 3)

    def test_groups_of_64_become_whole_blocks(self):
        # The llama3-scaled family fixture (hidden 64), with a byte-level tokenizer of its 256 ids.
        folder = os.path.join(self.tmp, "llama")
        shutil.copytree(os.path.join(ROOT, "Tests", "Fixtures", "families", "llama-rope-parameters"), folder)
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, n = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        tokenizer = {"version": "1.0", "added_tokens": [],
                     "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
                     "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
                     "model": {"type": "BPE", "vocab": {chr(c): i for i, c in enumerate(cs)}, "merges": []}}
        with open(os.path.join(folder, "tokenizer.json"), "w") as f:
            json.dump(tokenizer, f)
        dst = os.path.join(self.tmp, "g64.folio")
        done = subprocess.run([FOLIO, "convert", folder, dst, "--quantize", "*.self_attn.*=int4/g64",
                               "--quantize", "*.mlp.gate_proj.weight=int8/g64", "--quantize", "*.mlp.up_proj.weight=affine8/g32"],
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        _, tensors = self.check(dst, {"Q4_1", "Q8_0"})
        self.assertEqual(tensors["blk.0.attn_q.weight"].tensor_type.name, "Q4_1")
        self.assertEqual(tensors["blk.0.ffn_gate.weight"].tensor_type.name, "Q8_0")
        self.assertEqual(tensors["blk.0.ffn_up.weight"].tensor_type.name, "F32")  # affine8 has no exact ggml type


if __name__ == "__main__":
    unittest.main()
