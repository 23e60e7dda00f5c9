import Folio

/// Hugging Face DeepseekV3ForCausalLM: multi-head latent attention (`LatentAttention`, RoPE
/// on the rotary part, interleaved pairs when `rope_interleave`, the default); the MLP of
/// the first `first_k_dense_replace` layers dense, of the others a mixture of
/// `n_routed_experts` SwiGLU experts plus `n_shared_experts` shared ones (one MLP of
/// n_shared_experts × moe_intermediate_size) routed by sigmoid scores: experts chosen by
/// score + `e_score_correction_bias` within the `topk_group` best of `n_group` groups
/// (ranked by the sum of their two best), weighted by the uncorrected scores, renormalised
/// when `norm_topk_prob`, times `routed_scaling_factor`. Multi-token-prediction layers
/// (`model.layers.N.` for N past num_hidden_layers) are left unused.
enum DeepSeekV3 {
    static let architecture = Architecture(modelType: "deepseek_v3") { c, w, _ in
        try DeepSeekV3.build(c, w, scoring: .sigmoid, interleaved: try c.bool("rope_interleave", true))
    }

    static func build(_ c: ModelConfig, _ w: WeightStore, scoring: MixtureOfExperts.Scoring, interleaved: Bool) throws -> DecoderModel {
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        guard try !c.bool("mlp_bias", false) else { throw InferenceError.unsupported(file: c.file, reason: "mlp_bias true is not implemented for \(try c.string("model_type"))") }
        let ropeDims = try c.int("qk_rope_head_dim")
        let rope = try RoPE.from(c, headDim: ropeDims, interleaved: interleaved)
        let experts = try c.int("n_routed_experts", nil, in: 1...(1 << 20)), topK = try c.int("num_experts_per_tok", nil, in: 1...experts)
        let groups = try c.int("n_group", 1, in: 1...experts), kept = try c.int("topk_group", groups, in: 1...groups)
        guard experts % groups == 0 else { throw c.bad("n_group", "\(groups) does not divide n_routed_experts \(experts)") }
        let inner = try c.int("moe_intermediate_size"), shared = try c.int("n_shared_experts", 0, in: 0...(1 << 20))
        let firstDense = try c.int("first_k_dense_replace", 0, in: 0...(1 << 20))
        let scale = Float(try c.double("routed_scaling_factor", 1))
        let normalize: Bool
        let grouping: MixtureOfExperts.GroupScore
        switch scoring {
        case .sigmoid:
            normalize = try c.bool("norm_topk_prob", true)
            grouping = .sumOfTopTwo
        case .softmax:
            // transformers' DeepseekV2TopkRouter: "greedy" or "group_limited_greedy" (groups by
            // their best score); it never renormalises.
            let method = try c.string("topk_method", "greedy")
            guard method == "greedy" || method == "group_limited_greedy" else {
                throw InferenceError.unsupported(file: c.file, reason: "topk_method '\(method)' is not implemented for deepseek_v2 (greedy, group_limited_greedy are)")
            }
            if method == "greedy" { c.accept("n_group", "topk_group") }
            guard try !c.bool("norm_topk_prob", false) else {
                throw InferenceError.unsupported(file: c.file, reason: "norm_topk_prob true is not implemented for deepseek_v2 (transformers' router ignores it, DeepSeek's own code renormalises)")
            }
            normalize = false
            grouping = method == "greedy" ? .none : .best
        }
        w.ignore { name in
            guard name.hasPrefix("model.layers."), let l = Int(name.dropFirst(13).prefix { $0 != "." }) else { return false }
            return l >= d.layers
        }
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: LlamaLayout(), eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: Array(repeating: nil, count: d.layers),
                                            attention: { _, p in try LatentAttention.deepseek(c, w, p, rope: rope) }) { i, p -> any FeedForward in
            guard i >= firstDense else { return try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act) }
            return MixtureOfExperts(
                router: try .load(w, p + "mlp.gate", out: experts, in: d.hidden),
                experts: try (0..<experts).map { try GatedMLP.load(w, p + "mlp.experts.\($0).", hidden: d.hidden, inner: inner, act: act) },
                topK: topK, scoring: scoring, normalize: normalize, scale: scale,
                correction: scoring == .sigmoid ? try w.weight(p + "mlp.gate.e_score_correction_bias", shape: [experts]) : nil,
                groups: grouping == .none ? 1 : groups, keptGroups: grouping == .none ? 1 : kept, grouping: grouping,
                shared: shared > 0 ? try GatedMLP.load(w, p + "mlp.shared_experts.", hidden: d.hidden, inner: inner * shared, act: act) : nil,
                width: d.hidden)
        }
    }
}
