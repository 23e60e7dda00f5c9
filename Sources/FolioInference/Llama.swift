import Folio

/// Hugging Face LlamaForCausalLM: token embeddings; layers of RMSNorm → grouped-query
/// attention with RoPE (default, linear, llama3 or yarn scaling) → residual, RMSNorm →
/// SwiGLU MLP → residual; final RMSNorm and lm_head (or the tied embeddings).
/// Tensor names: `model.embed_tokens.weight`, `model.layers.L.{input_layernorm,
/// self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}.weight`,
/// `model.norm.weight`, `lm_head.weight`.
final class LlamaModel: CausalLM, @unchecked Sendable {
    // @unchecked: immutable after init.
    struct Layer {
        let inNorm, postNorm: Weight
        let q, k, v, o: Matrix
        let qb, kb, vb, ob: Weight?
        let gate, up, down: Matrix
        let gateb, upb, downb: Weight?
    }

    let hidden, heads, kvHeads, headDim, inter, layerCount, vocabSize: Int
    let eps: Float
    let rope: RoPE
    let embed: EmbeddingTable
    let layers: [Layer]
    let norm: Weight
    let head: Matrix

    /// `ggufLayout`: tensors as llama.cpp's converter writes them (rows of q and k permuted so
    /// that RoPE rotates adjacent pairs, and llama3 scaling stored as `rope_freqs.weight`).
    init(config c: ModelConfig, weights w: WeightStore, ggufLayout: Bool = false) throws {
        hidden = try c.int("hidden_size")
        heads = try c.int("num_attention_heads")
        kvHeads = try c.int("num_key_value_heads", heads)
        headDim = try c.int("head_dim", hidden / heads)
        inter = try c.int("intermediate_size")
        layerCount = try c.int("num_hidden_layers")
        vocabSize = try c.int("vocab_size")
        eps = Float(try c.double("rms_norm_eps", 1e-6))
        guard heads % kvHeads == 0 else { throw c.bad("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)") }
        let act = try c.string("hidden_act", "silu")
        guard act == "silu" else { throw InferenceError.unsupported(file: c.file, reason: "hidden_act '\(act)' is not supported (silu is)") }
        if try c.double("partial_rotary_factor", 1) != 1 { throw InferenceError.unsupported(file: c.file, reason: "partial_rotary_factor other than 1 is not supported for llama") }
        let r = try RoPE(dims: headDim, theta: try c.double("rope_theta", 10000), scaling: try c.object("rope_scaling"),
                         maxPositions: try c.int("max_position_embeddings", 2048), interleaved: ggufLayout)
        if ggufLayout, w.has(GGUFLlama.ropeFactors) {
            rope = r.dividingFrequencies(by: try w.dense(GGUFLlama.ropeFactors, shape: [headDim / 2]))
        } else {
            rope = r
        }
        let attnBias = try c.bool("attention_bias", false), mlpBias = try c.bool("mlp_bias", false)
        let (h, d, f, heads, kvHeads) = (hidden, headDim, inter, heads, kvHeads)
        embed = try w.table("model.embed_tokens.weight", rows: vocabSize, width: h)
        layers = try (0..<layerCount).map { i in
            let p = "model.layers.\(i)."
            func bias(_ name: String, _ n: Int, _ on: Bool) throws -> Weight? { on ? try w.weight(p + name, shape: [n]) : nil }
            return Layer(
                inNorm: try w.weight(p + "input_layernorm.weight", shape: [h]),
                postNorm: try w.weight(p + "post_attention_layernorm.weight", shape: [h]),
                q: try w.matrix(p + "self_attn.q_proj.weight", shape: [heads * d, h]),
                k: try w.matrix(p + "self_attn.k_proj.weight", shape: [kvHeads * d, h]),
                v: try w.matrix(p + "self_attn.v_proj.weight", shape: [kvHeads * d, h]),
                o: try w.matrix(p + "self_attn.o_proj.weight", shape: [h, heads * d]),
                qb: try bias("self_attn.q_proj.bias", heads * d, attnBias), kb: try bias("self_attn.k_proj.bias", kvHeads * d, attnBias),
                vb: try bias("self_attn.v_proj.bias", kvHeads * d, attnBias), ob: try bias("self_attn.o_proj.bias", h, attnBias),
                gate: try w.matrix(p + "mlp.gate_proj.weight", shape: [f, h]),
                up: try w.matrix(p + "mlp.up_proj.weight", shape: [f, h]),
                down: try w.matrix(p + "mlp.down_proj.weight", shape: [h, f]),
                gateb: try bias("mlp.gate_proj.bias", f, mlpBias), upb: try bias("mlp.up_proj.bias", f, mlpBias), downb: try bias("mlp.down_proj.bias", h, mlpBias))
        }
        norm = try w.weight("model.norm.weight", shape: [h])
        let tied = try c.bool("tie_word_embeddings", false)
        if !tied || w.has("lm_head.weight") {
            head = try w.matrix("lm_head.weight", shape: [vocabSize, h])
        } else {
            head = try w.matrix("model.embed_tokens.weight", shape: [vocabSize, h])
        }
    }

