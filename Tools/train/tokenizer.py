#!/usr/bin/env python3
"""Train the corpus's byte-level BPE tokenizer and tokenize both splits.

What it does
  1. Trains a byte-level BPE with the `tokenizers` library: vocabulary 8192 (--vocab),
     `<|endoftext|>` the one special token (id 0), GPT-2's ByteLevel pre-tokenizer (the
     GPT-2 split regex, add_prefix_space false), ByteLevel decoder, no normalizer and no
     post-processor (nothing is added around an encoded text). It learns from a fixed
     sample of train.txt: the documents sorted by the sha256 of their text, taken in that
     order until --sample-mb MB, without their `<|endoftext|>` marker. Saves
     tokenizer.json.
  2. Tokenizes train.txt and val.txt into uint16 arrays train.npy / val.npy: every
     document is `<|endoftext|>` (id 0) followed by the ids of its text; documents are
     encoded with `encode_batch` (all cores) in chunks. That equals encoding each whole
     file at once, since the special token splits the text before pre-tokenization
     (checked on the first documents with --check).
  3. Writes tokens.json: vocabulary, token counts, bytes per token, the sha256 of
     tokenizer.json and of both arrays.
  The BPE trainer is deterministic: the same train.txt gives the same tokenizer.json.

Run
  python3 Tools/train/tokenizer.py --corpus DIR [--out DIR] [--vocab 8192] [--sample-mb 100]
  (--out defaults to --corpus)
"""
import argparse
import hashlib
import json
import os
import time

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"


def documents(path):
    with open(path, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    parts = text.split(EOT)
    assert parts[0] == "", "a corpus file starts with <|endoftext|>"
    return parts[1:]


def train_tokenizer(docs, vocab, sample_mb):
    order = sorted(range(len(docs)), key=lambda i: hashlib.sha256(docs[i].encode()).digest())
    budget, picked = int(sample_mb * 1e6), []
    for i in order:
        if budget <= 0:
            break
        picked.append(i)
        budget -= len(docs[i].encode())
    picked.sort()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[EOT], min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def batches():
        for s in range(0, len(picked), 1000):
            yield [docs[i] for i in picked[s:s + 1000]]

    tok.train_from_iterator(batches(), trainer=trainer, length=len(picked))
    assert tok.token_to_id(EOT) == 0
    return tok, sum(len(docs[i].encode()) for i in picked)


def encode_docs(tok, docs, chunk=4096):
    out = []
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster, same ids
    for s in range(0, len(docs), chunk):
        for e in encode(docs[s:s + chunk], add_special_tokens=False):
            out.append(np.array([0] + e.ids, dtype=np.uint16))
    return np.concatenate(out) if out else np.zeros(0, np.uint16)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--sample-mb", type=float, default=100.0)
    ap.add_argument("--check", action="store_true", help="also check per-document encoding against whole-text encoding")
    args = ap.parse_args()
    out = args.out or args.corpus
    os.makedirs(out, exist_ok=True)
    assert args.vocab <= 65536
    t0 = time.time()
    train_docs = documents(os.path.join(args.corpus, "train.txt"))
    val_docs = documents(os.path.join(args.corpus, "val.txt"))
    t1 = time.time()
    tok, sample_bytes = train_tokenizer(train_docs, args.vocab, args.sample_mb)
    tok_path = os.path.join(out, "tokenizer.json")
    tok.save(tok_path)
    tok = Tokenizer.from_file(tok_path)
    t2 = time.time()
    stats = {"vocab_size": tok.get_vocab_size(), "eot_id": 0, "sample_bytes": sample_bytes,
             "tokenizer_sha256": sha(open(tok_path, "rb").read())}
    for name, docs in (("train", train_docs), ("val", val_docs)):
        ids = encode_docs(tok, docs)
        np.save(os.path.join(out, name + ".npy"), ids)
        nbytes = sum(len(d.encode()) for d in docs) + len(EOT) * len(docs)
        stats[name] = {"documents": len(docs), "tokens": int(ids.size), "bytes": nbytes,
                       "bytes_per_token": nbytes / max(1, ids.size), "sha256": sha(ids.tobytes())}
    t3 = time.time()
    if args.check:
        text = open(os.path.join(args.corpus, "val.txt"), encoding="utf-8", newline="").read()
        cut = text[:200000]
        cut = cut[:cut.rfind(EOT)]
        whole = tok.encode(cut).ids
        ids = np.load(os.path.join(out, "val.npy"))[:len(whole)]
        assert whole == ids.tolist(), "per-document encoding differs from whole-text encoding"
        assert tok.decode(whole, skip_special_tokens=False) == cut
        stats["check"] = "per-document ids equal whole-text ids on %d val tokens; decode round trip exact" % len(whole)
    stats["seconds"] = {"read": round(t1 - t0, 1), "train": round(t2 - t1, 1), "encode": round(t3 - t2, 1)}
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    print(json.dumps({"tokenizer": tok_path, **{k: stats[k] for k in ("vocab_size", "seconds")},
                      "train_tokens": stats["train"]["tokens"], "val_tokens": stats["val"]["tokens"],
                      "bytes_per_token": round(stats["train"]["bytes_per_token"], 3)}))


if __name__ == "__main__":
    main()
