#!/usr/bin/env python3
"""`folio convert X out.gguf` checked against llama.cpp: the exported file loaded by
llama-cpp-python gives the logits `folio run` gives on the same ids.

    python3 Tools/reference/check_gguf_export.py [--folio .build/release/folio] [--model M.folio] [--tokens N]

For each variant (the model as stored; every tensor F32; the linear weights int8/g32 ->
Q8_0) it exports the GGUF, evaluates the first N ids of the held-out file with folio run
(--logits) and with llama.cpp (logits_all), and prints per variant the worst and mean
cosine over positions, the largest |difference| and how often the argmax agrees; the
GGUF is also read back with gguf-py (every key listed). Needs llama-cpp-python (0.3.36
here), gguf, numpy. CPU model printed first.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tools", "bench"))
from lookups_bench import cpu_name as cpu  # noqa: E402  (the same /proc/cpuinfo reading)


def run(*args):
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def byte_tokenizer():
    """A byte-level BPE tokenizer.json of the 256 byte symbols and no merges (GPT-2's
    bytes_to_unicode alphabet, GPT-2 pre-tokenizer), for the family fixtures' vocab of 256."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    return {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []}}


def family_model(name, tmp, folio, **config):
    """Tests/Fixtures/families/NAME with the byte tokenizer, converted to .folio."""
    import shutil
    src = os.path.join(ROOT, "Tests", "Fixtures", "families", name)
    folder = os.path.join(tmp, name)
    shutil.copytree(src, folder)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(), f)
    if config:
        path = os.path.join(folder, "config.json")
        c = json.load(open(path))
        c.update(config)
        json.dump(c, open(path, "w"), indent=2)
    out = os.path.join(tmp, name + ".folio")
    run(folio, "convert", folder, out)
    return out


