#!/usr/bin/env python3
"""Prefill and decode tokens per second of `folio run` against mlx-lm (CPU) and llama.cpp
(llama-cpp-python) on one llama-shaped random model with float32 weights, same 2 cores,
in one run.

    python3 Tools/bench/runner_bench.py [--folio .build/release/folio] [--prompt 128] [--gen 64]

The model (hidden 768, 10 layers, 12 heads, 4 KV heads, MLP 2048, vocab 32000, separate
lm_head: about 110M parameters) is written with numpy as a Hugging Face folder, converted to
.folio by `folio convert`, and to GGUF with the `gguf` package (llama.cpp's names, a
placeholder SentencePiece-style vocabulary of the same size). Every runner gets the same
random prompt ids and decodes greedily; the runners take turns (one trial each per round,
--rounds rounds, 3 by default) and the figures are each one's best prefill and best decode.
Prefill: prompt tokens / prompt time. Decode: generated tokens after the first / their time.

Weights in their stored encodings (bf16, `--weights int8`, `--weights int4`) against
llama.cpp's BF16, Q8_0 and Q4_0, on 1 and 2 threads, 112M, 1B- and 8B-shaped models, with
RSS and the fraction of memory bandwidth: Tools/bench/weights_bench.py.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

CFG = dict(hidden_size=768, num_hidden_layers=10, num_attention_heads=12, num_key_value_heads=4,
           intermediate_size=2048, vocab_size=32000, rms_norm_eps=1e-5, rope_theta=10000.0,
           max_position_embeddings=2048, tie_word_embeddings=False)


def make_weights(seed=0):
    rng = np.random.default_rng(seed)
    h, f, v = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    d = h // CFG["num_attention_heads"]
    kv = CFG["num_key_value_heads"] * d
    def r(*shape, scale=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
    w = {"model.embed_tokens.weight": r(v, h), "model.norm.weight": np.ones(h, np.float32), "lm_head.weight": r(v, h)}
    for i in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = np.ones(h, np.float32)
        w[p + "post_attention_layernorm.weight"] = np.ones(h, np.float32)
        w[p + "self_attn.q_proj.weight"] = r(h, h)
        w[p + "self_attn.k_proj.weight"] = r(kv, h)
        w[p + "self_attn.v_proj.weight"] = r(kv, h)
        w[p + "self_attn.o_proj.weight"] = r(h, h)
        w[p + "mlp.gate_proj.weight"] = r(f, h)
        w[p + "mlp.up_proj.weight"] = r(f, h)
        w[p + "mlp.down_proj.weight"] = r(h, f)
    return w


def write_hf(folder, w):
    from safetensors.numpy import save_file
    os.makedirs(folder, exist_ok=True)
    save_file(w, os.path.join(folder, "model.safetensors"))
    cfg = dict(CFG, model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu", bos_token_id=1, eos_token_id=2)
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"))


def write_gguf(path, w):
    import gguf
    wr = gguf.GGUFWriter(path, "llama")
    h, n = CFG["hidden_size"], CFG["num_attention_heads"]
    wr.add_context_length(CFG["max_position_embeddings"])
    wr.add_embedding_length(h)
    wr.add_block_count(CFG["num_hidden_layers"])
    wr.add_feed_forward_length(CFG["intermediate_size"])
    wr.add_head_count(n)
    wr.add_head_count_kv(CFG["num_key_value_heads"])
    wr.add_layer_norm_rms_eps(CFG["rms_norm_eps"])
    wr.add_rope_freq_base(CFG["rope_theta"])
    wr.add_rope_dimension_count(h // n)
    wr.add_file_type(0)
    wr.add_tokenizer_model("llama")
    v = CFG["vocab_size"]
    toks = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    toks += [f"\u2581t{i}".encode() for i in range(v - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (v - 259)
    wr.add_token_list(toks)
    wr.add_token_scores([0.0] * v)
    wr.add_token_types(types)
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    sub = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
           "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for k, t in w.items():
        if k in names:
            name = names[k]
        else:
            parts = k.split(".")
            name = f"blk.{parts[2]}.{sub['.'.join(parts[3:-1])]}.weight"
        wr.add_tensor(name, t)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def folio_trial(folio, model, prompt, gen):
    def trial():
        out = subprocess.run([folio, "run", model, "--tokens", ",".join(map(str, prompt)), "--max-tokens", str(gen), "--json"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)
        assert len(r["tokens"]) == gen, r["tokens"]
        return (r["prompt_tokens_per_second"], r["tokens_per_second"])
    return trial


def mlx_trial(folder, prompt, gen):
    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    from mlx_lm.utils import load_model
    from mlx_lm.models.cache import make_prompt_cache
    model, _ = load_model(__import__("pathlib").Path(folder))
    def trial():
        cache = make_prompt_cache(model)
        t0 = time.perf_counter()
        logits = model(mx.array(prompt)[None], cache=cache)
        tok = mx.argmax(logits[0, -1])
        mx.eval(tok)
        t1 = time.perf_counter()
        for _ in range(gen - 1):
            logits = model(tok.reshape(1, 1), cache=cache)
            tok = mx.argmax(logits[0, -1])
            mx.eval(tok)
        t2 = time.perf_counter()
        return (len(prompt) / (t1 - t0), (gen - 1) / (t2 - t1))
    return trial


def llamacpp_trial(path, prompt, gen):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=len(prompt) + gen + 8, n_threads=2, n_threads_batch=2, n_batch=512, verbose=False)
    def trial():
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t1 = time.perf_counter()
        for _ in range(gen - 1):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t2 = time.perf_counter()
        return (len(prompt) / (t1 - t0), (gen - 1) / (t2 - t1))
    return trial


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--skip", default="", help="comma-separated peers to skip: mlx, llamacpp")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each runs every runner once, in turn")
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    prompt = [int(x) for x in rng.integers(3, CFG["vocab_size"], a.prompt)]
    with tempfile.TemporaryDirectory() as d:
        w = make_weights()
        params = sum(x.size for x in w.values())
        hf = os.path.join(d, "hf")
        write_hf(hf, w)
        model = os.path.join(d, "model.folio")
        subprocess.run([a.folio, "convert", hf, model], check=True, stdout=subprocess.DEVNULL)
        trials = {"folio": folio_trial(a.folio, model, prompt, a.gen)}
        if "mlx" not in a.skip:
            trials["mlx-lm"] = mlx_trial(hf, prompt, a.gen)
        if "llamacpp" not in a.skip:
            g = os.path.join(d, "model.gguf")
            write_gguf(g, w)
            trials["llama.cpp"] = llamacpp_trial(g, prompt, a.gen)
        # Runners take turns, one trial each per round, so that a slow spell of the machine
        # falls on all of them; the best prefill and the best decode of each are kept.
        results = {}
        for _ in range(a.rounds):
            for k, trial in trials.items():
                p, g = trial()
                best = results.get(k)
                results[k] = (p, g) if best is None else (max(best[0], p), max(best[1], g))
        print(f"llama-shaped random model, {params / 1e6:.1f}M parameters, float32; prompt {a.prompt} tokens, {a.gen} generated; nproc {os.cpu_count()}")
        print(f"{'runner':<10} {'prefill tok/s':>14} {'decode tok/s':>13} {'Folio prefill x':>16} {'Folio decode x':>15}")
        f = results["folio"]
        for k, (p, g) in results.items():
            print(f"{k:<10} {p:14.1f} {g:13.1f} {f[0] / p:16.2f} {f[1] / g:15.2f}")


if __name__ == "__main__":
    main()
