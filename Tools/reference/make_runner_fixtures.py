#!/usr/bin/env python3
"""Writes Tests/Fixtures/runner/{tiny-llama, tiny-llama-tied-yarn, tiny-longcat}: tiny random
causal LMs as Hugging Face folders (config.json, model.safetensors with the published Hugging
Face tensor names, tokenizer.json, tokenizer_config.json, generation_config.json) plus reference
outputs computed by mlx-lm on the CPU, for the Swift runner's tests.

    python3 Tools/reference/make_runner_fixtures.py [--out Tests/Fixtures/runner] [--only NAME]

Needs mlx (CPU build is enough), mlx-lm, tokenizers, safetensors and numpy; no network. The
weights come from numpy's PCG64 with fixed seeds and are float32, so a rerun with the same
package versions writes the same bytes (model.safetensors, tokenizer.json; the .npy logits are
mlx-lm's float32 CPU results and are only as reproducible as mlx's CPU kernels).

What each folder holds besides the model:
  reference.json     prompts (token ids), the file holding each prompt's full logits, greedy
                     continuations, the tokenizer round trip of one text prompt, and checks.
  logits_<i>.npy     float32 [len, vocab]: mlx-lm's logits for prompt i, one forward pass over
                     the whole prompt without a cache (model(ids[None])[0]).
  greedy_<i>.npy     float32 [32, vocab]: the log-probabilities (logits - logsumexp) that
                     mlx_lm.generate.generate_step produced at each of the 32 greedy steps for
                     prompt i (prefill of ids[:-1] in one chunk, then one token at a time with
                     the KV cache); reference.json lists the argmax tokens.
  tiny-longcat only:
  checkpoint_logits_<i>.npy  the same prompts under the semantics of the published checkpoint's
                     own modelling code where it differs from mlx-lm (n-gram history reset after
                     the end-of-text token, eps 1e-6 in q_a_layernorm / kv_a_layernorm); see
                     Tools/reference/LONGCAT_NOTES.md. NOT mlx-lm output.

The logits_*.npy and greedy_*.npy files are mlx-lm as is; reading the written folder back with
mlx-lm (mlx_lm.load, or mlx_lm.utils.load_model for longcat, whose tokenizer transformers 5 cannot
auto-load without remote code) is checked to give the same parameters and logits bit for bit.
The Llama folders are also checked against transformers' LlamaForCausalLM, and tiny-longcat's
checkpoint_logits against transformers' LongcatFlashForCausalLM fed the n-gram embedding.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

import mlx.core as mx

mx.set_default_device(mx.cpu)

import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_flatten, tree_unflatten  # noqa: E402

import mlx_lm  # noqa: E402
from mlx_lm.generate import generate_step  # noqa: E402
from mlx_lm.models import llama, longcat_flash_ngram  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 512
GREEDY_TOKENS = 32

# Llama 3's pre-tokenizer split (tokenizer.json of Meta-Llama-3-8B).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS = """\
Folio is a Swift toolkit for the weights of large language models. It reads safetensors,
PyTorch checkpoints, NumPy arrays and GGUF files, converts them, and checks what it wrote.
The runner loads a checkpoint folder, encodes a prompt with the tokenizer, and predicts the
next token again and again until it meets the end of the text or the limit of tokens.
A key-value cache keeps the keys and values of every earlier position, so each new token
costs one pass over the layers instead of a pass over the whole prompt.
The quick brown fox jumps over the lazy dog. The lazy dog sleeps in the sun all day long.
Rotary position embeddings turn each pair of dimensions by an angle that grows with the
position; scaled variants stretch the longest wavelengths so a model can read longer texts.
Mixture-of-experts layers send every token to a few experts chosen by a router; some experts
do nothing but return their input, which saves work on easy tokens.
An n-gram embedding hashes the last few tokens into large tables and adds what it finds to
the embedding of the current token.
def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, i * 2))
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 256 512 1024 2048 4096 65536 3.14159 2.71828
Punctuation: (parentheses), [brackets], {braces}; "quotes" and 'apostrophes' - dashes...
It's, we're, they've, I'm, you'll, he'd. Don't stop; can't stop; won't stop!
Once upon a time there was a small model that learned to count: one, two, three, four,
five, six, seven, eight, nine, ten. Then it learned the alphabet: a b c d e f g h i j k l m
n o p q r s t u v w x y z, and then it learned to write sentences of its own.
Tests compare every logit with a reference written by another implementation, and they
compare the greedy continuation token by token.
"""

TEXT_PROMPT = "The quick brown fox jumps over the lazy dog, and the runner counts: one, two, three."


# ---------------------------------------------------------------------------------------------
# Tokenizer


def make_tokenizer(front_specials, back_specials, bos, eos):
    """A byte-level BPE in Llama 3's layout, trained on CORPUS, VOCAB entries in all.

    front_specials take ids 0.. (the trainer puts them first), back_specials are appended after
    the learned tokens (Llama 3 keeps its specials at the end of the vocabulary)."""
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - len(back_specials),
        min_frequency=1,
        special_tokens=list(front_specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS], trainer=trainer)
    if back_specials:
        tok.add_special_tokens(list(back_specials))
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    bos_id, eos_id = tok.token_to_id(bos), tok.token_to_id(eos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A:0",
        pair=f"{bos} $A:0 {bos}:1 $B:1",
        special_tokens=[(bos, bos_id)],
    )
    return tok, bos_id, eos_id


def write_tokenizer(tok, out: Path, bos, eos, pad=None, unk=None, max_len=131072):
    tok.save(str(out / "tokenizer.json"))
    added = {}
    for t in json.loads(tok.to_str())["added_tokens"]:
        added[str(t["id"])] = {
            "content": t["content"], "lstrip": t["lstrip"], "normalized": t["normalized"],
            "rstrip": t["rstrip"], "single_word": t["single_word"], "special": t["special"],
        }
    cfg = {
        "added_tokens_decoder": added,
        "bos_token": bos,
        "eos_token": eos,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": max_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    if pad is not None:
        cfg["pad_token"] = pad
    if unk is not None:
        cfg["unk_token"] = unk
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Weights


def randomize(model: nn.Module, rng: np.random.Generator, rule) -> None:
    """Replace every parameter of `model` (in tree_flatten order) by rule(name, shape, rng)."""
    new = []
    for name, p in tree_flatten(model.parameters()):
        a = np.asarray(rule(name, tuple(p.shape), rng), dtype=np.float32)
        assert a.shape == tuple(p.shape), (name, a.shape, p.shape)
        new.append((name, mx.array(a)))
    model.update(tree_unflatten(new))
    mx.eval(model.parameters())


def mlx_params(model: nn.Module) -> dict:
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def write_safetensors(tensors: dict, path: Path) -> None:
    ordered = {k: np.ascontiguousarray(tensors[k], dtype=np.float32) for k in sorted(tensors)}
    save_file(ordered, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------------------------------
# Reference outputs


def full_logits(model, ids) -> np.ndarray:
    out = model(mx.array([ids], dtype=mx.int32))
    mx.eval(out)
    return np.array(out[0].astype(mx.float32))


def greedy(model, ids, n=GREEDY_TOKENS):
    tokens, steps = [], []
    cache = make_prompt_cache(model)
    for token, logprobs in generate_step(mx.array(ids, dtype=mx.int32), model, max_tokens=n,
                                         prompt_cache=cache):
        tokens.append(int(token))
        steps.append(np.array(logprobs.astype(mx.float32)))
    return tokens, np.stack(steps)


def top2_margin(rows: np.ndarray) -> float:
    s = np.sort(rows, axis=-1)
    return float(np.min(s[..., -1] - s[..., -2]))


def build_prompts(rng, bos, eos, lo, hi, text_ids):
    """Prompts of lengths 1, 2, 3, 5, 8, 13, 17, 32, 64, 80 and the text prompt.

    Ordinary tokens are drawn from [lo, hi); bos starts every prompt."""
    def r(n):
        return [int(x) for x in rng.integers(lo, hi, size=n)]

    a, b, c, d, e, f, g = r(7)
    x, y, z, w = r(4)
    rand40 = r(40)
    prompts = [
        ("bos only", [bos]),
        ("bos + 1", [bos] + r(1)),
        ("bos + 2", [bos] + r(2)),
        ("random 5", [bos] + r(4)),
        ("random 8", [bos] + r(7)),
        ("random 13", [bos] + r(12)),
        ("end-of-text in the middle; the 4-gram a b c d comes before and after it",
         [bos, a, b, c, d, e, eos, a, b, c, d, e, f, g, a, b, c]),
        ("4-token pattern repeated", [bos] + [a, b, c, d] * 7 + [a, b, c]),
        ("random with repeated 3- and 4-grams", [bos] + r(20) + [x, y, z] * 5 + r(12) + [x, y, z, w] * 4),
        ("40 random tokens, then their first 39 again", [bos] + rand40 + rand40[:39]),
        ("text prompt", list(text_ids)),
    ]
    want = [1, 2, 3, 5, 8, 13, 17, 32, 64, 80]
    assert [len(p) for _, p in prompts[:10]] == want, [len(p) for _, p in prompts]
    return prompts


def write_reference(out: Path, model, tok, prompts, greedy_indices, meta, extra_logits=None):
    """Writes logits_<i>.npy, greedy_<i>.npy and reference.json; returns the reference dict."""
    entries = []
    for i, (name, ids) in enumerate(prompts):
        logits = full_logits(model, ids)
        np.save(out / f"logits_{i}.npy", logits.astype("<f4"))
        entry = {"index": i, "name": name, "ids": ids, "length": len(ids),
                 "logits": f"logits_{i}.npy", "shape": list(logits.shape),
                 "argmax": [int(t) for t in logits.argmax(-1)],
                 "min_top2_margin": top2_margin(logits)}
        if extra_logits is not None:
            cl = extra_logits(ids)
            if cl is not None:
                np.save(out / f"checkpoint_logits_{i}.npy", cl.astype("<f4"))
                entry["checkpoint_logits"] = f"checkpoint_logits_{i}.npy"
                entry["checkpoint_vs_mlx_max_abs_diff"] = float(np.max(np.abs(cl - logits)))
        entries.append(entry)
    greedy_entries = []
    for i in greedy_indices:
        ids = prompts[i][1]
        tokens, steps = greedy(model, ids)
        np.save(out / f"greedy_{i}.npy", steps.astype("<f4"))
        assert [int(t) for t in steps.argmax(-1)] == tokens
        first = full_logits(model, ids)[-1]
        first_lp = first - (np.log(np.sum(np.exp(first - first.max()))) + first.max())
        greedy_entries.append({
            "prompt_index": i, "max_tokens": GREEDY_TOKENS, "tokens": tokens,
            "logprobs": f"greedy_{i}.npy", "shape": list(steps.shape),
            "min_top2_margin": top2_margin(steps),
            "step0_vs_full_logits_max_abs_diff": float(np.max(np.abs(steps[0] - first_lp))),
            "decoded": tok.decode(tokens, skip_special_tokens=False),
        })
    text_i = len(prompts) - 1
    text_ids = prompts[text_i][1]
    enc = tok.encode(TEXT_PROMPT)
    ref = dict(meta)
    ref.update({
        "prompts": entries,
        "greedy": greedy_entries,
        "text_prompt": {
            "prompt_index": text_i,
            "text": TEXT_PROMPT,
            "ids": text_ids,
            "tokens": enc.tokens,
            "decoded_skip_special": tok.decode(text_ids, skip_special_tokens=True),
            "decoded_with_special": tok.decode(text_ids, skip_special_tokens=False),
        },
    })
    return ref


def verify_reload(out: Path, model, prompts):
    """Reads the folder back with mlx-lm: same parameters bit for bit, same logits bit for bit,
    and the tokenizer mlx-lm wraps encodes the text prompt as tokenizers does."""
    checks = {}
    try:
        loaded, tokenizer = mlx_lm.load(str(out))
        checks["reloaded_with"] = "mlx_lm.load"
    except Exception as e:
        # transformers 5's AutoTokenizer builds a config for an unknown model_type through
        # PreTrainedConfig, which trips over rope_scaling; the model itself loads fine.
        from mlx_lm.utils import load_model
        from transformers import PreTrainedTokenizerFast
        loaded, _ = load_model(out)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(out))
        checks["reloaded_with"] = "mlx_lm.utils.load_model + PreTrainedTokenizerFast"
        checks["mlx_lm_load_error"] = f"{type(e).__name__}: {e}"[:300]
    a, b = mlx_params(model), mlx_params(loaded)
    assert sorted(a) == sorted(b), set(a) ^ set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float32, (k, a[k].dtype, b[k].dtype)
        assert np.array_equal(a[k], b[k]), k
    for _, ids in prompts:
        assert np.array_equal(full_logits(model, ids), full_logits(loaded, ids))
    assert list(tokenizer.encode(TEXT_PROMPT)) == prompts[-1][1], (
        list(tokenizer.encode(TEXT_PROMPT)), prompts[-1][1])
    checks.update({"reloaded_parameters_identical": True, "reloaded_logits_identical": True,
                   "reloaded_tokenizer_encodes_text_prompt_identically": True})
    return checks


def package_versions():
    from importlib.metadata import version
    return {p: version(p) for p in ["mlx", "mlx-lm", "tokenizers", "safetensors", "numpy"]}


def fresh_dir(out: Path):
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


# ---------------------------------------------------------------------------------------------
# Llama


def llama_rule(name, shape, rng):
    if name.endswith("norm.weight"):
        return 1.0 + 0.2 * rng.standard_normal(shape)
    if name.endswith("embed_tokens.weight"):
        return rng.standard_normal(shape)
    if name == "lm_head.weight":
        return 0.5 * rng.standard_normal(shape)
    assert len(shape) == 2, name
    return rng.standard_normal(shape) / math.sqrt(shape[1])


def tied_llama_rule(name, shape, rng):
    """With tied embeddings the residual stream's own embedding dominates the logits and greedy
    decoding just repeats the input token; smaller embeddings and stronger o_proj / down_proj
    outputs give varied continuations."""
    if name.endswith("embed_tokens.weight"):
        return 0.3 * rng.standard_normal(shape)
    a = llama_rule(name, shape, rng)
    if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
        a = 5.0 * a
    return a


def make_llama(out: Path, tied: bool, rope_scaling: dict, rope_theta: float, max_pos: int, seed: int):
    fresh_dir(out)
    tok, bos, eos = make_tokenizer([], ["<|begin_of_text|>", "<|end_of_text|>"],
                                   "<|begin_of_text|>", "<|end_of_text|>")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": max_pos,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": tied,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": "float32",
    }
    model = llama.Model(llama.ModelArgs.from_dict(config))
    randomize(model, np.random.default_rng(seed), tied_llama_rule if tied else llama_rule)
    # Llama's mlx names are the Hugging Face names; a tied model stores no lm_head.weight.
    tensors = mlx_params(model)
    assert tied == ("lm_head.weight" not in tensors)
    write_safetensors(tensors, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "bos_token_id": bos, "eos_token_id": eos, "do_sample": False},
        indent=2) + "\n")
    write_tokenizer(tok, out, "<|begin_of_text|>", "<|end_of_text|>")

    rng = np.random.default_rng(seed + 1000)
    text_ids = tok.encode(TEXT_PROMPT).ids
    prompts = build_prompts(rng, bos, eos, 0, bos, text_ids)
    meta = {
        "generator": "Tools/reference/make_runner_fixtures.py",
        "semantics": "mlx-lm as is (mlx_lm.models.llama), float32, CPU",
        "versions": package_versions(),
        "model": out.name,
        "bos_token_id": bos, "eos_token_id": eos, "vocab_size": VOCAB,
        "weights_seed": seed,
        "tensor_names": "Hugging Face LlamaForCausalLM names (identical to mlx-lm's)",
    }
    ref = write_reference(out, model, tok, prompts, [10, 5, 6], meta)
    ref["checks"] = verify_reload(out, model, prompts)
    ref["checks"].update(check_llama_with_transformers(out, prompts))
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def check_llama_with_transformers(out: Path, prompts):
    """Cross-check: transformers' LlamaForCausalLM (float32, eager) on the written folder."""
    try:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM
    except Exception as e:  # pragma: no cover
        return {"transformers_check": f"skipped: {e}"}
    torch.manual_seed(0)
    m = LlamaForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32, attn_implementation="eager")
    m.eval()
    worst = 0.0
    for i, (_, ids) in enumerate(prompts):
        with torch.no_grad():
            t = m(torch.tensor([ids])).logits[0].numpy()
        worst = max(worst, float(np.max(np.abs(t - np.load(out / f"logits_{i}.npy")))))
    hf_tok = AutoTokenizer.from_pretrained(str(out))
    same_ids = hf_tok(TEXT_PROMPT)["input_ids"] == prompts[-1][1]
    return {"transformers_version": __import__("transformers").__version__,
            "transformers_llama_max_abs_logit_diff": worst,
            "transformers_tokenizer_same_ids": bool(same_ids)}


