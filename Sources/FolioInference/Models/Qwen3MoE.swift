import Folio

/// Hugging Face Qwen3MoeForCausalLM: Qwen3's attention; the MLP of layer i is a mixture of
/// `num_experts` SwiGLU experts (`mlp.experts.E.{gate,up,down}_proj`, `moe_intermediate_size`
/// wide) routed by `mlp.gate` (softmax, top `num_experts_per_tok`, renormalised when
/// `norm_topk_prob`), unless i is in `mlp_only_layers` or (i + 1) is not a multiple of
/// `decoder_sparse_step`, where it is a dense MLP of `intermediate_size`.
enum Qwen3MoE {
    static let architecture = Architecture(modelType: "qwen3_moe") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        // transformers 5 writes num_local_experts; older configs num_experts.
        let experts = c.has("num_experts") ? try c.int("num_experts", nil, in: 0...(1 << 20)) : try c.int("num_local_experts", nil, in: 0...(1 << 20))
        let topK = try c.int("num_experts_per_tok", nil, in: 1...max(1, experts))
        let inner = try c.int("moe_intermediate_size"), step = try c.int("decoder_sparse_step", 1)
        let dense = Set(try c.ints("mlp_only_layers")), normalize = try c.bool("norm_topk_prob", false)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: try Qwen3.layout(c), eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: try c.qwenWindows(layers: d.layers)) { i, p -> any FeedForward in
            guard !dense.contains(i), experts > 0, (i + 1) % step == 0 else {
                return try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
            }
            return MixtureOfExperts(
                router: try .load(w, p + "mlp.gate", out: experts, in: d.hidden),
                experts: try (0..<experts).map { try GatedMLP.load(w, p + "mlp.experts.\($0).", hidden: d.hidden, inner: inner, act: act) },
                topK: topK, scoring: .softmax, normalize: normalize, scale: 1, correction: nil, groups: 1, keptGroups: 1, shared: nil, width: d.hidden)
        }
    }
}
