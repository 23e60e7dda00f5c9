import Foundation
import Folio

/// Hugging Face MPNetModel (`mpnet`): word + position embeddings (positions from
/// padding_idx + 1 = 2; transformers fixes padding_idx at 1) and a LayerNorm, post-norm layers
/// (`attention.attn.{q,k,v,o}`, `attention.LayerNorm`, `intermediate.dense`, `output.dense`,
/// `output.LayerNorm`), and a relative position bias added to every layer's scores: one
/// table `encoder.relative_attention_bias` [buckets, heads], indexed by T5's bucket of the key
/// offset j - i (32 buckets, max distance 128, as transformers' `compute_position_bias` calls it).
enum MPNet {
    static let architecture = EncoderArchitecture(modelTypes: ["mpnet"], prefixes: ["mpnet."], build: { c, w in
        let h = try c.int("hidden_size"), heads = try c.int("num_attention_heads"), layers = try c.int("num_hidden_layers")
        let inner = try c.int("intermediate_size"), vocab = try c.int("vocab_size"), positions = try c.int("max_position_embeddings")
        let eps = Float(try c.double("layer_norm_eps", 1e-12)), buckets = try c.int("relative_attention_num_buckets", 32)
        guard h % heads == 0 else { throw c.bad("num_attention_heads", "\(heads) does not divide hidden_size \(h)") }
        guard buckets >= 32 else { throw c.bad("relative_attention_num_buckets", "is \(buckets); transformers indexes 32 buckets") }
        c.accept("tie_word_embeddings", "pad_token_id")
        let act = try Activation(c, key: "hidden_act", default: "gelu")
        let offset = 2
        return TransformerEncoder(
            hidden: h, words: try w.table("embeddings.word_embeddings.weight", rows: vocab, width: h),
            positions: try w.table("embeddings.position_embeddings.weight", rows: positions, width: h), positionOffset: offset, tokenType: nil,
            embeddingNorm: try Norm.layer(w, "embeddings.LayerNorm", width: h, eps: eps),
            layers: try (0..<layers).map { i in
                let p = "encoder.layer.\(i)."
                return EncoderLayer(
                    residual: .post(try Norm.layer(w, p + "attention.LayerNorm", width: h, eps: eps), try Norm.layer(w, p + "output.LayerNorm", width: h, eps: eps)),
                    attention: EncoderAttention(
                        projections: .separate(q: try .load(w, p + "attention.attn.q", out: h, in: h, bias: true),
                                               k: try .load(w, p + "attention.attn.k", out: h, in: h, bias: true),
                                               v: try .load(w, p + "attention.attn.v", out: h, in: h, bias: true)),
                        o: try .load(w, p + "attention.attn.o", out: h, in: h, bias: true), heads: heads, headDim: h / heads, rope: nil, window: nil),
                    mlp: PlainMLP(fc: try .load(w, p + "intermediate.dense", out: inner, in: h, bias: true),
                                  proj: try .load(w, p + "output.dense", out: h, in: inner, bias: true), act: act))
            },
            relativeBias: (table: try w.dense("encoder.relative_attention_bias.weight", shape: [buckets, heads]), heads: heads,
                           bucket: { MPNet.bucket($0) }),
            positionLimit: positions - offset)
    })

    /// T5's relative position bucket as MPNet uses it (bidirectional, 32 buckets, max distance
    /// 128) for a key `offset` = j - i positions from the query: keys before or at the query
    /// in buckets 0-15, after it in 16-31; exact below 8, logarithmic beyond.
    static func bucket(_ offset: Int) -> Int {
        let buckets = 32 / 2, exact = buckets / 2
        var n = -offset
        var ret = 0
        if n < 0 { ret += buckets; n = -n }
        if n < exact { return ret + n }
        let large = Float(exact) + Float(log(Float(n) / Float(exact)) / log(Float(128) / Float(exact))) * Float(buckets - exact)
        return ret + min(buckets - 1, Int(large))
    }
}