# ---------------------------------------------------------------------------------------------
# LongCat-Flash n-gram (LongCat-Flash-Lite architecture)

LONGCAT_CONFIG = {
    "architectures": ["LongcatFlashNgramForCausalLM"],
    "model_type": "longcat_flash_ngram",
    "attention_method": "MLA",
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "ffn_hidden_size": 96,
    "expert_ffn_hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 4,
    "q_lora_rank": 48,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
    "mla_scale_q_lora": True,
    "mla_scale_kv_lora": True,
    "attention_bias": False,
    "n_routed_experts": 4,
    "zero_expert_num": 2,
    "zero_expert_type": "identity",
    "moe_topk": 2,
    "norm_topk_prob": False,
    "router_bias": False,
    "routed_scaling_factor": 2.5,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {
        "type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "beta_fast": 32,
        "beta_slow": 1,
        "mscale": 1.0,
        "mscale_all_dim": 0.707,
    },
    "max_position_embeddings": 256,
    "ngram_vocab_size_ratio": 3,
    "emb_neighbor_num": 3,
    "emb_split_num": 2,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "use_cache": True,
    "torch_dtype": "float32",
}


def longcat_rule(name, shape, rng, router_gain=2.0, residual_gain=1.0):
    if name.endswith("e_score_correction_bias"):
        return 0.1 * rng.standard_normal(shape)
    if "norm" in name and name.endswith(".weight"):  # every RMSNorm, incl. q_a/kv_a_layernorm
        return 1.0 + 0.2 * rng.standard_normal(shape)
    if name.endswith("word_embeddings.weight") or ".embedders." in name:
        return rng.standard_normal(shape)
    if name == "lm_head.weight":
        return 0.5 * rng.standard_normal(shape)
    if name.endswith("router.classifier.weight"):
        return router_gain * rng.standard_normal(shape) / math.sqrt(shape[1])
    if name.endswith("embed_q.weight"):      # [heads, kv_lora_rank, qk_nope]: input is qk_nope
        return residual_gain * rng.standard_normal(shape) / math.sqrt(shape[2])
    if name.endswith("unembed_out.weight"):  # [heads, v_head_dim, kv_lora_rank]
        return rng.standard_normal(shape) / math.sqrt(shape[2])
    # nn.Linear [out, in] and SwitchLinear [experts, out, in]; projections that write into
    # the residual stream get `residual_gain` (GPT-2-style scaled initialization), and so do
    # the queries and keys (softer attention).
    gain = residual_gain if name.endswith(("o_proj.weight", "down_proj.weight", "q_b_proj.weight")) else 1.0
    return gain * rng.standard_normal(shape) / math.sqrt(shape[-1])


