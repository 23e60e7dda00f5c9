import Folio

/// Hugging Face Olmo2ForCausalLM: Llama's layers with the norms after each block
/// (`post_attention_layernorm`, `post_feedforward_layernorm`) instead of before, and RMSNorms
/// of the whole q and k projections (`self_attn.q_norm`, `self_attn.k_norm`) before RoPE.
enum OLMo2 {
    static let architecture = Architecture(modelType: "olmo2") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        var layout = LlamaLayout()
        layout.norms = .post
        layout.qkNorm = (perHead: false, plusOne: false)
        let bias = try c.bool("attention_bias", false)
        layout.qkvBias = bias
        layout.outBias = bias
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: try c.layerWindows(layers: d.layers, fallback: nil)) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }
}
