import Foundation
import Folio

/// Hugging Face BertModel (`bert`): word + absolute position + token-type embeddings and a
/// LayerNorm, then post-norm layers of self-attention and a GELU MLP. Tensor names as
/// BertModel saves them, with or without a task model's `bert.` prefix.
enum Bert {
    static let architecture = EncoderArchitecture(modelTypes: ["bert"], prefixes: ["bert."], build: { c, w in
        try Bert.build(c, w, positionOffset: 0)
    }, ignores: { $0.hasPrefix("pooler.") || $0.hasSuffix("position_ids") || $0.hasPrefix("cls.") })

    /// BERT's layout, shared by RoBERTa and XLM-R (whose positions start at `positionOffset`).
    static func build(_ c: ModelConfig, _ w: WeightStore, positionOffset: Int) throws -> TransformerEncoder {
        let h = try c.int("hidden_size"), heads = try c.int("num_attention_heads"), layers = try c.int("num_hidden_layers")
        let inner = try c.int("intermediate_size"), vocab = try c.int("vocab_size"), positions = try c.int("max_position_embeddings")
        let types = try c.int("type_vocab_size", 2), eps = Float(try c.double("layer_norm_eps", 1e-12))
        guard h % heads == 0 else { throw c.bad("num_attention_heads", "\(heads) does not divide hidden_size \(h)") }
        let positionType = try c.string("position_embedding_type", "absolute")
        guard positionType == "absolute" else {
            throw InferenceError.unsupported(file: c.file, reason: "position_embedding_type '\(positionType)' is not implemented (absolute is)")
        }
        guard try !c.bool("is_decoder", false), try !c.bool("add_cross_attention", false) else {
            throw InferenceError.unsupported(file: c.file, reason: "a decoder (is_decoder, add_cross_attention) is not an encoder folio embed runs")
        }
        c.accept("tie_word_embeddings", "use_cache")
        let act = try Activation(c, key: "hidden_act", default: "gelu")
        guard positions > positionOffset else { throw c.bad("max_position_embeddings", "must exceed the position offset \(positionOffset)") }
        let tokenType = try w.dense("embeddings.token_type_embeddings.weight", shape: [types, h])
        return TransformerEncoder(
            hidden: h, words: try w.table("embeddings.word_embeddings.weight", rows: vocab, width: h),
            positions: try w.table("embeddings.position_embeddings.weight", rows: positions, width: h), positionOffset: positionOffset,
            tokenType: Array(tokenType[0..<h]), embeddingNorm: try Norm.layer(w, "embeddings.LayerNorm", width: h, eps: eps),
            layers: try (0..<layers).map { i in
                let p = "encoder.layer.\(i)."
                return EncoderLayer(
                    residual: .post(try Norm.layer(w, p + "attention.output.LayerNorm", width: h, eps: eps),
                                    try Norm.layer(w, p + "output.LayerNorm", width: h, eps: eps)),
                    attention: EncoderAttention(
                        projections: .separate(q: try .load(w, p + "attention.self.query", out: h, in: h, bias: true),
                                               k: try .load(w, p + "attention.self.key", out: h, in: h, bias: true),
                                               v: try .load(w, p + "attention.self.value", out: h, in: h, bias: true)),
                        o: try .load(w, p + "attention.output.dense", out: h, in: h, bias: true), heads: heads, headDim: h / heads,
                        rope: nil, window: nil),
                    mlp: PlainMLP(fc: try .load(w, p + "intermediate.dense", out: inner, in: h, bias: true),
                                  proj: try .load(w, p + "output.dense", out: h, in: inner, bias: true), act: act))
            },
            positionLimit: positions - positionOffset)
    }
}