def longcat_mlx_to_hf(params: dict, cfg: dict) -> dict:
    """Inverse of mlx_lm.models.longcat_flash_ngram.Model.sanitize (float, unquantized)."""
    H, nope, v = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    kv_rank = cfg["kv_lora_rank"]
    out = {}
    for k, a in params.items():
        if k == "model.ngram_embeddings.word_embeddings.weight":
            out["model.embed_tokens.weight"] = a
        elif ".mlp.switch_mlp." in k:
            prefix, rest = k.split(".mlp.switch_mlp.")          # rest: gate_proj.weight
            for e in range(a.shape[0]):
                out[f"{prefix}.mlp.experts.{e}.{rest}"] = a[e]
        elif k.endswith(".embed_q.weight"):
            prefix = k[: -len(".embed_q.weight")]
            wk = a.swapaxes(-1, -2)                               # [H, nope, kv_rank]
            wv = params[prefix + ".unembed_out.weight"]          # [H, v, kv_rank]
            assert wk.shape == (H, nope, kv_rank) and wv.shape == (H, v, kv_rank)
            out[prefix + ".kv_b_proj.weight"] = np.concatenate([wk, wv], axis=1).reshape(H * (nope + v), kv_rank)
        elif k.endswith(".unembed_out.weight"):
            continue
        else:
            out[k] = a
    return out


