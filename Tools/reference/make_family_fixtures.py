#!/usr/bin/env python3
"""Writes Tests/Fixtures/families/<name>/: tiny random decoder checkpoints of the common
architectures, saved by transformers' own save_pretrained (config.json and model.safetensors
exactly as transformers writes them), plus transformers' float32 logits and greedy tokens, for
the Swift runner's family tests.

    python3 Tools/reference/make_family_fixtures.py [--out Tests/Fixtures/families] [--only NAME]

Needs torch, transformers (5.x; the version is recorded), safetensors and numpy; no network.
Weights come from torch.Generator seeds and are float32, drawn wider than transformers' own
initialisation (std 1/sqrt(fan_in) for matrices, norms 1 +- 0.1 or +-0.1 for (1+w) norms) so
that logits spread (deviation of a few units) and a wrong formula shows.

Each folder holds:
  config.json, generation_config.json, model.safetensors   save_pretrained's output
  reference.json   prompts (ids), logits file per prompt, greedy continuations, versions
  logits_<i>.npy   float32 [len, vocab]: model(ids[None]).logits[0], eager attention, no cache
Greedy continuations are 32 tokens from model.generate(do_sample=False) with the KV cache; the
script checks that they equal argmax decoding by full forward passes, and takes the first seed
(100 + family index + 1000 k) whose greedy runs meet no eos and no step with a top-2 margin
under 1e-3 (so a 1e-4 logit error cannot flip a token) and, for mixture-of-experts families,
no routing choice with a router-logit margin under ROUTING_MARGIN.
"""
import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 256
GREEDY = 32
PROMPT_LENGTHS = [1, 2, 7, 19, 80]

COMMON = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)


def llama_like(**kw):
    d = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, rms_norm_eps=1e-5)
    d.update(COMMON)
    d.update(kw)
    return d


