import Foundation

/// Multi-head latent attention (DeepSeek-V2's MLA, also LongCat-Flash's): queries through a
/// low-rank pair (`q_a_proj`, `q_a_layernorm`, `q_b_proj`) or one `q_proj`; keys and values
/// expanded per head by `kv_b_proj` from a normed compressed latent (`kv_a_proj_with_mqa`'s
/// first `kv_lora_rank` outputs) plus one rotary key shared by all heads (its last
/// `qk_rope_head_dim` outputs). Each head's query and key are [nope | rope]; RoPE turns the
/// rope part only. Keys and values are expanded into the cache (keyWidth heads × (nope +
/// rope), valueWidth heads × v).
struct LatentAttention: TokenMixer {
    let qA: Linear?, qANorm: Weight?, qB: Linear
    let kvA: Linear, kvANorm: Weight, kvB: Linear
    let o: Linear
    let hidden, heads, qRank: Int, kvRank, nope, ropeDims, vDim: Int
    /// eps of the two low-rank norms.
    let loraEps: Float
    /// LongCat's `mla_scale_q_lora` / `mla_scale_kv_lora` factors (nil: none).
    let qScale: Float?, kvScale: Float?
    let scale: Float
    let rope: RoPE

    var keyWidth: Int { heads * (nope + ropeDims) }
    var valueWidth: Int { heads * vDim }

    /// The weights under `p` (`...self_attn.`); `qRank` nil: one `q_proj`.
    static func load(_ w: WeightStore, _ p: String, hidden h: Int, heads: Int, qRank: Int?, kvRank: Int, nope: Int, ropeDims: Int,
                     vDim: Int, bias: Bool, loraEps: Float, qScale: Float? = nil, kvScale: Float? = nil, scale: Float,
                     rope: RoPE) throws -> LatentAttention {
        let qk = nope + ropeDims
        return LatentAttention(
            qA: try qRank.map { try Linear.load(w, p + "q_a_proj", out: $0, in: h, bias: bias) },
            qANorm: try qRank.map { try w.weight(p + "q_a_layernorm.weight", shape: [$0]) },
            qB: try qRank.map { try Linear.load(w, p + "q_b_proj", out: heads * qk, in: $0) } ?? Linear.load(w, p + "q_proj", out: heads * qk, in: h),
            kvA: try Linear.load(w, p + "kv_a_proj_with_mqa", out: kvRank + ropeDims, in: h, bias: bias),
            kvANorm: try w.weight(p + "kv_a_layernorm.weight", shape: [kvRank]),
            kvB: try Linear.load(w, p + "kv_b_proj", out: heads * (nope + vDim), in: kvRank),
            o: try Linear.load(w, p + "o_proj", out: h, in: heads * vDim, bias: bias),
            hidden: h, heads: heads, qRank: qRank ?? 0, kvRank: kvRank, nope: nope, ropeDims: ropeDims, vDim: vDim,
            loraEps: loraEps, qScale: qScale, kvScale: kvScale, scale: scale, rope: rope)
    }

