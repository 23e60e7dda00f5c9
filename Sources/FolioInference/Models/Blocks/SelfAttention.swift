import Foundation

/// The attention of a decoder layer over the positions in its cache slot.
protocol TokenMixer: Sendable {
    /// Widths of one position's keys and values in the cache.
    var keyWidth: Int { get }
    var valueWidth: Int { get }
    /// out[n, hidden] for `n` new positions after `past` cached ones; appends their keys and
    /// values to `slot`.
    func apply(_ x: UnsafePointer<Float>, count n: Int, past: Int, slot: KVCache.Slot, into out: UnsafeMutablePointer<Float>)
}

/// Multi-head attention with grouped key/value heads: q, k, v projections (separate, or one
/// fused matrix with q, k, v rows in that order), optional RMSNorms of q and k (per head, as
/// Qwen3 and Gemma 3, or over the whole projection, as OLMo 2), RoPE over the first
/// `rope.dims` values of each head (all of them unless partial), a sliding window, score
/// soft-capping, and the output projection.
struct SelfAttention: TokenMixer {
    enum Projections: Sendable { case separate(q: Linear, k: Linear, v: Linear), fused(Linear) }
    let projections: Projections
    let o: Linear
    let heads, kvHeads, headDim: Int
    let qNorm, kNorm: Norm?
    /// true: the q/k norms work on each head's headDim values; false: on the whole row.
    let normsPerHead: Bool
    let rope: RoPE?
    let window: Int?
    let softcap: Float?
    let scale: Float

    var keyWidth: Int { kvHeads * headDim }
    var valueWidth: Int { kvHeads * headDim }

    /// Separate `prefix{q,k,v,o}_proj`, as the Llama family names them, or one `prefix` +
    /// `fused` matrix of q, k and v rows (Phi-3's `qkv_proj`).
    static func load(_ w: WeightStore, _ prefix: String, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, bias: Bool, outBias: Bool,
                     rope: RoPE?, window: Int?, scale: Float? = nil, softcap: Float? = nil,
                     qkNorm: (eps: Float, perHead: Bool, plusOne: Bool)? = nil, fused: String? = nil) throws -> SelfAttention {
        let d = headDim
        let norms = try qkNorm.map { n -> (Norm, Norm) in
            let qw = n.perHead ? d : heads * d, kw = n.perHead ? d : kvHeads * d
            return (try Norm.rms(w, prefix + "q_norm", width: qw, eps: n.eps, plusOne: n.plusOne),
                    try Norm.rms(w, prefix + "k_norm", width: kw, eps: n.eps, plusOne: n.plusOne))
        }
        let projections: Projections
        if let fused {
            projections = .fused(try .load(w, prefix + fused, out: (heads + 2 * kvHeads) * d, in: hidden, bias: bias))
        } else {
            projections = .separate(q: try .load(w, prefix + "q_proj", out: heads * d, in: hidden, bias: bias),
                                    k: try .load(w, prefix + "k_proj", out: kvHeads * d, in: hidden, bias: bias),
                                    v: try .load(w, prefix + "v_proj", out: kvHeads * d, in: hidden, bias: bias))
        }
        return SelfAttention(
            projections: projections,
            o: try .load(w, prefix + "o_proj", out: hidden, in: heads * d, bias: outBias),
            heads: heads, kvHeads: kvHeads, headDim: d, qNorm: norms?.0, kNorm: norms?.1, normsPerHead: qkNorm?.perHead ?? true,
            rope: rope, window: window, softcap: softcap, scale: scale ?? 1 / Float(d).squareRoot())
    }

    func apply(_ x: UnsafePointer<Float>, count n: Int, past: Int, slot: KVCache.Slot, into out: UnsafeMutablePointer<Float>) {
        let d = headDim, qw = heads * d, kw = kvHeads * d
        var q = [Float](repeating: 0, count: n * qw), k = [Float](repeating: 0, count: n * kw), v = k
        switch projections {
        case .separate(let pq, let pk, let pv):
            q.withUnsafeMutableBufferPointer { qp in
                k.withUnsafeMutableBufferPointer { kp in
                    v.withUnsafeMutableBufferPointer { vp in
                        Math.linears(x, rows: n, inFeatures: pq.inFeatures, [
                            LinearOutput(matrix: pq.matrix, bias: pq.bias?.values, out: qp.baseAddress!),
                            LinearOutput(matrix: pk.matrix, bias: pk.bias?.values, out: kp.baseAddress!),
                            LinearOutput(matrix: pv.matrix, bias: pv.bias?.values, out: vp.baseAddress!),
                        ])
                    }
                }
            }
        case .fused(let qkv):
            let all = qw + 2 * kw
            var t = [Float](repeating: 0, count: n * all)
            qkv.apply(x, rows: n, into: &t)
            for r in 0..<n {
                for j in 0..<qw { q[r * qw + j] = t[r * all + j] }
                for j in 0..<kw { k[r * kw + j] = t[r * all + qw + j]; v[r * kw + j] = t[r * all + qw + kw + j] }
            }
        }
        if let qNorm, let kNorm {
            q.withUnsafeMutableBufferPointer { qNorm.apply($0.baseAddress!, rows: normsPerHead ? n * heads : n, into: $0.baseAddress!) }
            k.withUnsafeMutableBufferPointer { kNorm.apply($0.baseAddress!, rows: normsPerHead ? n * kvHeads : n, into: $0.baseAddress!) }
        }
        if let rope {
            rope.apply(&q, positions: past, count: n, rowStride: qw, heads: heads, headStride: d)
            rope.apply(&k, positions: past, count: n, rowStride: kw, heads: kvHeads, headStride: d)
        }
        slot.append(keys: k, values: v, count: n, at: past)
        var ctx = [Float](repeating: 0, count: n * qw)
        Attention.causal(q: q, count: n, past: past, slot: slot, heads: heads, kvHeads: kvHeads, qkDim: d, vDim: d, scale: scale,
                         window: window, softcap: softcap, into: &ctx)
        o.apply(ctx, rows: n, into: out)
    }
}
