import Dispatch
import Foundation
import Folio

/// config.json of a BERT-family encoder (Hugging Face BertModel).
public struct BertConfig: Codable, Sendable {
    public var modelType: String
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenAct: String
    public var positionEmbeddingType: String?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps"
        case hiddenAct = "hidden_act"
        case positionEmbeddingType = "position_embedding_type"
    }

    /// Model types whose encoder is BERT's.
    public static let supportedTypes: Set<String> = ["bert"]
}

/// A BERT encoder: word + position + token-type embeddings and LayerNorm, then layers of
/// self-attention (with a padding mask) and a GELU MLP, each with residual and LayerNorm.
/// Tensor names as in Hugging Face's BertModel (with or without a `bert.` prefix).
final class BertModel: @unchecked Sendable {
    // @unchecked: immutable after init.
    struct Layer {
        let q, k, v, o, up, down: [Float]
        let qb, kb, vb, ob, upb, downb: [Float]
        let ln1g, ln1b, ln2g, ln2b: [Float]
    }

    let config: BertConfig
    let words: EmbeddingTable
    let positions: [Float]
    let tokenTypes: [Float]
    let embLNg: [Float], embLNb: [Float]
    let layers: [Layer]

    init(config c: BertConfig, weights w: WeightStore) throws {
        guard BertConfig.supportedTypes.contains(c.modelType) else {
            throw InferenceError.unsupported(file: w.path, reason: "model_type '\(c.modelType)' is not a supported encoder (supported: bert)")
        }
        guard c.hiddenAct == "gelu" else {
            throw InferenceError.unsupported(file: w.path, reason: "hidden_act '\(c.hiddenAct)' is not supported (gelu is)")
        }
        guard (c.positionEmbeddingType ?? "absolute") == "absolute" else {
            throw InferenceError.unsupported(file: w.path, reason: "position_embedding_type '\(c.positionEmbeddingType!)' is not supported (absolute is)")
        }
        guard c.hiddenSize > 0, c.numAttentionHeads > 0, c.hiddenSize % c.numAttentionHeads == 0, c.numHiddenLayers > 0,
              c.intermediateSize > 0, c.maxPositionEmbeddings > 0, c.typeVocabSize > 0, c.vocabSize > 0 else {
            throw InferenceError.badConfig(file: w.path, field: "hidden_size", reason: "sizes must be positive and hidden_size divisible by num_attention_heads")
        }
        config = c
        let h = c.hiddenSize, f = c.intermediateSize
        words = try w.table("embeddings.word_embeddings.weight", rows: c.vocabSize, width: h)
        positions = try w.dense("embeddings.position_embeddings.weight", shape: [c.maxPositionEmbeddings, h])
        tokenTypes = try w.dense("embeddings.token_type_embeddings.weight", shape: [c.typeVocabSize, h])
        embLNg = try w.dense("embeddings.LayerNorm.weight", shape: [h])
        embLNb = try w.dense("embeddings.LayerNorm.bias", shape: [h])
        layers = try (0..<c.numHiddenLayers).map { i in
            let p = "encoder.layer.\(i)."
            return Layer(
                q: try w.dense(p + "attention.self.query.weight", shape: [h, h]),
                k: try w.dense(p + "attention.self.key.weight", shape: [h, h]),
                v: try w.dense(p + "attention.self.value.weight", shape: [h, h]),
                o: try w.dense(p + "attention.output.dense.weight", shape: [h, h]),
                up: try w.dense(p + "intermediate.dense.weight", shape: [f, h]),
                down: try w.dense(p + "output.dense.weight", shape: [h, f]),
                qb: try w.dense(p + "attention.self.query.bias", shape: [h]),
                kb: try w.dense(p + "attention.self.key.bias", shape: [h]),
                vb: try w.dense(p + "attention.self.value.bias", shape: [h]),
                ob: try w.dense(p + "attention.output.dense.bias", shape: [h]),
                upb: try w.dense(p + "intermediate.dense.bias", shape: [f]),
                downb: try w.dense(p + "output.dense.bias", shape: [h]),
                ln1g: try w.dense(p + "attention.output.LayerNorm.weight", shape: [h]),
                ln1b: try w.dense(p + "attention.output.LayerNorm.bias", shape: [h]),
                ln2g: try w.dense(p + "output.LayerNorm.weight", shape: [h]),
                ln2b: try w.dense(p + "output.LayerNorm.bias", shape: [h]))
        }
    }

