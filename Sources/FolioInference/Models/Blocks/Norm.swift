import Foundation

/// Normalisation of rows as a checkpoint defines it: RMSNorm, RMSNorm scaled by 1 + w
/// (Gemma, whose weights are stored as offsets from 1), or LayerNorm with an optional bias.
struct Norm: Sendable {
    enum Kind: Sendable { case rms, layer }
    let kind: Kind
    /// The factor applied after normalising (for Gemma's norms, 1 + the stored weight).
    let weight: Weight
    let bias: Weight?
    let eps: Float
    let width: Int

    /// `name`'s `.weight` (and `.bias` when `bias`) as an RMSNorm (`plusOne`: Gemma's).
    static func rms(_ w: WeightStore, _ name: String, width: Int, eps: Float, plusOne: Bool = false) throws -> Norm {
        let weight = try w.weight(name + ".weight", shape: [width])
        let factor = plusOne ? Weight(copying: (0..<width).map { 1 + weight[$0] }) : weight
        return Norm(kind: .rms, weight: factor, bias: nil, eps: eps, width: width)
    }

    /// `name`'s `.weight` and `.bias` as a LayerNorm (no `.bias` when `bias` is false).
    static func layer(_ w: WeightStore, _ name: String, width: Int, eps: Float, bias: Bool = true) throws -> Norm {
        Norm(kind: .layer, weight: try w.weight(name + ".weight", shape: [width]),
             bias: bias ? try w.weight(name + ".bias", shape: [width]) : nil, eps: eps, width: width)
    }

    /// Normalises `rows` rows of `width` values into `out` (which may be `x`).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        switch kind {
        case .rms:
            Math.rmsNorm(x, rows: rows, width: width, weight: weight.values, eps: eps, into: out)
        case .layer:
            for r in 0..<rows {
                let v = x + r * width, o = out + r * width
                var mean: Float = 0
                for i in 0..<width { mean += v[i] }
                mean /= Float(width)
                var variance: Float = 0
                for i in 0..<width { let d = v[i] - mean; variance += d * d }
                variance /= Float(width)
                let inv = 1 / (variance + eps).squareRoot()
                if let bias {
                    for i in 0..<width { o[i] = (v[i] - mean) * inv * weight[i] + bias[i] }
                } else {
                    for i in 0..<width { o[i] = (v[i] - mean) * inv * weight[i] }
                }
            }
        }
    }
}
