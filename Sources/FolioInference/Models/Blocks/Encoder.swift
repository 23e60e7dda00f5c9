import Foundation

/// A bidirectional encoder that turns a padded batch of token ids into last hidden states.
protocol Encoder: AnyObject, Sendable {
    var hidden: Int { get }
    /// The most tokens one text may have (position table rows past the padding offset).
    var positionLimit: Int { get }
    /// `ids` is [batch, length], each row's real tokens first (`lengths`); returns
    /// [batch · length, hidden] (rows past a text's length are padding, never read).
    func forward(ids: [Int32], batch: Int, length: Int, lengths: [Int]) throws -> [Float]
}

/// One encoder architecture of `folio embed`, by config.json's `model_type`.
struct EncoderArchitecture: Sendable {
    let modelTypes: [String]
    /// Prefixes the stored names may carry (a task model's `bert.`, `roberta.`).
    var prefixes: [String] = []
    let build: @Sendable (ModelConfig, WeightStore) throws -> any Encoder
    /// Stored tensors the encoder leaves unused (poolers, task heads, position-id buffers).
    var ignores: @Sendable (String) -> Bool = { $0.hasPrefix("pooler.") || $0.hasSuffix("position_ids") }
}

/// Self-attention over all real tokens of a text (padding keys masked), with what the
/// encoder families add: RoPE (ModernBERT), a local window (ModernBERT's sliding layers: keys
/// within ±window), and a per-head additive bias shared by all layers (MPNet's relative
/// position bias, [heads, length, length]).
struct EncoderAttention: Sendable {
    enum Projections: Sendable { case separate(q: Linear, k: Linear, v: Linear), fused(Linear) }
    let projections: Projections
    let o: Linear
    let heads, headDim: Int
    let rope: RoPE?
    let window: Int?

    func apply(_ x: UnsafePointer<Float>, batch: Int, length L: Int, lengths: [Int], bias: [Float]?, into out: UnsafeMutablePointer<Float>) {
        let (heads, d, window) = (heads, headDim, window)
        let h = heads * d, t = batch * L
        var q = [Float](repeating: 0, count: t * h), k = q, v = q
        switch projections {
        case let .separate(pq, pk, pv):
            q.withUnsafeMutableBufferPointer { qp in
                k.withUnsafeMutableBufferPointer { kp in
                    v.withUnsafeMutableBufferPointer { vp in
                        Math.linears(x, rows: t, inFeatures: pq.inFeatures, [
                            LinearOutput(matrix: pq.matrix, bias: pq.bias?.values, out: qp.baseAddress!),
                            LinearOutput(matrix: pk.matrix, bias: pk.bias?.values, out: kp.baseAddress!),
                            LinearOutput(matrix: pv.matrix, bias: pv.bias?.values, out: vp.baseAddress!),
                        ])
                    }
                }
            }
        case let .fused(qkv):
            var all = [Float](repeating: 0, count: t * 3 * h)
            qkv.apply(x, rows: t, into: &all)
            for r in 0..<t {
                for j in 0..<h {
                    q[r * h + j] = all[r * 3 * h + j]
                    k[r * h + j] = all[r * 3 * h + h + j]
                    v[r * h + j] = all[r * 3 * h + 2 * h + j]
                }
            }
        }
        if let rope {
            for b in 0..<batch {
                q.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * L * h, positions: 0, count: L, rowStride: h, heads: heads, headStride: d) }
                k.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * L * h, positions: 0, count: L, rowStride: h, heads: heads, headStride: d) }
            }
        }
        var ctx = [Float](repeating: 0, count: t * h)
        let scale = 1 / Float(d).squareRoot()
        ctx.withUnsafeMutableBufferPointer { cb in
            q.withUnsafeBufferPointer { qb in
                k.withUnsafeBufferPointer { kb in
                    v.withUnsafeBufferPointer { vb in
                        let shared = SendablePointers(q: qb.baseAddress!, k: kb.baseAddress!, v: vb.baseAddress!, out: cb.baseAddress!)
                        _ = Math.setUp
                        Math.parallelFor(batch * heads) { job in
                            let b = job / heads, head = job % heads
                            let n = lengths[b]
                            guard n > 0 else { return }
                            var scores = [Float](repeating: 0, count: L * n)
                            let base = b * L * h + head * d
                            scores.withUnsafeMutableBufferPointer { sb in
                                let s = sb.baseAddress!
                                // scores[L, n] = Q[L, d] · K[n, d]^T · scale (+ bias), masked outside the window.
                                Math.matmulNT(shared.q + base, lda: h, shared.k + base, ldb: h, m: L, n: n, k: d, alpha: scale, into: s, ldc: n)
                                if let bias {
                                    for i in 0..<L { for j in 0..<n { s[i * n + j] += bias[(head * L + i) * L + j] } }
                                }
                                if let window {
                                    // Padding queries (i >= n) are left unmasked: their rows are never read.
                                    for i in 0..<min(L, n) { for j in 0..<n where abs(i - j) > window { s[i * n + j] = -.infinity } }
                                }
                                Math.softmaxRows(s, rows: L, width: n)
                                // ctx[L, d] = scores[L, n] · V[n, d]
                                Math.matmulNN(s, lda: n, shared.v + base, ldb: h, m: L, n: d, k: n, into: shared.out + base, ldc: h)
                            }
                        }
                    }
                }
            }
        }
        o.apply(ctx, rows: t, into: out)
    }
}

