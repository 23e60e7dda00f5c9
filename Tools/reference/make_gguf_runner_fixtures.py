#!/usr/bin/env python3
"""Tiny llama GGUF files and llama.cpp's logits on them, for Tests/FolioInferenceTests
(GGUFRunnerTests): `folio convert X.gguf X.folio [--keep-quantized]` then `folio run`.

    PYTHONPATH=<llama-cpp-python> python3 Tools/reference/make_gguf_runner_fixtures.py

Writes Tests/Fixtures/gguf-llama/:
  f32.gguf            hidden 64, 2 layers, 4/2 heads, MLP 128, vocab 320, separate output,
                      written as llama.cpp's converter writes a llama (q/k rows permuted)
  f32-rope-freqs.gguf the same weights with a `rope_freqs.weight` (llama3 scaling as stored)
                      and tied embeddings (no output.weight)
  q8_0.gguf, q4_0.gguf  f32.gguf through llama.cpp's quantizer (llama_model_quantize,
                      default rules: output.weight becomes Q6_K under Q4_0)
  logits_*.npy        llama.cpp's logits [prompt, vocab] of each file on prompt.json's ids
  prompt.json         the prompt ids
llama-cpp-python 0.3.36 (a build without AMX: the wheel built here with AMX crashes in
tilezero on this machine's Q8_0/Q4_0 paths), gguf 0.19.0, numpy.
"""
import ctypes
import json
import os

import numpy as np
import gguf
import llama_cpp
from llama_cpp import Llama

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "gguf-llama")
H, L, HEADS, KV, F, V = 64, 2, 4, 2, 128, 320
D = H // HEADS


def permute(w, heads):
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def weights():
    rng = np.random.default_rng(7)
    r = lambda *s: (rng.standard_normal(s) * 0.08).astype(np.float32)
    w = {"token_embd.weight": r(V, H), "output_norm.weight": (1 + 0.1 * rng.standard_normal(H)).astype(np.float32), "output.weight": r(V, H)}
    for i in range(L):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
        w[p + "ffn_norm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
        w[p + "attn_q.weight"] = permute(r(HEADS * D, H), HEADS)
        w[p + "attn_k.weight"] = permute(r(KV * D, H), KV)
        w[p + "attn_v.weight"] = r(KV * D, H)
        w[p + "attn_output.weight"] = r(H, HEADS * D)
        w[p + "ffn_gate.weight"] = r(F, H)
        w[p + "ffn_up.weight"] = r(F, H)
        w[p + "ffn_down.weight"] = r(H, F)
    return w


def write(path, w, extra=None):
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_context_length(256)
    wr.add_embedding_length(H)
    wr.add_block_count(L)
    wr.add_feed_forward_length(F)
    wr.add_head_count(HEADS)
    wr.add_head_count_kv(KV)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_rope_freq_base(10000.0)
    wr.add_rope_dimension_count(D)
    wr.add_file_type(0)
    wr.add_tokenizer_model("llama")
    toks = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    toks += [f"\u2581t{i}".encode() for i in range(V - len(toks))]
    wr.add_token_list(toks)
    wr.add_token_scores([0.0] * V)
    wr.add_token_types([2, 3, 3] + [6] * 256 + [1] * (V - 259))
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    for k, t in w.items():
        wr.add_tensor(k, t)
    for k, t in (extra or {}).items():
        wr.add_tensor(k, t)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def logits(path, ids):
    llm = Llama(model_path=path, n_ctx=128, n_threads=1, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    w = weights()
    write(os.path.join(OUT, "f32.gguf"), w)
    tied = {k: v for k, v in w.items() if k != "output.weight"}
    factors = np.linspace(1.0, 8.0, D // 2).astype(np.float32)
    write(os.path.join(OUT, "f32-rope-freqs.gguf"), tied, {"rope_freqs.weight": factors})
    for name, ftype in [("q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)]:
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = ftype
        rc = llama_cpp.llama_model_quantize(os.path.join(OUT, "f32.gguf").encode(), os.path.join(OUT, f"{name}.gguf").encode(), ctypes.byref(p))
        assert rc == 0, rc
    ids = [int(x) for x in np.random.default_rng(5).integers(3, V, 24)]
    json.dump({"ids": ids}, open(os.path.join(OUT, "prompt.json"), "w"))
    for name in ["f32", "f32-rope-freqs", "q8_0", "q4_0"]:
        np.save(os.path.join(OUT, f"logits_{name}.npy"), logits(os.path.join(OUT, f"{name}.gguf"), ids))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
