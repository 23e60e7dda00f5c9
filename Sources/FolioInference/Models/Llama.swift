import Folio

/// Hugging Face LlamaForCausalLM: token embeddings; layers of RMSNorm → grouped-query
/// attention with RoPE (default, linear, llama3 or yarn scaling, from `rope_parameters` or
/// the older top-level keys) → residual, RMSNorm → SwiGLU MLP → residual; final RMSNorm and
/// lm_head (or the tied embeddings). `attention_bias` and `mlp_bias` add biases.
/// A converted GGUF llama (`BuildContext.ggufLayout`) rotates adjacent pairs and may store
/// llama3 scaling as `rope_freqs.weight` (see GGUFLlama).
enum Llama {
    static let architecture = Architecture(modelType: "llama") { c, w, context in
        try build(c, w, ggufLayout: context.ggufLayout)
    }

    static func build(_ c: ModelConfig, _ w: WeightStore, ggufLayout: Bool) throws -> DecoderModel {
        let d = try DecoderDims(c)
        let eps = Float(try c.double("rms_norm_eps", 1e-6))
        let act = try Activation(c, key: "hidden_act", default: "silu")
        var rope = try RoPE.from(c, headDim: d.headDim, interleaved: ggufLayout)
        if ggufLayout, w.has(GGUFLlama.ropeFactors) {
            rope = rope.dividingFrequencies(by: try w.dense(GGUFLlama.ropeFactors, shape: [d.headDim / 2]))
        }
        let attentionBias = try c.bool("attention_bias", false), mlpBias = try c.bool("mlp_bias", false)
        var layout = LlamaLayout()
        layout.qkvBias = attentionBias
        layout.outBias = attentionBias
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: eps, rope: { _ in rope },
                                            windows: try c.layerWindows(layers: d.layers, fallback: nil)) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act, bias: mlpBias)
        }
    }
}