/// A layer: `post`: x = norm1(x + attention(x)), x = norm2(x + mlp(x)) (BERT, RoBERTa,
/// DistilBERT, MPNet); `pre`: x += attention(norm1(x)), x += mlp(norm2(x)), norm1 optional
/// (ModernBERT's first layer has none).
struct EncoderLayer: Sendable {
    enum Residual: Sendable { case post(Norm, Norm), pre(Norm?, Norm) }
    let residual: Residual
    let attention: EncoderAttention
    let mlp: any FeedForward
}

/// The encoders of the registry: embeddings (word rows, learned positions from an offset,
/// token type 0, a norm), the layers, an optional final norm.
final class TransformerEncoder: Encoder, @unchecked Sendable {
    // @unchecked: immutable after init.
    let hidden: Int
    let words: EmbeddingTable
    let positions: EmbeddingTable?
    /// Position of a text's first token in the position table (RoBERTa, MPNet: padding_idx + 1).
    let positionOffset: Int
    let tokenType: [Float]?
    let embeddingNorm: Norm
    let layers: [EncoderLayer]
    let finalNorm: Norm?
    /// MPNet's relative position bias: the [buckets, heads] table and the bucket of each offset.
    let relativeBias: (table: [Float], heads: Int, bucket: @Sendable (Int) -> Int)?
    let positionLimit: Int

    init(hidden: Int, words: EmbeddingTable, positions: EmbeddingTable?, positionOffset: Int = 0, tokenType: [Float]?,
         embeddingNorm: Norm, layers: [EncoderLayer], finalNorm: Norm? = nil,
         relativeBias: (table: [Float], heads: Int, bucket: @Sendable (Int) -> Int)? = nil, positionLimit: Int) {
        self.hidden = hidden
        self.words = words
        self.positions = positions
        self.positionOffset = positionOffset
        self.tokenType = tokenType
        self.embeddingNorm = embeddingNorm
        self.layers = layers
        self.finalNorm = finalNorm
        self.relativeBias = relativeBias
        self.positionLimit = positionLimit
    }

    func forward(ids: [Int32], batch: Int, length L: Int, lengths: [Int]) throws -> [Float] {
        let h = hidden, t = batch * L
        guard L <= positionLimit else {
            throw InferenceError.badInput("a text of \(L) tokens exceeds the \(positionLimit) positions the model has")
        }
        for id in ids where id < 0 || Int(id) >= words.rows {
            throw InferenceError.badInput("token id \(id) is outside the vocabulary (0..<\(words.rows))")
        }
        var x = [Float](repeating: 0, count: t * h)
        try x.withUnsafeMutableBufferPointer { try words.gather(ids, into: $0.baseAddress!) }
        if let positions {
            var p = [Float](repeating: 0, count: L * h)
            try p.withUnsafeMutableBufferPointer { try positions.gather((0..<L).map { Int32(positionOffset + $0) }, into: $0.baseAddress!) }
            for b in 0..<batch { for i in 0..<(L * h) { x[b * L * h + i] += p[i] } }
        }
        if let tokenType { for r in 0..<t { for j in 0..<h { x[r * h + j] += tokenType[j] } } }
        x.withUnsafeMutableBufferPointer { embeddingNorm.apply($0.baseAddress!, rows: t, into: $0.baseAddress!) }
        var bias: [Float]? = nil
        if let rb = relativeBias {
            var table = [Float](repeating: 0, count: rb.heads * L * L)
            for i in 0..<L {
                for j in 0..<L {
                    let bucket = rb.bucket(j - i)
                    for hd in 0..<rb.heads { table[(hd * L + i) * L + j] = rb.table[bucket * rb.heads + hd] }
                }
            }
            bias = table
        }
        var a = [Float](repeating: 0, count: t * h), m = a, xn = a
        for layer in layers {
            switch layer.residual {
            case let .post(n1, n2):
                layer.attention.apply(x, batch: batch, length: L, lengths: lengths, bias: bias, into: &a)
                for i in 0..<(t * h) { a[i] += x[i] }
                a.withUnsafeMutableBufferPointer { n1.apply($0.baseAddress!, rows: t, into: $0.baseAddress!) }
                layer.mlp.apply(a, rows: t, into: &m)
                for i in 0..<(t * h) { x[i] = a[i] + m[i] }
                x.withUnsafeMutableBufferPointer { n2.apply($0.baseAddress!, rows: t, into: $0.baseAddress!) }
            case let .pre(n1, n2):
                if let n1 {
                    n1.apply(x, rows: t, into: &xn)
                    layer.attention.apply(xn, batch: batch, length: L, lengths: lengths, bias: bias, into: &a)
                } else {
                    layer.attention.apply(x, batch: batch, length: L, lengths: lengths, bias: bias, into: &a)
                }
                for i in 0..<(t * h) { x[i] += a[i] }
                n2.apply(x, rows: t, into: &xn)
                layer.mlp.apply(xn, rows: t, into: &m)
                for i in 0..<(t * h) { x[i] += m[i] }
            }
        }
        if let finalNorm { x.withUnsafeMutableBufferPointer { finalNorm.apply($0.baseAddress!, rows: t, into: $0.baseAddress!) } }
        return x
    }
}

/// Pointers shared with the attention workers, which write disjoint slices.
struct SendablePointers: @unchecked Sendable {
    let q: UnsafePointer<Float>
    let k: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
}