    func makeState() -> AnyObject { KVCache(slots: layerCount, keyWidth: kvHeads * headDim, valueWidth: kvHeads * headDim) }

    func forward(_ tokens: [Int32], state: AnyObject, allLogits: Bool) throws -> [Float] {
        guard let cache = state as? KVCache else { throw InferenceError.badInput("llama: wrong state object") }
        let n = tokens.count, h = hidden, d = headDim
        guard n > 0 else { return [] }
        for t in tokens where t < 0 || Int(t) >= vocabSize {
            throw InferenceError.badInput("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
        }
        let past = cache.length
        var x = [Float](repeating: 0, count: n * h)
        try x.withUnsafeMutableBufferPointer { try embed.gather(tokens, into: $0.baseAddress!) }
        var xn = [Float](repeating: 0, count: n * h)
        var q = [Float](repeating: 0, count: n * heads * d), k = [Float](repeating: 0, count: n * kvHeads * d), v = k
        var ctx = q, o = x
        var g = [Float](repeating: 0, count: n * inter), u = g
        let scale = 1 / Float(d).squareRoot()
        for (i, L) in layers.enumerated() {
            Math.rmsNorm(x, rows: n, width: h, weight: L.inNorm.values, eps: eps, into: &xn)
            q.withUnsafeMutableBufferPointer { qp in
                k.withUnsafeMutableBufferPointer { kp in
                    v.withUnsafeMutableBufferPointer { vp in
                        Math.linears(xn, rows: n, inFeatures: h, [
                            LinearOutput(matrix: L.q, bias: L.qb?.values, out: qp.baseAddress!),
                            LinearOutput(matrix: L.k, bias: L.kb?.values, out: kp.baseAddress!),
                            LinearOutput(matrix: L.v, bias: L.vb?.values, out: vp.baseAddress!),
                        ])
                    }
                }
            }
            rope.apply(&q, positions: past, count: n, rowStride: heads * d, heads: heads, headStride: d)
            rope.apply(&k, positions: past, count: n, rowStride: kvHeads * d, heads: kvHeads, headStride: d)
            cache.append(slot: i, keys: k, values: v, count: n)
            Attention.causal(q: q, count: n, past: past, slot: cache.slots[i], heads: heads, kvHeads: kvHeads, qkDim: d, vDim: d, scale: scale, into: &ctx)
            Math.linear(ctx, rows: n, inFeatures: heads * d, matrix: L.o, bias: L.ob?.values, into: &o)
            Math.add(&x, o, count: n * h)
            Math.rmsNorm(x, rows: n, width: h, weight: L.postNorm.values, eps: eps, into: &xn)
            g.withUnsafeMutableBufferPointer { gp in
                u.withUnsafeMutableBufferPointer { up in
                    Math.linears(xn, rows: n, inFeatures: h, [
                        LinearOutput(matrix: L.gate, bias: L.gateb?.values, out: gp.baseAddress!),
                        LinearOutput(matrix: L.up, bias: L.upb?.values, out: up.baseAddress!),
                    ])
                }
            }
            Math.siluMul(&g, u, count: n * inter)
            Math.linear(g, rows: n, inFeatures: inter, matrix: L.down, bias: L.downb?.values, into: &o)
            Math.add(&x, o, count: n * h)
        }
        cache.advance(n)
        return logits(hidden: x, count: n, width: h, allLogits: allLogits, norm: norm, eps: eps, head: head)
    }
}