def ngram_shift_ignore_eos(ctx: np.ndarray, n: int, eos: int) -> np.ndarray:
    """The checkpoint's _shift_right_ignore_eos: shift right by n inside each segment, where a
    segment ends AT an end-of-text token (inclusive); positions fewer than n into their segment
    read 0."""
    out = np.zeros_like(ctx)
    for row in range(ctx.shape[0]):
        prev = 0
        ends = [int(p) + 1 for p in np.nonzero(ctx[row] == eos)[0]] + [ctx.shape[1]]
        for end in ends:
            if end - prev > n:
                out[row, prev + n:end] = ctx[row, prev:end - n]
            prev = end
    return out


def checkpoint_semantics_model(model, cfg):
    """A copy of `model` with the published checkpoint's semantics where mlx-lm differs:
    n-gram history reset after eos, and eps 1e-6 in q_a_layernorm / kv_a_layernorm."""
    twin = longcat_flash_ngram.Model(longcat_flash_ngram.ModelArgs.from_dict(cfg))
    twin.update(model.parameters())
    eos = cfg["eos_token_id"]
    emb = twin.model.ngram_embeddings

    def shift(x, n):
        if n <= 0:
            return x
        return mx.array(ngram_shift_ignore_eos(np.array(x), n, eos)).astype(x.dtype)

    emb._shift_right = shift
    for layer in twin.model.layers:
        for attn in layer.self_attn:
            attn.q_a_layernorm.eps = 1e-6
            attn.kv_a_layernorm.eps = 1e-6
    return twin


