import Folio

/// Hugging Face Phi3ForCausalLM: Llama's layers with q, k and v in one `self_attn.qkv_proj`
/// matrix and gate and up in one `mlp.gate_up_proj` (gate rows first); RoPE over the first
/// `partial_rotary_factor` of each head; a sliding window in every layer when
/// `sliding_window` is set. Long-context `longrope` scaling is refused by RoPE.
enum Phi3 {
    static let architecture = Architecture(modelType: "phi3") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim, partial: true)
        // Read by longrope scaling only, which RoPE refuses.
        c.accept("original_max_position_embeddings")
        var layout = LlamaLayout()
        layout.fusedQKV = true
        let bias = try c.bool("attention_bias", false)
        layout.qkvBias = bias
        layout.outBias = bias
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-5)),
                                            rope: { _ in rope }, windows: try c.uniformWindows(layers: d.layers)) { _, p in
            GatedMLP(input: .fused(try .load(w, p + "mlp.gate_up_proj", out: 2 * d.inter, in: d.hidden)),
                     down: try .load(w, p + "mlp.down_proj", out: d.hidden, in: d.inter), act: act)
        }
    }
}
