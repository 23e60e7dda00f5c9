import Foundation
import Folio

/// Hugging Face ModernBertModel (`modernbert`): token embeddings and a LayerNorm (no
/// positions), pre-norm layers (layer 0 without an attention norm) of attention through one
/// `attn.Wqkv` with RoPE and a GeGLU MLP (`mlp.Wi`: the first half activated, times the
/// second; `mlp.Wo`), and a final norm. Sliding layers see keys within ±local_attention/2.
/// Which layers slide: `layer_types` (transformers 5) or every layer i with
/// i % global_attn_every_n_layers != 0; their RoPE theta: `rope_parameters` per layer type
/// (transformers 5) or `global_rope_theta` / `local_rope_theta`.
enum ModernBERT {
    static let architecture = EncoderArchitecture(modelTypes: ["modernbert"], prefixes: ["model."], build: { c, w in
        let h = try c.int("hidden_size"), heads = try c.int("num_attention_heads"), layers = try c.int("num_hidden_layers")
        let inner = try c.int("intermediate_size"), vocab = try c.int("vocab_size"), positions = try c.int("max_position_embeddings", 8192)
        let eps = Float(try c.double("norm_eps", 1e-5)), normBias = try c.bool("norm_bias", false)
        let attnBias = try c.bool("attention_bias", false), mlpBias = try c.bool("mlp_bias", false)
        guard h % heads == 0 else { throw c.bad("num_attention_heads", "\(heads) does not divide hidden_size \(h)") }
        let act = try Activation(c, key: "hidden_activation", default: "gelu")
        let window = try c.int("local_attention", 128) / 2
        // Head-only and training settings of ModernBertForMaskedLM and friends.
        c.accept("classifier_activation", "classifier_bias", "classifier_pooling", "decoder_bias", "sparse_prediction",
                 "sparse_pred_ignore_index", "deterministic_flash_attn", "initializer_cutoff_factor", "reference_compile",
                 "repad_logits_with_grad", "tie_word_embeddings", "cls_token_id", "global_attn_every_n_layers")
        let every = try c.int("global_attn_every_n_layers", 3)
        let sliding: [Bool]
        if let types = try c.strings("layer_types") {
            guard types.count == layers else { throw c.bad("layer_types", "has \(types.count) entries for \(layers) layers") }
            sliding = try types.map { t in
                switch t {
                case "full_attention": return false
                case "sliding_attention": return true
                default: throw InferenceError.unsupported(file: c.file, reason: "layer_types entry '\(t)' is not implemented (full_attention, sliding_attention are)")
                }
            }
        } else {
            sliding = (0..<layers).map { $0 % every != 0 }
        }
        let d = h / heads
        let ropes: [Bool: RoPE]
        if let p = try c.object("rope_parameters") {
            var r: [Bool: RoPE] = [:]
            for (kind, key) in [(false, "full_attention"), (true, "sliding_attention")] where sliding.contains(kind) {
                guard let sub = try p.object(key) else { throw c.bad("rope_parameters", "has no '\(key)' entry") }
                r[kind] = try RoPE.from(c, headDim: d, parameters: sub)
            }
            ropes = r
        } else {
            ropes = [false: try RoPE(dims: d, theta: try c.double("global_rope_theta", 160000), scaling: nil, maxPositions: positions),
                     true: try RoPE(dims: d, theta: try c.double("local_rope_theta", 10000), scaling: nil, maxPositions: positions)]
        }
        return TransformerEncoder(
            hidden: h, words: try w.table("embeddings.tok_embeddings.weight", rows: vocab, width: h), positions: nil, tokenType: nil,
            embeddingNorm: try Norm.layer(w, "embeddings.norm", width: h, eps: eps, bias: normBias),
            layers: try (0..<layers).map { i in
                let p = "layers.\(i)."
                return EncoderLayer(
                    residual: .pre(i == 0 ? nil : try Norm.layer(w, p + "attn_norm", width: h, eps: eps, bias: normBias),
                                   try Norm.layer(w, p + "mlp_norm", width: h, eps: eps, bias: normBias)),
                    attention: EncoderAttention(
                        projections: .fused(try .load(w, p + "attn.Wqkv", out: 3 * h, in: h, bias: attnBias)),
                        o: try .load(w, p + "attn.Wo", out: h, in: h, bias: attnBias), heads: heads, headDim: d,
                        rope: ropes[sliding[i]], window: sliding[i] ? window : nil),
                    mlp: GatedMLP(input: .fused(try .load(w, p + "mlp.Wi", out: 2 * inner, in: h, bias: mlpBias)),
                                  down: try .load(w, p + "mlp.Wo", out: h, in: inner, bias: mlpBias), act: act))
            },
            finalNorm: try Norm.layer(w, "final_norm", width: h, eps: eps, bias: normBias),
            positionLimit: positions)
    }, ignores: { $0.hasPrefix("head.") || $0.hasPrefix("decoder.") })
}