def router_stats(model, prompts, greedy_runs):
    """Smallest gap between the k-th and (k+1)-th corrected router score over every token of
    every prompt and greedy run, and how often each expert was picked."""
    from mlx_lm.models import longcat_flash
    cls = longcat_flash.LongcatFlashTopkRouter
    original = cls.__call__
    gaps, picks = [], None

    def spy(self, h):
        nonlocal picks
        logits = self.classifier(h)
        scores = mx.softmax(logits, axis=-1) + self.e_score_correction_bias
        s = np.sort(np.array(scores).reshape(-1, scores.shape[-1]), axis=-1)
        if self.top_k < s.shape[-1]:  # with every expert picked there is no choice to flip
            gaps.append(float(np.min(s[:, -self.top_k] - s[:, -self.top_k - 1])))
        idx, w = original(self, h)
        counts = np.bincount(np.array(idx).reshape(-1), minlength=scores.shape[-1])
        picks = counts if picks is None else picks + counts
        return idx, w

    cls.__call__ = spy
    try:
        for _, ids in prompts:
            full_logits(model, ids)
        for ids in greedy_runs:
            greedy(model, ids)
    finally:
        cls.__call__ = original
    return {"min_topk_gap": min(gaps) if gaps else None, "expert_pick_counts": [int(c) for c in picks]}


