#!/usr/bin/env python3
"""The two models of issue 17, in PyTorch: the n-gram embedding model and its twin.

(a) `NgramModel`: LongCat-Flash-Lite's architecture, `model_type: longcat_flash_ngram`,
    computed the way Folio's runner computes it with its default "checkpoint" semantics
    (Sources/FolioInference/Models/LongcatNgram.swift, NgramHash.swift,
    Models/Blocks/LatentAttention.swift, RoPE.swift; Tools/reference/LONGCAT_NOTES.md):
    * embedding = (embed_tokens[x_t] + sum_i post_projs_i . embedders_i[id_i(t)]) / (1 + k(n-1)),
      with k = emb_split_num, n = emb_neighbor_num and k(n-1) hashed tables; table
      i = (g-2)k + j (g = 2..n the n-gram length) has M_i = ratio.V + 2i + 1 rows and
      id_i(t) = (x_t + sum_{d=1}^{g-1} x_{t-d} . (V^d mod M_i)) mod M_i, where x_{t-d} counts
      as 0 before the sequence start and across an end-of-sequence token: the token after
      an EOS has no history, the EOS itself still sees the tokens before it
      (`ngram_ids`, vectorized, int64).
    * each of `num_layers` layers: two rounds of RMSNorm -> MLA attention -> residual,
      RMSNorm -> dense SwiGLU MLP -> residual; the first round's second norm also feeds the
      MoE, whose output is added after the second round (shortcut MoE).
    * MLA: q through the LoRA pair (q_a_proj, q_a_layernorm eps 1e-6, q_b_proj), scaled by
      sqrt(D/q_lora_rank); the latent normed (kv_a_layernorm eps 1e-6) and scaled by
      sqrt(D/kv_lora_rank); k_rope one head shared by all heads; RoPE on the rope parts
      rotating interleaved pairs (2i, 2i+1), default frequencies theta^(-2i/dr); softmax
      scale (dn + dr)^-1/2; causal.
    * MoE: softmax router over routed + zero experts; the top k of score + e_score_correction_bias
      are picked, weighted by the uncorrected score x routed_scaling_factor; zero experts
      return their (normed) input. Here every routed expert is computed for every token
      and weighted by a gate that is 0 unless picked (the same function; static shapes).
    * final RMSNorm and a separate lm_head.
    `NgramModel.forward` is the one forward used for training, evaluation and the Folio
    check (check_folio.py); `export_folder` writes the Hugging Face folder Folio converts.

(b) the twin: transformers' LlamaForCausalLM with the same hidden size and vocabulary and
    about the same active parameters.

Parameter counting (`count_params`): "active" = every parameter a token's forward
multiplies or reads, except the n-gram tables (looked up: k(n-1) rows of D/(k(n-1)) values
a token) and except the routed experts a token does not use; it counts embed_tokens,
lm_head, post_projs, router, norms and moe_topk routed experts (an upper bound: when zero
experts are picked fewer routed experts run). "tables" = the n-gram embedder values.

Run
  python3 Tools/train/model.py            prints the configs and parameter counts
  python3 Tools/train/model.py --selftest checks ngram_ids against a scalar reference
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

LORA_EPS = 1e-6  # Folio's checkpoint semantics for q_a_layernorm / kv_a_layernorm

# The trained n-gram model: 2 layers (4 MLA blocks, 4 dense MLPs, 2 MoEs), hidden 288,
# N = 4 neighbours, K = 2 splits -> 6 tables of width 48, ratio 5 -> 40961.. rows each.
NGRAM = dict(
    vocab_size=8192, hidden_size=288, num_layers=2, num_attention_heads=6,
    q_lora_rank=144, kv_lora_rank=96, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=48,
    ffn_hidden_size=768, expert_ffn_hidden_size=256, n_routed_experts=4, zero_expert_num=2, moe_topk=2,
    routed_scaling_factor=1.0, norm_topk_prob=False, rms_norm_eps=1e-5, rope_theta=10000.0,
    max_position_embeddings=512, ngram_vocab_size_ratio=5, emb_neighbor_num=4, emb_split_num=2,
    mla_scale_q_lora=True, mla_scale_kv_lora=True, eos_token_id=0,
)
# The twin: same hidden size and vocabulary, MHA with 6 heads of 48.
TWIN = dict(
    vocab_size=8192, hidden_size=288, intermediate_size=688, num_hidden_layers=5, num_attention_heads=6,
    num_key_value_heads=6, head_dim=48, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=512,
    eos_token_id=0,
)
# Small versions for CPU tests (same structure).
NGRAM_TINY = dict(NGRAM, vocab_size=8192, hidden_size=48, num_layers=2, num_attention_heads=2, q_lora_rank=24,
                  kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16, ffn_hidden_size=64,
                  expert_ffn_hidden_size=32, n_routed_experts=3, zero_expert_num=2, moe_topk=2, ngram_vocab_size_ratio=1)
TWIN_TINY = dict(TWIN, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=24)
# Wide versions (issue 17's second pair): hidden 768, so that the six tables are 128 wide (groups
# of 32 and 128 apply) and the ~33M active parameters (66 MB in bf16) are more than this CPU's
# 32 MiB L3: decoding streams the weights from memory, as it does for the models people run,
# which is where a batched verification pass costs about what one token does. n-gram: 12 heads
# of 64+32 (values 64), LoRA ranks 384/256, dense FFN 1024, 4 routed experts of 256 + 2 zero
# experts, ratio 3 (24577.. rows a table); twin: 3 layers, FFN 1920 (32.9M vs 32.8M active).
NGRAM_WIDE = dict(NGRAM, hidden_size=768, num_attention_heads=12, q_lora_rank=384, kv_lora_rank=256,
                  qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, ffn_hidden_size=1024,
                  expert_ffn_hidden_size=256, ngram_vocab_size_ratio=3)
TWIN_WIDE = dict(TWIN, hidden_size=768, intermediate_size=1920, num_hidden_layers=3, num_attention_heads=12,
                 num_key_value_heads=12, head_dim=64)
CONFIGS = {"ngram": NGRAM, "twin": TWIN, "ngram-tiny": NGRAM_TINY, "twin-tiny": TWIN_TINY,
           "ngram-wide": NGRAM_WIDE, "twin-wide": TWIN_WIDE}


# ----------------------------------------------------------------------------- n-gram hash
def table_specs(vocab, ratio, k, n):
    """[(length g, modulus M, [V^d mod M for d = 1..g-1])] for the k(n-1) tables."""
    m = vocab * ratio
    specs = []
    for g in range(2, n + 1):
        for j in range(k):
            i = (g - 2) * k + j
            mod = m + 2 * i + 1
            mult, p = [], 1
            for _ in range(1, g):
                p = (p * (vocab % mod)) % mod
                mult.append(p)
            specs.append((g, mod, mult))
    return specs


def ngram_ids(x, moduli, mults, eos_ids):
    """Table rows of every position: x [B, T] int64 -> [B, T, tables] int64.

    moduli [tables] int64; mults [tables, n-1] int64 (0 past a table's length); eos_ids a
    1-d int64 tensor. Position t's history token x_{t-d} counts only when t-d >= 0 and no
    EOS lies in positions t-d .. t-1 (checkpoint semantics)."""
    B, T = x.shape
    h = mults.shape[1]
    is_eos = torch.isin(x, eos_ids).to(torch.int64)
    seg = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before t
    hist = []
    for d in range(1, h + 1):
        xs = F.pad(x, (d, 0), value=0)[:, :T]
        ss = F.pad(seg, (d, 0), value=-1)[:, :T]
        hist.append(torch.where(ss == seg, xs, torch.zeros_like(xs)))
    hist = torch.stack(hist, dim=-1)  # [B, T, n-1]
    total = x.unsqueeze(-1) + (hist.unsqueeze(-2) * mults).sum(-1)  # [B, T, tables]
    return torch.remainder(total, moduli)


def ngram_ids_reference(tokens, specs, eos_ids):
    """Scalar reference of the same ids (a list of ints -> list of lists), as Folio's loop."""
    out, floor = [], 0
    for t, tok in enumerate(tokens):
        row = []
        for g, mod, mult in specs:
            s = tok
            for d in range(1, g):
                if t - d >= floor:
                    s += tokens[t - d] * mult[d - 1]
            row.append(s % mod)
        out.append(row)
        if tok in eos_ids:
            floor = t + 1
    return out


# ----------------------------------------------------------------------------- blocks
def rms_norm(x, weight, eps):
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def rope_tables(dims, theta, positions):
    """cos, sin [positions, dims/2] float32, angle = float32(pos) * float32(inv_freq)."""
    inv = torch.tensor([1.0 / theta ** (2 * i / dims) for i in range(dims // 2)], dtype=torch.float64).float()
    pos = torch.arange(positions, dtype=torch.float32)
    ang = pos[:, None] * inv[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope_interleaved(x, cos, sin):
    """Rotate pairs (2i, 2i+1) of the last axis; x [B, T, H, dr], cos/sin [T, dr/2]."""
    xr = x.unflatten(-1, (-1, 2))
    a, b = xr[..., 0], xr[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, H = c["hidden_size"], c["num_attention_heads"]
        self.H, self.dn, self.dr, self.dv = H, c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        self.rq, self.rkv = c["q_lora_rank"], c["kv_lora_rank"]
        self.q_a_proj = nn.Linear(D, self.rq, bias=False)
        self.q_a_layernorm = RMSNorm(self.rq, LORA_EPS)
        self.q_b_proj = nn.Linear(self.rq, H * (self.dn + self.dr), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(D, self.rkv + self.dr, bias=False)
        self.kv_a_layernorm = RMSNorm(self.rkv, LORA_EPS)
        self.kv_b_proj = nn.Linear(self.rkv, H * (self.dn + self.dv), bias=False)
        self.o_proj = nn.Linear(H * self.dv, D, bias=False)
        self.q_scale = math.sqrt(D / self.rq) if c["mla_scale_q_lora"] else 1.0
        self.kv_scale = math.sqrt(D / self.rkv) if c["mla_scale_kv_lora"] else 1.0
        self.scale = 1.0 / math.sqrt(self.dn + self.dr)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        H, dn, dr, dv = self.H, self.dn, self.dr, self.dv
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, H, dn + dr) * self.q_scale
        ckv = self.kv_a_proj_with_mqa(x)
        latent = self.kv_a_layernorm(ckv[..., :self.rkv]) * self.kv_scale
        k_rope = rope_interleaved(ckv[..., self.rkv:].unsqueeze(2), cos, sin)  # [B, T, 1, dr]
        q = torch.cat((q[..., :dn], rope_interleaved(q[..., dn:], cos, sin)), dim=-1)
        kv = self.kv_b_proj(latent).view(B, T, H, dn + dv)
        k = torch.cat((kv[..., :dn], k_rope.expand(B, T, H, dr).to(kv.dtype)), dim=-1)
        v = kv[..., dn:]
        q = q.to(v.dtype)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, scale=self.scale)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * dv))


class MLP(nn.Module):
    def __init__(self, D, F_):
        super().__init__()
        self.gate_proj = nn.Linear(D, F_, bias=False)
        self.up_proj = nn.Linear(D, F_, bias=False)
        self.down_proj = nn.Linear(F_, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    """Shortcut MoE with zero (identity) experts; routed experts stacked [E, out, in]."""

    def __init__(self, c):
        super().__init__()
        D, Fe = c["hidden_size"], c["expert_ffn_hidden_size"]
        self.E, self.Z, self.k = c["n_routed_experts"], c["zero_expert_num"], c["moe_topk"]
        self.scaling, self.norm_topk = c["routed_scaling_factor"], c["norm_topk_prob"]
        self.classifier = nn.Linear(D, self.E + self.Z, bias=False)
        self.register_buffer("e_score_correction_bias", torch.zeros(self.E + self.Z))
        self.gate = nn.Parameter(torch.empty(self.E, Fe, D))
        self.up = nn.Parameter(torch.empty(self.E, Fe, D))
        self.down = nn.Parameter(torch.empty(self.E, D, Fe))

    def forward(self, u):
        """u [N, D] -> (out [N, D], picked [E+Z] fraction of tokens that picked each entry)."""
        with torch.autocast(u.device.type, enabled=False):  # the router in float32, as transformers' port
            p = torch.softmax(F.linear(u.float(), self.classifier.weight.float()), dim=-1)
        sel = torch.topk(p + self.e_score_correction_bias, self.k, dim=-1).indices
        w = torch.gather(p, 1, sel)
        if self.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        gates = torch.zeros_like(p).scatter(1, sel, w * self.scaling)  # [N, E+Z]
        g = torch.einsum("nd,efd->enf", u, self.gate)
        up = torch.einsum("nd,efd->enf", u, self.up)
        y = torch.einsum("enf,edf->end", F.silu(g) * up, self.down)
        out = (gates[:, :self.E].t().unsqueeze(-1) * y).sum(0)
        out = out + gates[:, self.E:].sum(-1, keepdim=True) * u
        picked = torch.zeros_like(p).scatter(1, sel, 1.0).mean(0)
        return out, picked.detach()


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, eps = c["hidden_size"], c["rms_norm_eps"]
        self.input_layernorm = nn.ModuleList([RMSNorm(D, eps) for _ in range(2)])
        self.post_attention_layernorm = nn.ModuleList([RMSNorm(D, eps) for _ in range(2)])
        self.self_attn = nn.ModuleList([MLA(c) for _ in range(2)])
        self.mlps = nn.ModuleList([MLP(D, c["ffn_hidden_size"]) for _ in range(2)])
        self.mlp = MoE(c)

    def forward(self, h, cos, sin):
        B, T, D = h.shape
        shortcut, picked = None, None
        for r in range(2):
            h = h + self.self_attn[r](self.input_layernorm[r](h), cos, sin)
            u = self.post_attention_layernorm[r](h)
            if r == 0:
                shortcut, picked = self.mlp(u.reshape(B * T, D))
            h = h + self.mlps[r](u)
        return h + shortcut.view(B, T, D), picked


class NgramModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = dict(c)
        V, D = c["vocab_size"], c["hidden_size"]
        k, n = c["emb_split_num"], c["emb_neighbor_num"]
        specs = table_specs(V, c["ngram_vocab_size_ratio"], k, n)
        self.count = len(specs)
        assert D % self.count == 0, "hidden_size must be divisible by emb_split_num * (emb_neighbor_num - 1)"
        self.width = D // self.count
        self.rows = [m for _, m, _ in specs]
        self.register_buffer("moduli", torch.tensor(self.rows, dtype=torch.int64), persistent=False)
        mults = torch.zeros(self.count, n - 1, dtype=torch.int64)
        for i, (_, _, mult) in enumerate(specs):
            mults[i, :len(mult)] = torch.tensor(mult, dtype=torch.int64)
        self.register_buffer("mults", mults, persistent=False)
        offsets = [0]
        for m in self.rows[:-1]:
            offsets.append(offsets[-1] + m)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        eos = c["eos_token_id"]
        eos = eos if isinstance(eos, list) else [eos]
        self.register_buffer("eos_ids", torch.tensor(eos, dtype=torch.int64), persistent=False)
        self.embed_tokens = nn.Embedding(V, D)
        self.tables = nn.Parameter(torch.empty(sum(self.rows), self.width))  # embedders 0.. stacked by rows
        self.post_proj = nn.Parameter(torch.empty(D, self.count * self.width))  # post_projs side by side
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_layers"])])
        self.norm = RMSNorm(D, c["rms_norm_eps"])
        self.lm_head = nn.Linear(D, V, bias=False)
        cos, sin = rope_tables(c["qk_rope_head_dim"], c["rope_theta"], c["max_position_embeddings"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def init_weights(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        blocks = 4 * self.c["num_layers"] + 1  # residual branches: 2 attn + 2 mlp per layer, + moe
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 1:  # norms
                    p.fill_(1.0)
                elif name in ("embed_tokens.weight", "tables"):
                    p.normal_(0, 1.0, generator=g)
                elif name == "post_proj":
                    p.normal_(0, self.c["hidden_size"] ** -0.5, generator=g)
                elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight") or name.endswith(".down"):
                    p.normal_(0, 0.02 / math.sqrt(2 * blocks), generator=g)
                else:
                    p.normal_(0, 0.02, generator=g)
        return self

    def embed(self, x):
        ids = ngram_ids(x, self.moduli, self.mults, self.eos_ids) + self.offsets  # [B, T, tables]
        rows = F.embedding(ids, self.tables).flatten(-2)  # [B, T, tables * width]
        proj = F.linear(rows, self.post_proj)
        return (self.embed_tokens(x) + proj) / (1 + self.count)

    def hidden(self, x):
        """Final hidden states before the norm, and the MoE pick fractions [layers, E+Z]."""
        T = x.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        h = self.embed(x)
        picked = []
        for layer in self.layers:
            h, p = layer(h, cos, sin)
            picked.append(p)
        return h, torch.stack(picked)

    def forward(self, x, targets=None):
        """x [B, T] int64 -> logits [B, T, V] (targets None) or (mean loss, MoE pick fractions)."""
        h, picked = self.hidden(x)
        logits = self.lm_head(self.norm(h))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
        return loss, picked

    @torch.no_grad()
    def balance(self, picked, rate):
        """Aux-loss-free balancing: raise the selection bias of under-picked entries."""
        for layer, p in zip(self.layers, picked, strict=True):
            layer.mlp.e_score_correction_bias.add_(rate * torch.sign(p.mean() - p))

    # ------------------------------------------------------------------ Hugging Face names
    def hf_state_dict(self):
        sd = {"model.embed_tokens.weight": self.embed_tokens.weight}
        start = 0
        for i, m in enumerate(self.rows):
            sd[f"model.ngram_embeddings.embedders.{i}.weight"] = self.tables[start:start + m]
            start += m
            sd[f"model.ngram_embeddings.post_projs.{i}.weight"] = self.post_proj[:, i * self.width:(i + 1) * self.width]
        for l, L in enumerate(self.layers):
            p = f"model.layers.{l}."
            for r in range(2):
                sd[p + f"input_layernorm.{r}.weight"] = L.input_layernorm[r].weight
                sd[p + f"post_attention_layernorm.{r}.weight"] = L.post_attention_layernorm[r].weight
                a = L.self_attn[r]
                for n in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
                    sd[p + f"self_attn.{r}.{n}.weight"] = getattr(a, n).weight
                sd[p + f"self_attn.{r}.q_a_layernorm.weight"] = a.q_a_layernorm.weight
                sd[p + f"self_attn.{r}.kv_a_layernorm.weight"] = a.kv_a_layernorm.weight
                for n in ("gate_proj", "up_proj", "down_proj"):
                    sd[p + f"mlps.{r}.{n}.weight"] = getattr(L.mlps[r], n).weight
            sd[p + "mlp.router.classifier.weight"] = L.mlp.classifier.weight
            sd[p + "mlp.router.e_score_correction_bias"] = L.mlp.e_score_correction_bias
            for e in range(L.mlp.E):
                sd[p + f"mlp.experts.{e}.gate_proj.weight"] = L.mlp.gate[e]
                sd[p + f"mlp.experts.{e}.up_proj.weight"] = L.mlp.up[e]
                sd[p + f"mlp.experts.{e}.down_proj.weight"] = L.mlp.down[e]
        sd["model.norm.weight"] = self.norm.weight
        sd["lm_head.weight"] = self.lm_head.weight
        return sd

    def set_semantics(self, name):
        """"checkpoint" (default: EOS resets the n-gram history, LoRA-norm eps 1e-6) or
        "mlx-lm" (no reset, eps 1e-5): Folio's two --semantics, for checks only."""
        assert name in ("checkpoint", "mlx-lm")
        eos = self.c["eos_token_id"]
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = torch.tensor(eos if name == "checkpoint" else [-1], dtype=torch.int64, device=self.eos_ids.device)
        for layer in self.layers:
            for a in layer.self_attn:
                a.q_a_layernorm.eps = a.kv_a_layernorm.eps = LORA_EPS if name == "checkpoint" else 1e-5
        return self

    def load_hf_state_dict(self, sd):
        with torch.no_grad():
            for name, t in self.hf_state_dict().items():
                t.copy_(sd[name].to(t.dtype))

    def hf_config(self):
        c = self.c
        return {
            "architectures": ["LongcatFlashNgramForCausalLM"],
            "model_type": "longcat_flash_ngram",
            "attention_method": "MLA",
            "vocab_size": c["vocab_size"], "hidden_size": c["hidden_size"],
            "ffn_hidden_size": c["ffn_hidden_size"], "expert_ffn_hidden_size": c["expert_ffn_hidden_size"],
            "num_layers": c["num_layers"], "num_attention_heads": c["num_attention_heads"],
            "q_lora_rank": c["q_lora_rank"], "kv_lora_rank": c["kv_lora_rank"],
            "qk_nope_head_dim": c["qk_nope_head_dim"], "qk_rope_head_dim": c["qk_rope_head_dim"],
            "v_head_dim": c["v_head_dim"], "mla_scale_q_lora": c["mla_scale_q_lora"],
            "mla_scale_kv_lora": c["mla_scale_kv_lora"], "attention_bias": False,
            "n_routed_experts": c["n_routed_experts"], "zero_expert_num": c["zero_expert_num"],
            "zero_expert_type": "identity", "moe_topk": c["moe_topk"], "norm_topk_prob": c["norm_topk_prob"],
            "router_bias": False, "routed_scaling_factor": c["routed_scaling_factor"],
            "rms_norm_eps": c["rms_norm_eps"], "rope_theta": c["rope_theta"],
            "max_position_embeddings": c["max_position_embeddings"],
            "ngram_vocab_size_ratio": c["ngram_vocab_size_ratio"], "emb_neighbor_num": c["emb_neighbor_num"],
            "emb_split_num": c["emb_split_num"], "hidden_act": "silu", "tie_word_embeddings": False,
            "bos_token_id": c["eos_token_id"], "eos_token_id": c["eos_token_id"], "use_cache": True,
            "torch_dtype": "float32",
        }


# ----------------------------------------------------------------------------- the twin
def twin_config(c):
    from transformers import LlamaConfig
    cfg = LlamaConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
                      num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                      num_key_value_heads=c["num_key_value_heads"], head_dim=c["head_dim"],
                      max_position_embeddings=c["max_position_embeddings"], rms_norm_eps=c["rms_norm_eps"],
                      rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"]},
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                      bos_token_id=c["eos_token_id"], eos_token_id=c["eos_token_id"], pad_token_id=None)
    cfg._attn_implementation = "sdpa"
    return cfg


class TwinModel(nn.Module):
    """LlamaForCausalLM with the same forward/loss interface as NgramModel."""

    def __init__(self, c):
        super().__init__()
        from transformers import LlamaForCausalLM
        self.c = dict(c)
        self.llama = LlamaForCausalLM(twin_config(c))

    def init_weights(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        blocks = 2 * self.c["num_hidden_layers"]
        with torch.no_grad():
            for name, p in self.llama.named_parameters():
                if p.dim() == 1:
                    p.fill_(1.0)
                elif name == "model.embed_tokens.weight":
                    p.normal_(0, 2.0 ** 0.5 / 7, generator=g)  # the rms of the n-gram model's mean embedding at init
                elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                    p.normal_(0, 0.02 / math.sqrt(2 * blocks), generator=g)
                else:
                    p.normal_(0, 0.02, generator=g)
        return self

    def forward(self, x, targets=None):
        h = self.llama.model(input_ids=x, use_cache=False).last_hidden_state
        logits = self.llama.lm_head(h)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
        return loss, None

    def balance(self, picked, rate):
        pass

    def hf_state_dict(self):
        return dict(self.llama.state_dict())

    def load_hf_state_dict(self, sd):
        self.llama.load_state_dict({k: v.float() for k, v in sd.items()})

    def hf_config(self):
        c = self.c
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": c["vocab_size"], "hidden_size": c["hidden_size"], "intermediate_size": c["intermediate_size"],
            "num_hidden_layers": c["num_hidden_layers"], "num_attention_heads": c["num_attention_heads"],
            "num_key_value_heads": c["num_key_value_heads"], "head_dim": c["head_dim"], "hidden_act": "silu",
            "rms_norm_eps": c["rms_norm_eps"], "rope_theta": c["rope_theta"],
            "max_position_embeddings": c["max_position_embeddings"], "attention_bias": False, "mlp_bias": False,
            "tie_word_embeddings": False, "bos_token_id": c["eos_token_id"], "eos_token_id": c["eos_token_id"],
            "use_cache": True, "torch_dtype": "float32",
        }


def build(name, config=None):
    """A model by config name ("ngram", "twin", "ngram-tiny", "twin-tiny") or explicit dict."""
    c = dict(config or CONFIGS[name])
    return NgramModel(c) if name.startswith("ngram") else TwinModel(c)


# ----------------------------------------------------------------------------- counting
def count_params(model):
    sd = model.hf_state_dict()
    total = sum(t.numel() for t in sd.values())
    tables = sum(t.numel() for n, t in sd.items() if ".embedders." in n)
    experts = sum(t.numel() for n, t in sd.items() if ".mlp.experts." in n)
    c = model.c
    if isinstance(model, NgramModel):
        per_token_experts = experts * c["moe_topk"] // c["n_routed_experts"] if experts else 0
    else:
        per_token_experts = experts
    embed = sd["model.embed_tokens.weight"].numel() + sd["lm_head.weight"].numel()
    active = total - tables - experts + per_token_experts
    return {"total": total, "tables": tables, "active": active, "active_non_embedding": active - embed,
            "all_experts": experts, "stored_non_table": total - tables}


# ----------------------------------------------------------------------------- export
def export_folder(model, out_dir, tokenizer_json, dtype=torch.float32, extra_generation=None):
    """Writes config.json, generation_config.json, model.safetensors (matrices and tables in
    dtype, 1-d tensors float32), tokenizer.json and tokenizer_config.json to out_dir."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.hf_config()
    cfg["torch_dtype"] = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    eos = cfg["eos_token_id"]
    # matrices and tables in `dtype`; the 1-d tensors (norms, router bias) stay float32
    tensors = {n: t.detach().to("cpu", dtype if t.dim() >= 2 else torch.float32).contiguous().clone()
               for n, t in model.hf_state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": eos, "eos_token_id": eos, "do_sample": False}
    gen.update(extra_generation or {})
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    with open(tokenizer_json, "rb") as f:
        tok_bytes = f.read()
    with open(os.path.join(out_dir, "tokenizer.json"), "wb") as f:
        f.write(tok_bytes)
    eot = "<|endoftext|>"
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": eot, "eos_token": eot, "unk_token": eot,
          "model_max_length": cfg["max_position_embeddings"], "clean_up_tokenization_spaces": False,
          "added_tokens_decoder": {"0": {"content": eot, "lstrip": False, "normalized": False, "rstrip": False,
                                         "single_word": False, "special": True}}}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)
        f.write("\n")


def load_folder(name, folder):
    """The model of an exported folder (float32), for checks and evaluation."""
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(folder, "config.json")))
    base = CONFIGS[name]
    c = {k: cfg.get(k, v) for k, v in base.items()}
    m = build(name, c)
    m.load_hf_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    return m.float().eval()


def selftest():
    import random
    rnd = random.Random(0)
    for V, ratio, k, n in ((8192, 5, 2, 4), (512, 3, 2, 3), (100, 1, 3, 5)):
        specs = table_specs(V, ratio, k, n)
        moduli = torch.tensor([m for _, m, _ in specs])
        mults = torch.zeros(len(specs), n - 1, dtype=torch.int64)
        for i, (_, _, mu) in enumerate(specs):
            mults[i, :len(mu)] = torch.tensor(mu)
        for trial in range(20):
            T = rnd.randint(1, 40)
            toks = [rnd.choice([0, 1, 2, rnd.randrange(V), V - 1]) for _ in range(T)]
            eos = {0} if trial % 2 else {2, 1}
            ref = ngram_ids_reference(toks, specs, eos)
            got = ngram_ids(torch.tensor([toks]), moduli, mults, torch.tensor(sorted(eos))).tolist()[0]
            assert got == ref, (V, toks, eos)
    # The worked example of LONGCAT_NOTES.md (tiny-longcat, prompt 6, eos = 2): table 2 rows.
    specs = table_specs(512, 3, 2, 3)
    assert [m for _, m, _ in specs] == [1537, 1539, 1541, 1543] and specs[2][2] == [512, 174] and specs[3][2] == [512, 1377]
    ids = ngram_ids_reference([1, 77, 407, 241, 44, 491, 2, 77, 407], specs, {2})
    assert [r[2] for r in ids][6:] == [162, 77, 1306]
    # Folio's fixture tests/Fixtures/runner/tiny-longcat/reference.json: every table, both semantics.
    ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "runner",
                       "tiny-longcat", "reference.json")
    ex = json.load(open(ref))["checks"]["ngram_ids_example"]
    moduli = torch.tensor([m for _, m, _ in specs])
    mults = torch.zeros(len(specs), 2, dtype=torch.int64)
    for i, (_, _, mu) in enumerate(specs):
        mults[i, :len(mu)] = torch.tensor(mu)
    x = torch.tensor([ex["ids"]])
    for key, eos in (("checkpoint_eos_reset", [2]), ("mlx_lm", [-1])):
        got = ngram_ids(x, moduli, mults, torch.tensor(eos))[0].t().tolist()
        assert got == ex[key], key
    print("ngram_ids: vectorized == scalar reference on 60 random sequences; LONGCAT_NOTES example and "
          "tiny-longcat reference.json ngram_ids_example (both semantics, every table) ok")


if __name__ == "__main__":
    import sys
    if "--selftest" in sys.argv:
        selftest()
        sys.exit()
    for name in CONFIGS:
        m = build(name)
        counts = count_params(m)
        print(name, json.dumps(counts))