    /// Last hidden states of a padded batch: `ids` is [batch, length] (padding at the end of
    /// each row, `lengths` the real lengths). Returns [batch * length, hidden].
    func forward(ids: [Int32], batch: Int, length L: Int, lengths: [Int]) throws -> [Float] {
        let h = config.hiddenSize, heads = config.numAttentionHeads, d = h / heads, f = config.intermediateSize
        let t = batch * L
        guard L <= config.maxPositionEmbeddings else {
            throw InferenceError.badInput("a text of \(L) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        var x = [Float](repeating: 0, count: t * h)
        try x.withUnsafeMutableBufferPointer { xb in
            try words.gather(ids, into: xb.baseAddress!)
            for b in 0..<batch {
                for p in 0..<L {
                    let row = xb.baseAddress! + (b * L + p) * h
                    for i in 0..<h { row[i] += positions[p * h + i] + tokenTypes[i] }
                }
            }
            Math.layerNorm(xb.baseAddress!, rows: t, width: h, gamma: embLNg, beta: embLNb, eps: config.layerNormEps)
        }
        var q = [Float](repeating: 0, count: t * h), k = q, v = q, ctx = q, attn = q
        var mid = [Float](repeating: 0, count: t * f)
        let scale = 1 / Float(d).squareRoot()
        for layer in layers {
            x.withUnsafeBufferPointer { xb in
                Math.linear(xb.baseAddress!, rows: t, inFeatures: h, weight: layer.q, outFeatures: h, bias: layer.qb, into: &q)
                Math.linear(xb.baseAddress!, rows: t, inFeatures: h, weight: layer.k, outFeatures: h, bias: layer.kb, into: &k)
                Math.linear(xb.baseAddress!, rows: t, inFeatures: h, weight: layer.v, outFeatures: h, bias: layer.vb, into: &v)
            }
            Self.attention(q: q, k: k, v: v, into: &ctx, batch: batch, length: L, lengths: lengths, heads: heads, headDim: d, scale: scale)
            Math.linear(ctx, rows: t, inFeatures: h, weight: layer.o, outFeatures: h, bias: layer.ob, into: &attn)
            for i in 0..<(t * h) { attn[i] += x[i] }
            attn.withUnsafeMutableBufferPointer { Math.layerNorm($0.baseAddress!, rows: t, width: h, gamma: layer.ln1g, beta: layer.ln1b, eps: config.layerNormEps) }
            Math.linear(attn, rows: t, inFeatures: h, weight: layer.up, outFeatures: f, bias: layer.upb, into: &mid)
            mid.withUnsafeMutableBufferPointer { Math.gelu($0.baseAddress!, count: t * f) }
            Math.linear(mid, rows: t, inFeatures: f, weight: layer.down, outFeatures: h, bias: layer.downb, into: &x)
            for i in 0..<(t * h) { x[i] += attn[i] }
            x.withUnsafeMutableBufferPointer { Math.layerNorm($0.baseAddress!, rows: t, width: h, gamma: layer.ln2g, beta: layer.ln2b, eps: config.layerNormEps) }
        }
        return x
    }

    /// Scaled dot-product attention per (sequence, head) over the real tokens of each
    /// sequence (padding keys are masked out), spread over the cores.
    static func attention(q: [Float], k: [Float], v: [Float], into ctx: inout [Float], batch: Int, length L: Int, lengths: [Int],
                          heads: Int, headDim d: Int, scale: Float) {
        let h = heads * d
        ctx.withUnsafeMutableBufferPointer { cb in
            q.withUnsafeBufferPointer { qb in
                k.withUnsafeBufferPointer { kb in
                    v.withUnsafeBufferPointer { vb in
                        let shared = SendablePointers(q: qb.baseAddress!, k: kb.baseAddress!, v: vb.baseAddress!, out: cb.baseAddress!)
                        _ = Math.setUp
                        Math.parallelFor(batch * heads) { job in
                            let b = job / heads, head = job % heads
                            let n = lengths[b]
                            var scores = [Float](repeating: 0, count: L * n)
                            let base = b * L * h + head * d
                            scores.withUnsafeMutableBufferPointer { sb in
                                // scores[L, n] = Q[L, d] · K[n, d]^T * scale
                                Math.matmulNT(shared.q + base, lda: h, shared.k + base, ldb: h, m: L, n: n, k: d, alpha: scale, into: sb.baseAddress!, ldc: n)
                                Math.softmaxRows(sb.baseAddress!, rows: L, width: n)
                                // ctx[L, d] = scores[L, n] · V[n, d]
                                Math.matmulNN(sb.baseAddress!, lda: n, shared.v + base, ldb: h, m: L, n: d, k: n, into: shared.out + base, ldc: h)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Pointers shared with the attention workers, which write disjoint slices.
struct SendablePointers: @unchecked Sendable {
    let q: UnsafePointer<Float>
    let k: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
}