def make_longcat(out: Path, seed: int, overrides=None, router_gain=2.0, residual_gain=1.0):
    fresh_dir(out)
    cfg = dict(LONGCAT_CONFIG, **(overrides or {}))
    specials = ["<longcat_unk>", "<longcat_s>", "</longcat_s>", "<longcat_pad>"]
    tok, bos, eos = make_tokenizer(specials, [], "<longcat_s>", "</longcat_s>")
    assert (bos, eos) == (cfg["bos_token_id"], cfg["eos_token_id"])
    assert tok.token_to_id("<longcat_pad>") == cfg["pad_token_id"]

    model = longcat_flash_ngram.Model(longcat_flash_ngram.ModelArgs.from_dict(cfg))
    randomize(model, np.random.default_rng(seed), lambda n, sh, r: longcat_rule(n, sh, r, router_gain, residual_gain))
    params = mlx_params(model)
    hf = longcat_mlx_to_hf(params, cfg)
    write_safetensors(hf, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "bos_token_id": bos, "eos_token_id": eos,
         "pad_token_id": cfg["pad_token_id"], "do_sample": False}, indent=2) + "\n")
    write_tokenizer(tok, out, "<longcat_s>", "</longcat_s>", pad="<longcat_pad>", unk="<longcat_unk>")

    rng = np.random.default_rng(seed + 1000)
    text_ids = tok.encode(TEXT_PROMPT).ids
    prompts = build_prompts(rng, bos, eos, 4, VOCAB, text_ids)
    twin = checkpoint_semantics_model(model, cfg)
    meta = {
        "generator": "Tools/reference/make_runner_fixtures.py",
        "semantics": "logits_*.npy and greedy_*.npy: mlx-lm as is (mlx_lm.models.longcat_flash_ngram), "
                     "float32, CPU. checkpoint_logits_*.npy: the same weights with the published "
                     "checkpoint's n-gram reset after eos_token_id and eps 1e-6 in q_a_layernorm and "
                     "kv_a_layernorm (see Tools/reference/LONGCAT_NOTES.md); not mlx-lm output.",
        "versions": package_versions(),
        "model": out.name,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": cfg["pad_token_id"],
        "vocab_size": VOCAB,
        "weights_seed": seed,
        "tensor_names": "published Hugging Face names of meituan-longcat/LongCat-Flash-Lite "
                        "(inverse of mlx-lm's sanitize); no model.mtp.* tensors",
        "ngram_tables": [{"index": (g - 2) * cfg["emb_split_num"] + j, "n": g, "split": j,
                          "rows": cfg["ngram_vocab_size_ratio"] * VOCAB + 2 * ((g - 2) * cfg["emb_split_num"] + j) + 1}
                         for g in range(2, cfg["emb_neighbor_num"] + 1) for j in range(cfg["emb_split_num"])],
    }
    ref = write_reference(out, model, tok, prompts, [10, 5, 6], meta,
                          extra_logits=lambda ids: full_logits(twin, ids))
    ref["checks"] = verify_reload(out, model, prompts)
    ref["checks"]["router"] = router_stats(model, [p for p in prompts],
                                           [prompts[i][1] for i in (10, 5, 6)])
    ref["checks"]["ngram_ids_example"] = ngram_ids_example(cfg, prompts[6][1])
    ref["checks"].update(check_longcat_with_transformers(out, cfg, twin, prompts))
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def check_longcat_with_transformers(out: Path, cfg, twin, prompts):
    """Cross-check of everything after the n-gram embedding: transformers' LongcatFlashForCausalLM
    (the Hugging Face port of LongCat-Flash's own code: eps 1e-6 in the q/kv LoRA norms) fed with
    the checkpoint-semantics n-gram embedding as inputs_embeds, weights read from the written
    model.safetensors (per-expert tensors fused into its gate_up_proj / down_proj)."""
    try:
        import torch
        from transformers import LongcatFlashConfig, LongcatFlashForCausalLM
    except Exception as e:  # pragma: no cover
        return {"transformers_check": f"skipped: {e}"}
    from safetensors.numpy import load_file
    w = load_file(str(out / "model.safetensors"))
    rope = dict(cfg["rope_scaling"])
    rope["rope_type"] = rope.pop("type")
    rope["rope_theta"] = cfg["rope_theta"]
    keys = ["vocab_size", "hidden_size", "num_layers", "num_attention_heads", "ffn_hidden_size",
            "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
            "moe_topk", "n_routed_experts", "zero_expert_num", "expert_ffn_hidden_size",
            "routed_scaling_factor", "rms_norm_eps", "max_position_embeddings", "attention_bias"]
    hc = LongcatFlashConfig(**{k: cfg[k] for k in keys}, head_dim=cfg["qk_rope_head_dim"],
                            rope_parameters=rope, bos_token_id=cfg["bos_token_id"],
                            eos_token_id=cfg["eos_token_id"], pad_token_id=cfg["pad_token_id"])
    hc._attn_implementation = "eager"
    torch.manual_seed(0)
    m = LongcatFlashForCausalLM(hc).eval()
    E, Z = cfg["n_routed_experts"], cfg["zero_expert_num"]
    sd = {}
    for k, a in w.items():
        if "ngram_embeddings" in k or ".mlp.experts." in k:
            continue
        sd[k] = torch.from_numpy(a)
    for L in range(cfg["num_layers"]):
        p = f"model.layers.{L}.mlp.experts"
        gate_up = torch.zeros(E + Z, 2 * cfg["expert_ffn_hidden_size"], cfg["hidden_size"])
        down = torch.zeros(E, cfg["hidden_size"], cfg["expert_ffn_hidden_size"])
        for e in range(E):
            gate_up[e] = torch.from_numpy(np.concatenate([w[f"{p}.{e}.gate_proj.weight"], w[f"{p}.{e}.up_proj.weight"]]))
            down[e] = torch.from_numpy(w[f"{p}.{e}.down_proj.weight"])
        sd[f"{p}.gate_up_proj"] = gate_up
        sd[f"{p}.down_proj"] = down
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and not [k for k in missing if "rotary" not in k], (missing, unexpected)
    worst, worst_mlx = 0.0, 0.0
    for i, (_, ids) in enumerate(prompts):
        emb = np.array(twin.model.ngram_embeddings(mx.array([ids], dtype=mx.int32)))
        with torch.no_grad():
            t = m(inputs_embeds=torch.from_numpy(emb)).logits[0].numpy()
        worst = max(worst, float(np.max(np.abs(t - np.load(out / f"checkpoint_logits_{i}.npy")))))
        if cfg["eos_token_id"] not in ids[1:]:
            worst_mlx = max(worst_mlx, float(np.max(np.abs(t - np.load(out / f"logits_{i}.npy")))))
    return {"transformers_version": __import__("transformers").__version__,
            "transformers_longcat_flash_vs_checkpoint_logits_max_abs_diff": worst,
            "transformers_longcat_flash_vs_mlx_logits_max_abs_diff_prompts_without_eos": worst_mlx}


