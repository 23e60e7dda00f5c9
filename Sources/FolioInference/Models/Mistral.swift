import Folio

/// Hugging Face MistralForCausalLM: Llama's layers with a sliding window of
/// `sliding_window` positions in every layer (none when null).
enum Mistral {
    static let architecture = Architecture(modelType: "mistral") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: LlamaLayout(), eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: try c.uniformWindows(layers: d.layers)) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }
}
