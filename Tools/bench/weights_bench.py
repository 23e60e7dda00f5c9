#!/usr/bin/env python3
"""`folio run` on weights in their stored encodings against llama.cpp (llama-cpp-python) on
the same random llama, in one run: bf16 vs BF16, `--weights int8` vs Q8_0, `--weights int4`
vs Q4_0, on 1 and 2 threads. Prints prefill and decode tokens/s with Folio/llama.cpp ratios,
file sizes, each process's peak RSS split into RssFile (mapped file pages) and RssAnon (its
own memory), and the fraction of this machine's streaming read bandwidth that decoding
reaches (bytes of weights read per token x tokens/s / Tools/bench/bandwidth.c's figure).

    python3 Tools/bench/weights_bench.py --shape 112m|1b|8b [--folio .build/release/folio]
        [--encodings bf16,int8,int4] [--threads 1,2] [--prompt 128] [--gen 64] [--rounds 3]

Shapes: 112m (hidden 768, 10 layers, 12/4 heads, MLP 2048, vocab 32000, separate lm_head),
1b (Llama-3.2-1B: hidden 2048, 16 layers, 32/8 heads, MLP 8192, vocab 128256, tied),
8b (Llama-3.1-8B: hidden 4096, 32 layers, 32/8 heads, MLP 14336, vocab 128256, separate).

The weights are drawn per tensor (normal, std 0.02, norms 1) and rounded to bfloat16; the
same bfloat16 values are written as a Hugging Face folder (BF16 safetensors, converted by
`folio convert`, with `--weights int8|int4` for the quantized files) and as a BF16 GGUF with
llama.cpp's names and its q/k row permutation (as convert_hf_to_gguf.py writes it), which
llama.cpp's own quantizer (llama_model_quantize, default rules: in Q4_0 the output layer
becomes Q6_K) turns into Q8_0 and Q4_0. Every runner runs in a child process given the same
random prompt ids and decodes greedily; Folio and llama.cpp take turns, one trial each per
round, and the figures are each one's best prefill and best decode. Prefill: prompt tokens /
prompt time. Decode: generated tokens after the first / their time. RSS is sampled from
/proc/PID/status every 5 ms (VmHWM is the kernel's peak of RssAnon + RssFile + RssShmem).
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPES = {
    "112m": dict(hidden_size=768, num_hidden_layers=10, num_attention_heads=12, num_key_value_heads=4,
                 intermediate_size=2048, vocab_size=32000, rope_theta=10000.0, tie_word_embeddings=False),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False),
}
PEER = {"bf16": "BF16", "int8": "Q8_0", "int4": "Q4_0"}
SUB = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
       "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
       "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def tensor_list(cfg):
    """(HF name, shape) in file order."""
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "post_attention_layernorm.weight", (h,)), (p + "mlp.gate_proj.weight", (f, h)),
                (p + "mlp.up_proj.weight", (f, h)), (p + "mlp.down_proj.weight", (h, f))]
    out.append(("model.norm.weight", (h,)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (v, h)))
    return out


def bf16_values(index, name, shape):
    """The tensor's bfloat16 bits (uint16), the same on every call."""
    if len(shape) == 1:
        return np.full(shape, 0x3F80, np.uint16)  # 1.0
    rng = np.random.default_rng(1000 + index)
    x = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_hf(folder, cfg):
    os.makedirs(folder, exist_ok=True)
    tl = tensor_list(cfg)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tl:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as fo:
        fo.write(len(hb).to_bytes(8, "little") + hb)
        for i, (name, shape) in enumerate(tl):
            bf16_values(i, name, shape).tofile(fo)
    c = dict(cfg, model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu", rms_norm_eps=1e-5,
             max_position_embeddings=8192, bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    json.dump(c, open(os.path.join(folder, "config.json"), "w"))


def permute(w, heads):
    """convert_hf_to_gguf.py's LlamaModel.permute: q/k rows reordered for llama.cpp's rope."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf_bf16(path, cfg):
    import gguf
    wr = gguf.GGUFWriter(path, "llama")
    h, n = cfg["hidden_size"], cfg["num_attention_heads"]
    wr.add_context_length(8192)
    wr.add_embedding_length(h)
    wr.add_block_count(cfg["num_hidden_layers"])
    wr.add_feed_forward_length(cfg["intermediate_size"])
    wr.add_head_count(n)
    wr.add_head_count_kv(cfg["num_key_value_heads"])
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_rope_freq_base(cfg["rope_theta"])
    wr.add_rope_dimension_count(h // n)
    wr.add_file_type(32)  # MOSTLY_BF16
    wr.add_tokenizer_model("llama")
    v = cfg["vocab_size"]
    toks = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    toks += [f"\u2581t{i}".encode() for i in range(v - len(toks))]
    wr.add_token_list(toks)
    wr.add_token_scores([0.0] * v)
    wr.add_token_types([2, 3, 3] + [6] * 256 + [1] * (v - 259))
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    tl = tensor_list(cfg)
    def gname(k):
        if k in names:
            return names[k]
        parts = k.split(".")
        return f"blk.{parts[2]}.{SUB['.'.join(parts[3:-1])]}.weight"
    for name, shape in tl:
        f32 = len(shape) == 1  # llama.cpp keeps norms in F32
        wr.add_tensor_info(gname(name), shape, np.dtype(np.float32 if f32 else np.uint16),
                           int(np.prod(shape)) * (4 if f32 else 2), raw_dtype=None if f32 else gguf.GGMLQuantizationType.BF16)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_ti_data_to_file()
    for i, (name, shape) in enumerate(tl):
        t = bf16_values(i, name, shape)
        if len(shape) == 1:
            t = (t.astype(np.uint32) << 16).view(np.float32)
        elif name.endswith("q_proj.weight"):
            t = permute(t, cfg["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            t = permute(t, cfg["num_key_value_heads"])
        wr.write_tensor_data(np.ascontiguousarray(t))
    wr.close()


def llama_quantize(src, dst, ftype):
    import llama_cpp
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = os.cpu_count()
    saved = os.dup(2)  # the quantizer logs every tensor on stderr
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    try:
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    finally:
        os.dup2(saved, 2)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize {dst}: {rc}")


def sample_rss(cmd):
    """Runs cmd; returns (stdout, peak VmHWM, peak RssFile, peak RssAnon) in bytes."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"VmHWM": 0, "RssFile": 0, "RssAnon": 0}
    status = f"/proc/{p.pid}/status"
    while p.poll() is None:
        try:
            for line in open(status):
                k = line.split(":")[0]
                if k in peak:
                    peak[k] = max(peak[k], int(line.split()[1]) * 1024)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.005)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}: exit {p.returncode}: {err.strip()}")
    return out, peak["VmHWM"], peak["RssFile"], peak["RssAnon"]