def tokenizer_model(name, tmp, folio):
    """The llama family fixture with its vocabulary grown to a real pre-tokenizer's fixture
    tokenizer (Tests/Fixtures/bpe/NAME: GPT-2, Llama 3 or Qwen2 rules), random embeddings."""
    import shutil
    from safetensors.numpy import load_file, save_file
    src = os.path.join(ROOT, "Tests", "Fixtures", "families", "llama-rope-parameters")
    folder = os.path.join(tmp, "tok-" + name)
    os.makedirs(folder)
    tok = os.path.join(ROOT, "Tests", "Fixtures", "bpe", name, "tokenizer.json")
    shutil.copy(tok, folder)
    t = json.load(open(tok))
    vocab = max(list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])]) + 1
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["vocab_size"] = vocab
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))
    w = load_file(os.path.join(src, "model.safetensors"))
    rng = np.random.default_rng(0)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        w[k] = (rng.standard_normal((vocab, w[k].shape[1])) * 0.05).astype(np.float32)
    save_file(w, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    out = os.path.join(tmp, "tok-" + name + ".folio")
    run(folio, "convert", folder, out)
    return out, tok


TEXTS = ["Hello world", "  leading spaces and\ttabs\n\nnew lines", "def f(x):\n    return x ** 2  # square",
         "Numbers 1234567 and 3.14159, dates 2026-12-07", "Unicode: café naïve 東京 😀 — dashes", "it's we're they'll I'd",
         "<|endoftext|> inside", "   ", "a" * 50, "MiXeD CaSe and URLs https://example.com/path?q=1"]


def check_tokenizers(a, tmp):
    """llama.cpp's ids for the exported vocabulary against Hugging Face tokenizers' ids."""
    from llama_cpp import Llama
    from tokenizers import Tokenizer
    for name in ("gpt2", "llama3", "qwen2"):
        model, tok = tokenizer_model(name, tmp, a.folio)
        out = os.path.join(tmp, f"tok-{name}.gguf")
        run(a.folio, "convert", model, out)
        llm = Llama(model_path=out, vocab_only=True, verbose=False)
        hf = Tokenizer.from_file(tok)
        same = 0
        for text in TEXTS:
            want = hf.encode(text, add_special_tokens=True).ids
            got = llm.tokenize(text.encode(), add_bos=True, special=True)
            same += got == want
            if got != want:
                print(f"  {name}: {text!r}: llama.cpp {got[:12]} tokenizers {want[:12]}")
        print(f"tokenizer {name}: llama.cpp equals tokenizers on {same}/{len(TEXTS)} texts")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--folio", default=os.path.join(ROOT, ".build", "release", "folio"))
    p.add_argument("--model", default=os.path.join(ROOT, "Tests", "Fixtures", "trained", "twin.folio"))
    p.add_argument("--ids", default=os.path.join(ROOT, "Tests", "Fixtures", "trained", "heldout_ids.txt"))
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    from gguf import GGUFReader
    from llama_cpp import Llama

    held = [int(x) for x in open(a.ids).read().replace(",", " ").split()][:a.tokens]
    print(f"cpu: {cpu()}; {len(held)} ids")
    variants = {"as stored": [], "F32": ["--quantize", "*=f32"], "Q8_0": ["--weights", "int8"]}
    with tempfile.TemporaryDirectory() as tmp:
        check_tokenizers(a, tmp)
        models = [(a.model, held)]
        # The Mistral fixture slides a window of 16; llama.cpp's llama has none, so without it.
        for fam, cfg in (("llama-rope-parameters", {}), ("mistral", {"sliding_window": None})):
            models.append((family_model(fam, tmp, a.folio, **cfg), [(7 * i + 3) % 256 for i in range(min(a.tokens, 200))]))
        for model, ids in models:
            print(f"model {os.path.basename(model)}")
            for label, args in variants.items():
                folio_model = model
                if args:
                    folio_model = os.path.join(tmp, label.replace(" ", "_") + ".folio")
                    run(a.folio, "convert", model, folio_model, *args)
                out = os.path.join(tmp, label.replace(" ", "_") + ".gguf")
                summary = json.loads(run(a.folio, "convert", folio_model, out, "--json"))
                types = {}
                for t in summary["tensors"]:
                    kind = t["scheme"].split()[-1]
                    types[kind] = types.get(kind, 0) + 1
                reader = GGUFReader(out)
                keys = [k for k in reader.fields if not k.startswith("GGUF.")]
                for k in keys:
                    reader.fields[k].contents()
                npy = os.path.join(tmp, "folio.npy")
                def logits(m):
                    run(a.folio, "run", m, "--tokens", ",".join(map(str, ids)), "--max-tokens", "0",
                        "--logits", npy, "--threads", str(a.threads))
                    return np.load(npy).astype(np.float64)
                mine = logits(folio_model)
                # The same stored values in float32 (no quantized arithmetic): what both approximate.
                exact_model = os.path.join(tmp, "exact.folio")
                run(a.folio, "convert", folio_model, exact_model, "--quantize", "*=f32")
                exact = logits(exact_model)
                llm = Llama(model_path=out, n_ctx=max(512, len(ids)), logits_all=True, n_threads=a.threads,
                            n_batch=len(ids), verbose=False)
                llm.eval(ids)
                theirs = np.array(llm.scores[:len(ids)], dtype=np.float64)
                def cosine(x, y):
                    return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
                cos = cosine(mine, theirs)
                whole = cosine(mine.reshape(1, -1), theirs.reshape(1, -1))[0]
                agree = (mine.argmax(1) == theirs.argmax(1)).mean()
                print(f"{label:10s} {os.path.getsize(out):>10,} bytes, tensors {types}, {len(keys)} keys read by gguf-py: "
                      f"cosine of all logits {whole:.7f}, per position min {cos.min():.7f} mean {cos.mean():.7f}, max |diff| {np.abs(mine - theirs).max():.4g}, "
                      f"argmax agreement {agree:.4f}; against float32 of the stored values: folio min "
                      f"{cosine(mine, exact).min():.7f}, llama.cpp min {cosine(theirs, exact).min():.7f}")
                del llm


if __name__ == "__main__":
    main()
