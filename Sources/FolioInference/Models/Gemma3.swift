import Folio

/// Hugging Face Gemma3ForCausalLM (`gemma3_text`): Gemma 2's layers with per-head q/k
/// RMSNorms (1 + w) and two RoPEs, one for sliding layers and one for full-attention
/// layers: transformers 5's `rope_parameters` keyed by layer type, or the older
/// `rope_local_base_freq` (sliding, unscaled) beside `rope_theta` and `rope_scaling`
/// (full). Layers slide per `layer_types`, else all but every `sliding_window_pattern`-th.
enum Gemma3 {
    static let architecture = Architecture(modelType: "gemma3_text") { c, w, _ in
        let d = try DecoderDims(c)
        let pattern = try c.int("sliding_window_pattern", try c.int("_sliding_window_pattern", 6))
        let windows = try c.layerWindows(layers: d.layers, fallback: { ($0 + 1) % pattern != 0 })
        let local: RoPE, global: RoPE
        if let p = try c.object("rope_parameters"), p.has("full_attention") || p.has("sliding_attention") {
            guard let full = try p.object("full_attention"), let sliding = try p.object("sliding_attention") else {
                throw p.bad("full_attention", "rope_parameters by layer type needs both full_attention and sliding_attention")
            }
            global = try RoPE.from(c, headDim: d.headDim, parameters: full)
            local = try RoPE.from(c, headDim: d.headDim, parameters: sliding)
        } else {
            global = try RoPE.from(c, headDim: d.headDim, defaultTheta: 1_000_000)
            local = try RoPE(dims: d.headDim, theta: try c.double("rope_local_base_freq", 10000), scaling: nil,
                             maxPositions: try c.int("max_position_embeddings", 2048))
        }
        var layout = try Gemma2.gemmaLayout(c, hidden: d.hidden, headDim: d.headDim)
        layout.qkNorm = (perHead: true, plusOne: true)
        let act = try Gemma2.gemmaActivation(c)
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { windows[$0] == nil ? global : local }, windows: windows) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act)
        }
    }
}
