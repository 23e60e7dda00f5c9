import Folio

/// Hugging Face Qwen3ForCausalLM: Llama's layers with an RMSNorm over each head of q and k
/// (`self_attn.q_norm`, `self_attn.k_norm`) before RoPE, `head_dim` independent of the
/// hidden size, biases only when `attention_bias`; windows as Qwen2's.
enum Qwen3 {
    static let architecture = Architecture(modelType: "qwen3") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: try layout(c), eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope },
                                            windows: try c.qwenWindows(layers: d.layers)) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }

    /// Qwen3's attention, shared with Qwen3-MoE.
    static func layout(_ c: ModelConfig) throws -> LlamaLayout {
        var layout = LlamaLayout()
        let bias = try c.bool("attention_bias", false)
        layout.qkvBias = bias
        layout.outBias = bias
        layout.qkNorm = (perHead: true, plusOne: false)
        return layout
    }
}
