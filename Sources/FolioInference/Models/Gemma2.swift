import Folio

/// Hugging Face Gemma2ForCausalLM: embeddings scaled by sqrt(hidden_size); each layer
/// normalises before and after attention and before and after the GeGLU MLP (RMSNorms
/// scaled by 1 + w); attention scaled by `query_pre_attn_scalar`^-1/2, its scores
/// soft-capped at `attn_logit_softcapping`; sliding windows per `layer_types` (older
/// configs: every even layer); final logits soft-capped at `final_logit_softcapping`;
/// the head tied to the embeddings.
enum Gemma2 {
    static let architecture = Architecture(modelType: "gemma2") { c, w, _ in
        let d = try DecoderDims(c)
        let rope = try RoPE.from(c, headDim: d.headDim)
        let windows = try c.layerWindows(layers: d.layers, fallback: { $0 % 2 == 0 })
        let layout = try gemmaLayout(c, hidden: d.hidden, headDim: d.headDim)
        let act = try gemmaActivation(c)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { _ in rope }, windows: windows) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }

    /// What Gemma 2 and Gemma 3 share: sandwich (1 + w) norms, scaled embeddings, the query
    /// scalar, soft-capping, tied head.
    static func gemmaLayout(_ c: ModelConfig, hidden: Int, headDim: Int) throws -> LlamaLayout {
        if try c.bool("use_bidirectional_attention", false) {
            throw InferenceError.unsupported(file: c.file, reason: "config key 'use_bidirectional_attention' true is not implemented (folio run is causal)")
        }
        var layout = LlamaLayout()
        layout.norms = .sandwich
        layout.plusOneNorms = true
        let bias = try c.bool("attention_bias", false)
        layout.qkvBias = bias
        layout.outBias = bias
        layout.embedScale = Float(hidden).squareRoot()
        let scalar = try c.double("query_pre_attn_scalar", Double(headDim))
        guard scalar > 0 else { throw c.bad("query_pre_attn_scalar", "must be positive") }
        layout.scale = Float(1 / scalar.squareRoot())
        layout.softcap = try c.has("attn_logit_softcapping") ? Float(try c.double("attn_logit_softcapping")) : nil
        layout.finalSoftcap = try c.has("final_logit_softcapping") ? Float(try c.double("final_logit_softcapping")) : nil
        for cap in [layout.softcap, layout.finalSoftcap] where cap.map({ $0 <= 0 }) == true {
            throw c.bad("attn_logit_softcapping", "soft caps must be positive")
        }
        layout.tiedByDefault = true
        return layout
    }

    /// `hidden_activation` (Gemma's modeling code reads it, not `hidden_act`).
    static func gemmaActivation(_ c: ModelConfig) throws -> Activation {
        c.accept("hidden_act")
        return try Activation(c, key: "hidden_activation", default: "gelu_pytorch_tanh")
    }
}