    func apply(_ x: UnsafePointer<Float>, count n: Int, past: Int, slot: KVCache.Slot, into out: UnsafeMutablePointer<Float>) {
        let qk = nope + ropeDims, rank = kvRank
        var q = [Float](repeating: 0, count: n * heads * qk)
        if let qA, let qANorm {
            var t = [Float](repeating: 0, count: n * qRank)
            qA.apply(x, rows: n, into: &t)
            Math.rmsNorm(t, rows: n, width: qRank, weight: qANorm.values, eps: loraEps, into: &t)
            qB.apply(t, rows: n, into: &q)
        } else {
            qB.apply(x, rows: n, into: &q)
        }
        if let s = qScale { for i in 0..<q.count { q[i] *= s } }
        var ckv = [Float](repeating: 0, count: n * (rank + ropeDims))
        kvA.apply(x, rows: n, into: &ckv)
        var latent = [Float](repeating: 0, count: n * rank)
        ckv.withUnsafeBufferPointer { c in
            latent.withUnsafeMutableBufferPointer { l in
                for t in 0..<n {
                    Math.rmsNorm(c.baseAddress! + t * (rank + ropeDims), rows: 1, width: rank, weight: kvANorm.values, eps: loraEps,
                                 into: l.baseAddress! + t * rank)
                }
            }
        }
        if let s = kvScale { for i in 0..<latent.count { latent[i] *= s } }
        rope.apply(&q, positions: past, count: n, rowStride: heads * qk, heads: heads, headStride: qk, offset: nope)
        rope.apply(&ckv, positions: past, count: n, rowStride: rank + ropeDims, heads: 1, headStride: rank + ropeDims, offset: rank)
        var kv = [Float](repeating: 0, count: n * heads * (nope + vDim))
        kvB.apply(latent, rows: n, into: &kv)
        var keys = [Float](repeating: 0, count: n * heads * qk), values = [Float](repeating: 0, count: n * heads * vDim)
        for t in 0..<n {
            for hd in 0..<heads {
                let src = (t * heads + hd) * (nope + vDim), k = (t * heads + hd) * qk
                for j in 0..<nope { keys[k + j] = kv[src + j] }
                for j in 0..<ropeDims { keys[k + nope + j] = ckv[t * (rank + ropeDims) + rank + j] }
                for j in 0..<vDim { values[(t * heads + hd) * vDim + j] = kv[src + nope + j] }
            }
        }
        slot.append(keys: keys, values: values, count: n, at: past)
        var ctx = [Float](repeating: 0, count: n * heads * vDim)
        Attention.causal(q: q, count: n, past: past, slot: slot, heads: heads, kvHeads: heads, qkDim: qk, vDim: vDim, scale: scale, into: &ctx)
        o.apply(ctx, rows: n, into: out)
    }
}

extension LatentAttention {
    /// DeepSeek-V2/V3's attention of layer prefix `p` from config.json (`q_lora_rank` null:
    /// one `q_proj`; the low-rank norms use eps 1e-6, as transformers' modules do whatever
    /// `rms_norm_eps` says). The softmax scale is 1/sqrt(qk_nope_head_dim + qk_rope_head_dim),
    /// times mscale² under a scaled RoPE with `mscale_all_dim` (YaRN's correction folded into
    /// the scores, as transformers' `yarn_apply_mscale`).
    static func deepseek(_ c: ModelConfig, _ w: WeightStore, _ p: String, rope: RoPE) throws -> LatentAttention {
        let h = try c.int("hidden_size"), heads = try c.int("num_attention_heads")
        let kvHeads = try c.int("num_key_value_heads", heads)
        guard kvHeads == heads else { throw c.bad("num_key_value_heads", "is \(kvHeads); multi-head latent attention expands keys for all \(heads) heads") }
        let nope = try c.int("qk_nope_head_dim"), ropeDims = try c.int("qk_rope_head_dim"), v = try c.int("v_head_dim")
        if c.has("qk_head_dim"), try c.int("qk_head_dim") != nope + ropeDims {
            throw c.bad("qk_head_dim", "must be qk_nope_head_dim + qk_rope_head_dim = \(nope + ropeDims)")
        }
        var scale = 1 / Double(nope + ropeDims).squareRoot()
        if let s = try c.object("rope_parameters") ?? c.object("rope_scaling") {
            let type = try s.has("rope_type") ? s.string("rope_type") : s.string("type", "default")
            if type != "default", try s.double("mscale_all_dim", 0) != 0 {
                let m = RoPE.yarnMscale(try s.double("factor"), try s.double("mscale_all_dim"))
                scale *= m * m
            }
        }
        return try load(w, p + "self_attn.", hidden: h, heads: heads, qRank: c.has("q_lora_rank") ? try c.int("q_lora_rank") : nil,
                        kvRank: try c.int("kv_lora_rank"), nope: nope, ropeDims: ropeDims, vDim: v,
                        bias: try c.bool("attention_bias", false), loraEps: 1e-6, scale: Float(scale), rope: rope)
    }
}