FAMILIES = {
    # transformers 5 writes rope_theta and the scaling inside rope_parameters.
    "llama-rope-parameters": ("llama", llama_like(
        rope_parameters=dict(rope_type="llama3", rope_theta=50000.0, factor=8.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=32))),
    "mistral": ("mistral", llama_like(sliding_window=16, head_dim=16,
                                      rope_parameters=dict(rope_type="default", rope_theta=100000.0))),
    "qwen2": ("qwen2", llama_like(rope_parameters=dict(rope_type="default", rope_theta=1000000.0), tie_word_embeddings=True)),
    "qwen3": ("qwen3", llama_like(head_dim=32, rope_parameters=dict(rope_type="default", rope_theta=1000000.0), rms_norm_eps=1e-6)),
    "qwen3-moe": ("qwen3_moe", llama_like(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                                          norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                                          rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "mixtral": ("mixtral", llama_like(num_local_experts=4, num_experts_per_tok=2, head_dim=16,
                                      rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "gemma2": ("gemma2", llama_like(head_dim=16, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
                                    sliding_window=16, attn_logit_softcapping=4.0, final_logit_softcapping=6.0,
                                    layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True,
                                    rope_parameters=dict(rope_type="default", rope_theta=10000.0), rms_norm_eps=1e-6)),
    "gemma3": ("gemma3_text", llama_like(num_hidden_layers=3, head_dim=16, hidden_activation="gelu_pytorch_tanh",
                                         query_pre_attn_scalar=16, sliding_window=16, tie_word_embeddings=True,
                                         layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                         rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=10000.0),
                                                          "full_attention": dict(rope_type="linear", factor=4.0, rope_theta=1000000.0)},
                                         rms_norm_eps=1e-6)),
    "phi3": ("phi3", llama_like(num_key_value_heads=2, original_max_position_embeddings=256,
                                rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5))),
    "olmo2": ("olmo2", llama_like(rope_parameters=dict(rope_type="default", rope_theta=500000.0), rms_norm_eps=1e-6)),
    "gpt2": ("gpt2", dict(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2,
                          activation_function="gelu_new", layer_norm_epsilon=1e-5)),
    "deepseek-v3": ("deepseek_v3", llama_like(num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
                                              qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, moe_intermediate_size=32,
                                              n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2, topk_group=1,
                                              routed_scaling_factor=2.5, first_k_dense_replace=1, norm_topk_prob=True,
                                              rope_interleave=True, head_dim=8,
                                              rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # DeepSeek-V2-Lite's shape: no q LoRA (one q_proj), softmax router limited to the best group.
    "deepseek-v2": ("deepseek_v2", llama_like(num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
                                              qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, moe_intermediate_size=32,
                                              n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2, n_group=2, topk_group=1,
                                              topk_method="group_limited_greedy", routed_scaling_factor=1.5,
                                              first_k_dense_replace=1, norm_topk_prob=False, head_dim=8,
                                              rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # RoPE in layer 0 only (interval 2); layer 1, without RoPE, slides over 16 positions.
    "smollm3": ("smollm3", llama_like(no_rope_layer_interval=2, use_sliding_window=True, sliding_window=16, tie_word_embeddings=True,
                                      rope_parameters=dict(rope_type="default", rope_theta=50000.0))),
}


def randomize(model, gen, one_plus):
    """Replaces every parameter by a seeded draw (see the module docstring)."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                fan_in = p.shape[-1]
                if "embed" in name or "wte" in name or "wpe" in name:
                    std = 1.0
                elif "lm_head" in name:
                    std = 0.5
                elif name.endswith("mlp.gate.weight") or name.endswith("block_sparse_moe.gate.weight"):
                    # Routers drawn wider, so that expert choices are rarely near ties.
                    std = 2.0 / math.sqrt(fan_in)
                else:
                    std = 1.0 / math.sqrt(fan_in)
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif name.endswith("bias") and ("norm" not in name and "ln_" not in name):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "correction_bias" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:  # norm weights
                base = 0.0 if one_plus else 1.0
                p.copy_(base + torch.randn(p.shape, generator=gen) * 0.1)


# Mixture-of-experts seeds: at every position of every prompt and in every layer, the router
# logit of the k-th chosen expert exceeds the (k+1)-th by at least this much, so that the
# small perturbation of bf16 or int8 weights elsewhere cannot flip a discrete expert choice
# (as the greedy margins keep a 1e-4 logit error from flipping a token).
ROUTING_MARGIN = 0.02


class RoutingMargins:
    """Records, through hooks on the softmax routers (Mixtral's block_sparse_moe.gate,
    Qwen3-MoE's mlp.gate), the smallest gap between the k-th and (k+1)-th router logit."""

    def __init__(self, model, cfg):
        self.minimum = None
        self.active = True
        k = cfg.get("num_experts_per_tok")
        if k is None:
            return
        if "n_group" in cfg:
            for name, module in model.named_modules():
                if name.endswith("mlp.gate"):
                    module.register_forward_pre_hook(self.group_hook(module, k, cfg))
            return
        for name, module in model.named_modules():
            if name.endswith("block_sparse_moe.gate") or name.endswith("mlp.gate"):
                module.register_forward_pre_hook(self.hook(module, k))

    def hook(self, module, k):
        def record(mod, args):
            if not self.active:
                return
            x = args[0].reshape(-1, args[0].shape[-1])
            scores = torch.sort(x @ mod.weight.T, dim=-1, descending=True).values
            gap = float((scores[:, k - 1] - scores[:, k]).min())
            self.minimum = gap if self.minimum is None else min(self.minimum, gap)
        return record

    def group_hook(self, module, k, cfg):
        """DeepSeek's group-limited routers: the gap between the kept groups and the next one
        and between the k-th chosen expert and the next one among the kept groups, in the
        router's units: V3's sigmoid + correction scores scaled by 4 to the logit units of
        ROUTING_MARGIN (the slope of a sigmoid is at most 1/4); V2's logits (its softmax keeps
        their order)."""
        groups, kept = cfg["n_group"], cfg["topk_group"]

        def record(mod, args):
            if not self.active:
                return
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            logits = x @ mod.weight.float().T
            if hasattr(mod, "e_score_correction_bias"):
                choice = logits.sigmoid() + mod.e_score_correction_bias
                per_group = choice.view(len(x), groups, -1).topk(2, dim=-1).values.sum(-1)
                unit = 4
            else:
                # A softmax keeps the order of the logits: gaps are measured on them.
                choice = logits
                per_group = choice.view(len(x), groups, -1).max(-1).values
                unit = 1
            g = torch.sort(per_group, dim=-1, descending=True).values
            gap = float((g[:, kept - 1] - g[:, kept]).min()) if kept < groups else float("inf")
            mask = torch.zeros_like(per_group).scatter_(1, torch.topk(per_group, kept, dim=-1).indices, 1)
            masked = choice.masked_fill(~mask.bool().repeat_interleave(choice.shape[1] // groups, dim=1), -1e9)
            e = torch.sort(masked, dim=-1, descending=True).values
            gap = min(gap, float((e[:, k - 1] - e[:, k]).min())) * unit
            self.minimum = gap if self.minimum is None else min(self.minimum, gap)
        return record


def make(name, out, seed):
    model_type, cfg = FAMILIES[name]
    config = AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(seed)
    randomize(model, gen, one_plus=model_type.startswith("gemma"))
    d = out / name
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d)
    # Reload what was written, so the reference is the checkpoint as a user has it.
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
    rng = np.random.default_rng(seed)
    prompts = []
    routing = RoutingMargins(model, cfg)
    for i, n in enumerate(PROMPT_LENGTHS):
        ids = [1] + [int(x) for x in rng.integers(3, VOCAB, size=n - 1)]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        np.save(d / f"logits_{i}.npy", logits.astype(np.float32))
        top = np.sort(logits, axis=1)
        prompts.append(dict(index=i, ids=ids, logits=f"logits_{i}.npy", std=float(logits.std()),
                            min_top2_margin=float((top[:, -1] - top[:, -2]).min())))
    routing.active = False
    if routing.minimum is not None and routing.minimum < ROUTING_MARGIN:
        return False
    greedy = []
    for pi in (2, 3):
        ids = prompts[pi]["ids"]
        with torch.no_grad():
            outg = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY, do_sample=False, eos_token_id=None,
                                  pad_token_id=0, output_scores=True, return_dict_in_generate=True,
                                  top_k=None, top_p=None, temperature=None)
        tokens = outg.sequences[0, len(ids):].tolist()
        margins = []
        for s in outg.scores:
            t = torch.sort(s[0]).values
            margins.append(float(t[-1] - t[-2]))
        # The same by full forward passes.
        seq = list(ids)
        with torch.no_grad():
            for _ in range(GREEDY):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        assert seq[len(ids):] == tokens, f"{name}: cached greedy differs from full-pass greedy"
        if 2 in tokens or min(margins) <= 1e-3:
            return False
        greedy.append(dict(prompt_index=pi, max_tokens=GREEDY, tokens=tokens, min_top2_margin=min(margins)))
    ref = dict(generator="Tools/reference/make_family_fixtures.py", model_type=model_type, seed=seed,
               semantics="transformers AutoModelForCausalLM, float32, eager attention, CPU",
               versions=dict(transformers=transformers.__version__, torch=torch.__version__, numpy=np.__version__),
               prompts=prompts, greedy=greedy)
    if routing.minimum is not None:
        ref["min_routing_margin"] = routing.minimum
    (d / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    size = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name} (seed {seed}): {size / 1e6:.2f} MB, logit std {prompts[-1]['std']:.2f}, greedy margins "
          f"{[round(g['min_top2_margin'], 4) for g in greedy]}")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "Tests/Fixtures/families"))
    ap.add_argument("--only")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for i, name in enumerate(FAMILIES):
        if args.only and name != args.only:
            continue
        # The first seed whose greedy runs meet no eos and no near tie.
        for attempt in range(200):
            if make(name, out, 100 + i + 1000 * attempt):
                break
        else:
            raise SystemExit(f"{name}: no seed among 200 gave clean greedy runs and routing")


if __name__ == "__main__":
    main()
