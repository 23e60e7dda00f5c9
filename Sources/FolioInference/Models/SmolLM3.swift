import Folio

/// Hugging Face SmolLM3ForCausalLM: Llama's layers where RoPE is skipped in some layers
/// (`no_rope_layers[i]` is 1 where layer i uses it; by default every `no_rope_layer_interval`-th
/// layer goes without), sliding windows only when `use_sliding_window` (per `layer_types`,
/// else in the layers without RoPE), `attention_bias` on q, k, v and o, tied embeddings by default.
enum SmolLM3 {
    static let architecture = Architecture(modelType: "smollm3") { c, w, _ in
        let d = try DecoderDims(c)
        let act = try Activation(c, key: "hidden_act", default: "silu")
        let rope = try RoPE.from(c, headDim: d.headDim)
        let interval = try c.int("no_rope_layer_interval", 4)
        let uses = c.has("no_rope_layers") ? try c.ints("no_rope_layers") : (0..<d.layers).map { ($0 + 1) % interval != 0 ? 1 : 0 }
        guard uses.count == d.layers, uses.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw c.bad("no_rope_layers", "must hold one 0 or 1 per layer (\(d.layers))")
        }
        let windows: [Int?]
        if try c.bool("use_sliding_window", false) {
            let sliding = c.has("sliding_window")
            windows = try c.layerWindows(layers: d.layers, fallback: { uses[$0] == 0 && sliding })
        } else {
            // transformers gives no layer a window unless use_sliding_window is set.
            c.accept("sliding_window", "layer_types")
            windows = Array(repeating: nil, count: d.layers)
        }
        let bias = try c.bool("attention_bias", false), mlpBias = try c.bool("mlp_bias", false)
        var layout = LlamaLayout()
        layout.qkvBias = bias
        layout.outBias = bias
        layout.tiedByDefault = true
        return try DecoderModel.llamaLayout(c, w, dims: d, layout: layout, eps: Float(try c.double("rms_norm_eps", 1e-6)),
                                            rope: { uses[$0] == 1 ? rope : nil }, windows: windows) { _, p in
            try GatedMLP.load(w, p + "mlp.", hidden: d.hidden, inner: d.inter, act: act, bias: mlpBias)
        }
    }
}