def folio_trial(folio, model, prompt, gen, threads):
    out, hwm, rf, ra = sample_rss([folio, "run", model, "--tokens", ",".join(map(str, prompt)), "--max-tokens", str(gen),
                                   "--threads", str(threads), "--json"])
    r = json.loads(out)
    assert len(r["tokens"]) == gen, r["tokens"]
    return r["prompt_tokens_per_second"], r["tokens_per_second"], hwm, rf, ra, r["tokens"]


def llamacpp_child(path, prompt, gen, threads):
    """Runs in a child process: one llama.cpp trial, printed as JSON."""
    import llama_cpp
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=len(prompt) + gen + 8, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    # The last position's logits straight from the context (llm.scores is left zero here).
    last = lambda: int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm._ctx.ctx), shape=(llm.n_vocab(),))))
    t0 = time.perf_counter()
    llm.eval(prompt)
    tok = last()
    t1 = time.perf_counter()
    toks = [tok]
    for _ in range(gen - 1):
        llm.eval([tok])
        tok = last()
        toks.append(tok)
    t2 = time.perf_counter()
    print(json.dumps({"prefill": len(prompt) / (t1 - t0), "decode": (gen - 1) / (t2 - t1), "tokens": toks}))


def llamacpp_trial(path, prompt, gen, threads):
    out, hwm, rf, ra = sample_rss([sys.executable, __file__, "--llama-child", path, "--prompt-ids", ",".join(map(str, prompt)),
                                   "--gen", str(gen), "--threads", str(threads)])
    r = json.loads(out.strip().splitlines()[-1])
    return r["prefill"], r["decode"], hwm, rf, ra, r["tokens"]


