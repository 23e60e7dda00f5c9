import Folio

/// Hugging Face MixtralForCausalLM: Mistral's attention; each layer's MLP is a mixture of
/// `num_local_experts` SwiGLU experts (`block_sparse_moe.experts.E.{w1,w3,w2}`: gate, up,
/// down), the router `block_sparse_moe.gate` choosing `num_experts_per_tok` by softmax,
/// their weights renormalised over the chosen.
enum Mixtral {
    static let architecture = Architecture(modelType: "mixtral") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        let experts = try c.int("num_local_experts"), topK = try c.int("num_experts_per_tok", nil, in: 1...experts)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: LlamaLayout(), eps: Float(try c.double("rms_norm_eps", 1e-5)),
                                            rope: { _ in rope }, windows: try c.uniformWindows(layers: d.layers)) { _, p in
            let m = p + "block_sparse_moe."
            return MixtureOfExperts(
                router: try .load(w, m + "gate", out: experts, in: d.hidden),
                experts: try (0..<experts).map {
                    try GatedMLP.load(w, m + "experts.\($0).", hidden: d.hidden, inner: d.inter, act: act, names: ("w1", "w3", "w2"))
                },
                topK: topK, scoring: .softmax, normalize: true, scale: 1, correction: nil, groups: 1, keptGroups: 1, shared: nil, width: d.hidden)
        }
    }
}
