import Folio

/// Hugging Face DistilBertModel (`distilbert`): word + position embeddings (learned, or the
/// sinusoidal table transformers stores when `sinusoidal_pos_embds`) and a LayerNorm, then
/// post-norm layers (`attention.{q,k,v,out}_lin`, `sa_layer_norm`, `ffn.lin1/lin2`,
/// `output_layer_norm`). transformers fixes every LayerNorm's eps at 1e-12.
enum DistilBERT {
    static let architecture = EncoderArchitecture(modelTypes: ["distilbert"], prefixes: ["distilbert."], build: { c, w in
        let h = try c.int("dim"), heads = try c.int("n_heads"), layers = try c.int("n_layers"), inner = try c.int("hidden_dim")
        let vocab = try c.int("vocab_size"), positions = try c.int("max_position_embeddings", 512)
        guard h % heads == 0 else { throw c.bad("n_heads", "\(heads) does not divide dim \(h)") }
        // The sinusoidal table is a stored parameter either way; the stored rows are used.
        c.accept("sinusoidal_pos_embds", "tie_word_embeddings")
        let act = try Activation(c, key: "activation", default: "gelu")
        let eps: Float = 1e-12
        return TransformerEncoder(
            hidden: h, words: try w.table("embeddings.word_embeddings.weight", rows: vocab, width: h),
            positions: try w.table("embeddings.position_embeddings.weight", rows: positions, width: h), tokenType: nil,
            embeddingNorm: try Norm.layer(w, "embeddings.LayerNorm", width: h, eps: eps),
            layers: try (0..<layers).map { i in
                let p = "transformer.layer.\(i)."
                return EncoderLayer(
                    residual: .post(try Norm.layer(w, p + "sa_layer_norm", width: h, eps: eps), try Norm.layer(w, p + "output_layer_norm", width: h, eps: eps)),
                    attention: EncoderAttention(
                        projections: .separate(q: try .load(w, p + "attention.q_lin", out: h, in: h, bias: true),
                                               k: try .load(w, p + "attention.k_lin", out: h, in: h, bias: true),
                                               v: try .load(w, p + "attention.v_lin", out: h, in: h, bias: true)),
                        o: try .load(w, p + "attention.out_lin", out: h, in: h, bias: true), heads: heads, headDim: h / heads, rope: nil, window: nil),
                    mlp: PlainMLP(fc: try .load(w, p + "ffn.lin1", out: inner, in: h, bias: true),
                                  proj: try .load(w, p + "ffn.lin2", out: h, in: inner, bias: true), act: act))
            },
            positionLimit: positions)
    }, ignores: { $0.hasSuffix("position_ids") || $0.hasPrefix("vocab_") })
}