def weight_bytes_per_token(tensors, tied):
    """Bytes of weights a decoding step reads: every tensor but the token embedding table
    (one row of it), which is read whole as the output layer when tied."""
    return sum(n for name, n in tensors if tied or name not in ("model.embed_tokens.weight", "token_embd.weight"))


def folio_tensors(folio, path):
    doc = json.loads(subprocess.run([folio, "inspect", path, "--json"], check=True, capture_output=True, text=True).stdout)
    return [(t["name"], t["nbytes"]) for t in doc["tensors"]]


def gguf_tensors(path):
    import gguf
    r = gguf.GGUFReader(path)
    return [(t.name, int(t.n_bytes)) for t in r.tensors], {t.name: t.tensor_type.name for t in r.tensors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="112m", choices=sorted(SHAPES))
    ap.add_argument("--folio", default=".build/release/folio")
    ap.add_argument("--encodings", default="bf16,int8,int4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-llamacpp", action="store_true")
    ap.add_argument("--workdir", help="keep the files here (reused when present)")
    ap.add_argument("--llama-child", help=argparse.SUPPRESS)
    ap.add_argument("--prompt-ids", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.llama_child:
        llamacpp_child(a.llama_child, [int(x) for x in a.prompt_ids.split(",")], a.gen, int(a.threads))
        return
    import llama_cpp
    cfg = SHAPES[a.shape]
    encs = a.encodings.split(",")
    threads = [int(t) for t in a.threads.split(",")]
    rng = np.random.default_rng(1)
    prompt = [int(x) for x in rng.integers(3, cfg["vocab_size"], a.prompt)]
    tmp = None if a.workdir else tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR"))
    d = a.workdir or tmp.name
    os.makedirs(d, exist_ok=True)
    hf = os.path.join(d, "hf")
    t0 = time.time()
    if not os.path.exists(os.path.join(hf, "model.safetensors")):
        write_hf(hf, cfg)
    folio_files, peer_files = {}, {}
    for e in encs:
        f = os.path.join(d, f"model-{e}.folio")
        if not os.path.exists(f):
            subprocess.run([a.folio, "convert", hf, f] + ([] if e == "bf16" else ["--weights", e]), check=True, stdout=subprocess.DEVNULL)
        folio_files[e] = f
    if not a.skip_llamacpp:
        bf = os.path.join(d, "model-BF16.gguf")
        if not os.path.exists(bf):
            write_gguf_bf16(bf, cfg)
        for e in encs:
            g = os.path.join(d, f"model-{PEER[e]}.gguf")
            if e != "bf16" and not os.path.exists(g):
                llama_quantize(bf, g, {"int8": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "int4": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[e])
            peer_files[e] = g
    setup = time.time() - t0
    # Streaming read bandwidth, for the fraction decoding reaches.
    here = os.path.dirname(os.path.abspath(__file__))
    bw_bin = os.path.join(d, "bandwidth")
    subprocess.run(["gcc", "-O3", "-march=native", "-pthread", "-o", bw_bin, os.path.join(here, "bandwidth.c")], check=True)
    bw = {}
    for line in subprocess.run([bw_bin, "--mib", "2048", "--threads", ",".join(map(str, threads))], check=True, capture_output=True, text=True).stdout.splitlines():
        j = json.loads(line)
        bw[j["threads"]] = j["gb_per_s"] * 1e9
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "avx2") if f" {f}" in flags]
    tied = cfg["tie_word_embeddings"]
    params = sum(int(np.prod(s)) for _, s in tensor_list(cfg))
    print(f"llama-shaped random model '{a.shape}', {params / 1e6:.1f}M parameters; prompt {a.prompt}, {a.gen} generated; "
          f"CPU {cpu} ({', '.join(isa)}), nproc {os.cpu_count()}; read bandwidth "
          + ", ".join(f"{t} thread{'s' if t > 1 else ''} {bw[t] / 1e9:.1f} GB/s" for t in threads)
          + f"; files made in {setup:.0f} s; llama-cpp-python {llama_cpp.__version__}")
    rows = []
    for e in encs:
        fb = weight_bytes_per_token(folio_tensors(a.folio, folio_files[e]), tied)
        fsize = os.path.getsize(folio_files[e])
        if e in peer_files:
            gt, types = gguf_tensors(peer_files[e])
            gb = weight_bytes_per_token(gt, tied)
            gsize = os.path.getsize(peer_files[e])
            out_type = types.get("output.weight", types.get("token_embd.weight"))
        for t in threads:
            best = {}
            for _ in range(a.rounds):
                runs = [("folio", folio_trial(a.folio, folio_files[e], prompt, a.gen, t))]
                if e in peer_files:
                    runs.append(("llama.cpp", llamacpp_trial(peer_files[e], prompt, a.gen, t)))
                for k, r in runs:
                    b = best.get(k)
                    best[k] = list(r) if b is None else [max(b[0], r[0]), max(b[1], r[1]), max(b[2], r[2]), max(b[3], r[3]), max(b[4], r[4]), r[5]]
            rows.append((e, t, best, fb, fsize, gb if e in peer_files else None, gsize if e in peer_files else None,
                         out_type if e in peer_files else None))
    mb = 1e6
    print(f"{'weights':<8} {'thr':>3} {'runner':<10} {'file MB':>8} {'prefill t/s':>11} {'decode t/s':>10} {'xprefill':>8} {'xdecode':>8} "
          f"{'BW frac':>7} {'peak RSS MB':>11} {'RssFile':>8} {'RssAnon':>8}")
    for e, t, best, fb, fsize, gb, gsize, out_type in rows:
        f = best["folio"]
        for k, r in best.items():
            nbytes, size = (fb, fsize) if k == "folio" else (gb, gsize)
            name = e if k == "folio" else PEER[e] + (f" (out {out_type})" if out_type and out_type != PEER[e] else "")
            print(f"{name:<8} {t:>3} {k:<10} {size / mb:8.1f} {r[0]:11.1f} {r[1]:10.1f} {f[0] / r[0]:8.2f} {f[1] / r[1]:8.2f} "
                  f"{nbytes * r[1] / bw[t]:7.2f} {r[2] / mb:11.1f} {r[3] / mb:8.1f} {r[4] / mb:8.1f}")
        if "llama.cpp" in best:
            same = sum(x == y for x, y in zip(f[5], best["llama.cpp"][5]))
            print(f"         greedy tokens equal to llama.cpp's: {same}/{len(f[5])} (first {f[5][:6]} vs {best['llama.cpp'][5][:6]})")
    if "bf16" in folio_files and "int8" in folio_files:
        print(f"file size int8/bf16 {os.path.getsize(folio_files['int8']) / os.path.getsize(folio_files['bf16']):.3f}, "
              + (f"int4/bf16 {os.path.getsize(folio_files['int4']) / os.path.getsize(folio_files['bf16']):.3f}" if "int4" in folio_files else ""))


if __name__ == "__main__":
    main()
