#!/usr/bin/env python3
"""Seeds the fuzz corpora (Tests/Fuzz/TARGET/corpus) from the repository's fixtures, once:
valid and corrupt files of each format, the pickles inside the PyTorch fixtures, the .npy
headers, and a small tokenizer.json."""
import glob
import json
import os
import zipfile

ROOT = "Tests/Fuzz"


def put(target, name, data):
    d = os.path.join(ROOT, target, "corpus")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "seed-" + name.replace("/", "_"))
    if not os.path.exists(p) and len(data) <= 65536:
        with open(p, "wb") as f:
            f.write(data)


def main():
    for p in glob.glob("Formats/golden/*.folio") + glob.glob("Formats/corrupt/*.folio"):
        put("FuzzFolioHeader", os.path.basename(p), open(p, "rb").read())
        put("FuzzCompressed", os.path.basename(p), open(p, "rb").read())
    for p in glob.glob("Tests/Fixtures/**/*.safetensors", recursive=True):
        data = open(p, "rb").read()
        put("FuzzSafetensors", os.path.basename(p), data[:65536])
    for p in glob.glob("Tests/Fixtures/gguf/**/*.gguf", recursive=True):
        put("FuzzGGUF", os.path.basename(p), open(p, "rb").read()[:65536])
    for p in glob.glob("Tests/Fixtures/pytorch/**/*", recursive=True):
        if os.path.isfile(p) and zipfile.is_zipfile(p):
            put("FuzzZip", os.path.basename(p), open(p, "rb").read()[:65536])
            with zipfile.ZipFile(p) as z:
                for n in z.namelist():
                    if n.endswith(".pkl"):
                        put("FuzzPickle", os.path.basename(p) + "-" + n, z.read(n))
    for p in glob.glob("Tests/Fixtures/numpy/**/*", recursive=True):
        if not os.path.isfile(p):
            continue
        data = open(p, "rb").read()
        if p.endswith(".npy"):
            put("FuzzNumPy", os.path.basename(p), data[:512])
        elif zipfile.is_zipfile(p):
            put("FuzzZip", os.path.basename(p), data[:65536])
    tok = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                     "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "##s": 6, "h": 7, "##e": 8}},
           "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
           "pre_tokenizer": {"type": "BertPreTokenizer"},
           "added_tokens": [{"id": 2, "content": "[CLS]", "special": True}, {"id": 3, "content": "[SEP]", "special": True}]}
    put("FuzzTokenizer", "small.json", json.dumps(tok).encode())


if __name__ == "__main__":
    main()
