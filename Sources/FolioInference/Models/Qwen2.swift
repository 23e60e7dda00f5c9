import Folio

/// Hugging Face Qwen2ForCausalLM (Qwen2, Qwen2.5): Llama's layers with biases on the q, k
/// and v projections (not on o); sliding windows per `layer_types`, or, in older configs,
/// from layer `max_window_layers` on when `use_sliding_window` is set.
enum Qwen2 {
    static let architecture = Architecture(modelType: "qwen2") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        var layout = LlamaLayout()
        layout.qkvBias = true
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: try c.qwenWindows(layers: d.layers)) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }
}
