import Folio

/// Hugging Face GPT2LMHeadModel: token (`transformer.wte`) plus learned position
/// (`transformer.wpe`) embeddings; layers of LayerNorm (`ln_1`) → attention with one fused
/// `attn.c_attn` (q, k, v) and `attn.c_proj` → residual, LayerNorm (`ln_2`) → `mlp.c_fc` →
/// `activation_function` → `mlp.c_proj` → residual; `ln_f`; the head tied to `wte`.
/// GPT-2 stores its projections as Conv1D weights, [in, out]; they are transposed once at
/// load into owned float32 matrices (so these weights are not used in place).
enum GPT2 {
    static let architecture = Architecture(modelType: "gpt2", build: build, ignores: { name in
        // Causal-mask buffers that older transformers saved with the weights.
        name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias")
    })

    @Sendable static func build(_ c: ModelConfig, _ w: WeightStore, _ context: BuildContext) throws -> any CausalLM {
        let h = try c.int("n_embd"), heads = try c.int("n_head"), layers = try c.int("n_layer"), vocab = try c.int("vocab_size")
        let positions = try c.int("n_positions")
        guard h % heads == 0 else { throw c.bad("n_head", "\(heads) does not divide n_embd \(h)") }
        let inner = try c.int("n_inner", 4 * h), eps = Float(try c.double("layer_norm_epsilon", 1e-5))
        let act = try Activation(c, key: "activation_function", default: "gelu_new")
        let scaled = try c.bool("scale_attn_weights", true), byLayer = try c.bool("scale_attn_by_inverse_layer_idx", false)
        // Upcasting and reordering change nothing in float32.
        c.accept("reorder_and_upcast_attn")
        let d = h / heads
        let blocks = try (0..<layers).map { i -> DecoderLayer in
            let p = "transformer.h.\(i)."
            var scale: Float = scaled ? 1 / Float(d).squareRoot() : 1
            if byLayer { scale /= Float(i + 1) }
            let attention = SelfAttention(
                projections: .fused(try conv1D(w, p + "attn.c_attn", in: h, out: 3 * h)), o: try conv1D(w, p + "attn.c_proj", in: h, out: h),
                heads: heads, kvHeads: heads, headDim: d, qNorm: nil, kNorm: nil, normsPerHead: true, rope: nil, window: nil,
                softcap: nil, scale: scale)
            return DecoderLayer(attentionNorm: try .layer(w, p + "ln_1", width: h, eps: eps), attention: attention, attentionOutNorm: nil,
                                mlpNorm: try .layer(w, p + "ln_2", width: h, eps: eps),
                                mlp: PlainMLP(fc: try conv1D(w, p + "mlp.c_fc", in: h, out: inner),
                                              proj: try conv1D(w, p + "mlp.c_proj", in: inner, out: h), act: act),
                                mlpOutNorm: nil)
        }
        return DecoderModel(vocabSize: vocab, hidden: h, embed: try w.table("transformer.wte.weight", rows: vocab, width: h),
                            positions: try w.table("transformer.wpe.weight", rows: positions, width: h), layers: blocks,
                            norm: try .layer(w, "transformer.ln_f", width: h, eps: eps),
                            head: try c.head(w, vocab: vocab, hidden: h, embedding: "transformer.wte.weight", tiedByDefault: true),
                            positionLimit: positions)
    }

    /// A Conv1D weight [in, out] as a Linear of [out, in] rows, with its bias.
    static func conv1D(_ w: WeightStore, _ name: String, in k: Int, out n: Int) throws -> Linear {
        let stored = try w.dense(name + ".weight", shape: [k, n])
        var rows = [Float](repeating: 0, count: k * n)
        for i in 0..<k { for j in 0..<n { rows[j * k + i] = stored[i * n + j] } }
        return Linear(matrix: Matrix(copying: rows, rows: n, cols: k), bias: try w.weight(name + ".bias", shape: [n]))
    }
}
