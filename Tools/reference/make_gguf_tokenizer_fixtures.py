#!/usr/bin/env python3
"""GGUF files that carry a tokenizer (and no tensors), with llama.cpp's own ids for them, so
that the tokenizer Folio builds from a GGUF's `tokenizer.ggml.*` keys is checked against the
runtime that GGUF files are made for.

    python3 Tools/reference/make_gguf_tokenizer_fixtures.py

Needs gguf, sentencepiece, tokenizers and llama-cpp-python (0.3.36 was used). Writes
Tests/Fixtures/gguf-tokenizer/NAME.gguf and cases.json:
- gpt2, llama3, qwen2: the byte-level BPE fixtures of Tests/Fixtures/bpe written the way
  llama.cpp's convert_hf_to_gguf.py writes a BPE vocabulary (`_set_vocab_gpt2`): every id's
  token, token types (special added tokens CONTROL, other added tokens USER_DEFINED, the rest
  NORMAL), the merges as "a b" strings, `tokenizer.ggml.pre` "gpt-2" / "llama-bpe" / "qwen2";
- llama-spm, gemma-spm: the SentencePiece BPE models of make_sentencepiece_fixtures.py written
  as convert_hf_to_gguf.py writes a SentencePiece vocabulary (`_create_vocab_sentencepiece`):
  pieces, scores and types from the .model, `add_space_prefix` from its normalizer spec.
Each file has the minimal `llama.*` keys that llama.cpp needs to open it with vocab_only.

cases.json holds, per file, llama.cpp's ids of every test string (llama_tokenize with
add_special and parse_special, as Folio splits special tokens out of text) and its detokenized
text of those ids; for the byte-level files also the ids and decodings of the Hugging Face
tokenizer the GGUF was made from, and how many strings it encodes as llama.cpp does.
"""
import json
import os
import sys
import tempfile

import gguf
import sentencepiece as spm
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf-tokenizer")
sys.path.insert(0, HERE)
import make_sentencepiece_fixtures as spf  # noqa: E402

T = gguf.TokenType


def writer(path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-5)
    return w


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bpe_gguf(name, pre, path):
    """A byte-level BPE tokenizer.json as a GGUF vocabulary."""
    doc = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "bpe", name, "tokenizer.json")))
    tok = Tokenizer.from_file(os.path.join(ROOT, "Tests", "Fixtures", "bpe", name, "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    added = {a["id"]: a for a in doc["added_tokens"]}
    tokens, types = [], []
    for i in range(n):
        t = tok.id_to_token(i)
        if t is None:
            t, kind = f"[PAD{i}]", T.UNUSED
        elif i in added:
            kind = T.CONTROL if added[i]["special"] else T.USER_DEFINED
        else:
            kind = T.NORMAL
        tokens.append(t)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    w = writer(path)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    specials = [i for i in range(n) if types[i] == T.CONTROL]
    if specials:
        w.add_bos_token_id(specials[0])
        w.add_eos_token_id(specials[-1])
    if name == "llama3":
        w.add_add_bos_token(True)
        w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    finish(w)
    return tok


def spm_gguf(model_path, path):
    """A SentencePiece .model as a GGUF vocabulary."""
    sp = spm.SentencePieceProcessor(model_file=model_path)
    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto()
    proto.ParseFromString(open(model_path, "rb").read())
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        kind = T.NORMAL
        if sp.is_unknown(i):
            kind = T.UNKNOWN
        elif sp.is_control(i):
            kind = T.CONTROL
        elif sp.is_unused(i):
            kind = T.UNUSED
        elif sp.is_byte(i):
            kind = T.BYTE
        elif proto.pieces[i].type == pb.ModelProto.SentencePiece.USER_DEFINED:
            kind = T.USER_DEFINED
        types.append(kind)
    w = writer(path)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    if sp.bos_id() >= 0:
        w.add_bos_token_id(sp.bos_id())
    if sp.eos_id() >= 0:
        w.add_eos_token_id(sp.eos_id())
    if sp.unk_id() >= 0:
        w.add_unk_token_id(sp.unk_id())
    finish(w)


def main():
    from llama_cpp import Llama
    os.makedirs(OUT, exist_ok=True)
    strings = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "bpe", "cases.json")))["strings"]
    strings += [s for s in json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "sentencepiece", "cases.json")))["strings"] if s not in strings]
    cases = {"strings": strings, "files": {}}
    hf = {}
    for name, pre in [("gpt2", "gpt-2"), ("llama3", "llama-bpe"), ("qwen2", "qwen2")]:
        hf[name] = bpe_gguf(name, pre, os.path.join(OUT, name + ".gguf"))
    with tempfile.TemporaryDirectory() as work:
        spm_gguf(spf.llama_model(work), os.path.join(OUT, "llama-spm.gguf"))
        spm_gguf(spf.gemma_model(work), os.path.join(OUT, "gemma-spm.gguf"))
    for name in ["gpt2", "llama3", "qwen2", "llama-spm", "gemma-spm"]:
        llm = Llama(model_path=os.path.join(OUT, name + ".gguf"), vocab_only=True, verbose=False)
        ids, text = [], []
        for s in strings:
            t = llm.tokenize(s.encode(), add_bos=True, special=True)
            ids.append(t)
            text.append(llm.detokenize(t, special=True).decode("utf-8", errors="replace"))
        entry = {"ids": ids, "detokenized": text}
        if name in hf:
            # The Hugging Face tokenizer the GGUF was made from: its ids of each string and its
            # decoding of llama.cpp's ids (the two runtimes differ on a few edge cases).
            entry["hf_ids"] = [hf[name].encode(s).ids for s in strings]
            entry["hf_decoded"] = [hf[name].decode(t, skip_special_tokens=False) for t in ids]
            entry["hf_equal"] = sum(h == t for h, t in zip(entry["hf_ids"], ids))
        cases["files"][name] = entry
        print(name, len(strings), "strings", ("HF equal %d" % entry["hf_equal"]) if name in hf else "")
        del llm
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