def ngram_ids_example(cfg, ids):
    """Row ids per table for one prompt, both without reset (mlx-lm) and with the checkpoint's
    reset after eos: [table][position]."""
    V, k, n = cfg["vocab_size"], cfg["emb_split_num"], cfg["emb_neighbor_num"]
    m = cfg["ngram_vocab_size_ratio"] * V
    ctx = np.array([ids], dtype=np.int64)

    def shift_plain(x, d):
        out = np.zeros_like(x)
        out[:, d:] = x[:, :-d]
        return out

    result = {}
    for label, shift in (("mlx_lm", shift_plain),
                         ("checkpoint_eos_reset", lambda x, d: ngram_shift_ignore_eos(x, d, cfg["eos_token_id"]))):
        tables = []
        for g in range(2, n + 1):
            for j in range(k):
                index = (g - 2) * k + j
                M = m + 2 * index + 1
                acc = ctx.copy()
                p = 1
                for d in range(1, g):
                    p = (p * V) % M
                    acc = acc + shift(ctx, d) * p
                tables.append([int(t) for t in (acc % M)[0]])
        result[label] = tables
    return {"prompt_index": 6, "ids": ids, **result}


# ---------------------------------------------------------------------------------------------


def folder_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.iterdir() if f.is_file())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "Tests/Fixtures/runner"))
    ap.add_argument("--only", choices=["tiny-llama", "tiny-llama-tied-yarn", "tiny-longcat", "tiny-longcat-wide"])
    args = ap.parse_args()
    out = Path(args.out)
    jobs = {
        "tiny-llama": lambda p: make_llama(
            p, tied=False, rope_theta=500000.0, max_pos=512, seed=11,
            rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64, "rope_type": "llama3"}),
        # factor = max_position_embeddings / original_max_position_embeddings, so transformers
        # (which derives the factor from that ratio when both are given) and mlx-lm agree.
        "tiny-llama-tied-yarn": lambda p: make_llama(
            p, tied=True, rope_theta=10000.0, max_pos=256, seed=12,
            rope_scaling={"factor": 4.0, "original_max_position_embeddings": 64,
                          "beta_fast": 32.0, "beta_slow": 1.0, "rope_type": "yarn"}),
        "tiny-longcat": lambda p: make_longcat(p, seed=13),
        # For the quantized n-gram table checks: rows of 32 values, so that int4/g32 applies
        # (tiny-longcat's rows are 16 wide); residual-stream projections (o_proj, down_proj)
        # and the query and key projections scaled by 1/4, and every expert routed (top-k = all 6). A random model
        # at full gain amplifies any change of its input many times over (sharp random
        # attention; top-2 routing flips between an identity and a real expert): bf16 n-gram
        # tables alone move its logits to cosine 0.987. Trained models are not that fragile.
        "tiny-longcat-wide": lambda p: make_longcat(p, seed=14, overrides={"hidden_size": 128, "moe_topk": 6}, residual_gain=0.25),
    }
    for name, job in jobs.items():
        if args.only and name != args.only:
            continue
        p = out / name
        ref = job(p)
        size = folder_size(p)
        digest = hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()[:16]
        print(f"{name}: {size / 1e6:.2f} MB, model.safetensors sha256 {digest}…, checks {json.dumps(ref['checks'])}")
        assert size < 5_000_000, f"{name} is {size} bytes"


if __name__ == "__main__":
    main()
