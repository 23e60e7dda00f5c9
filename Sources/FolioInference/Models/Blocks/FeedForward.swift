import Foundation

/// A weight matrix with its optional bias: y = x · Wᵀ + b.
struct Linear: Sendable {
    let matrix: Matrix
    let bias: Weight?

    var outFeatures: Int { matrix.rows }
    var inFeatures: Int { matrix.cols }

    /// Rows `name.weight` [out, in] (and `name.bias` [out] when `bias`).
    static func load(_ w: WeightStore, _ name: String, out: Int, in k: Int, bias: Bool = false) throws -> Linear {
        Linear(matrix: try w.matrix(name + ".weight", shape: [out, k]), bias: bias ? try w.weight(name + ".bias", shape: [out]) : nil)
    }

    func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        Math.linear(x, rows: rows, inFeatures: inFeatures, matrix: matrix, bias: bias?.values, into: out)
    }
}

/// The activation functions of config.json's `hidden_act` / `hidden_activation` /
/// `activation_function`, under transformers' names (`ACT2FN`).
enum Activation: Sendable {
    case silu, gelu, geluTanh, relu

    init(_ c: ModelConfig, key: String, default def: String) throws {
        let name = try c.string(key, def)
        switch name {
        case "silu", "swish": self = .silu
        case "gelu": self = .gelu
        case "gelu_pytorch_tanh", "gelu_new", "gelu_fast", "gelu_tanh": self = .geluTanh
        case "relu": self = .relu
        default: throw InferenceError.unsupported(file: c.file, reason: "\(key) '\(name)' is not implemented (silu, gelu, gelu_pytorch_tanh, gelu_new, relu are)")
        }
    }

    /// Applies the function in place.
    func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .silu: for i in 0..<count { x[i] = x[i] / (1 + expf(-x[i])) }
        case .gelu: Math.gelu(x, count: count)
        case .geluTanh:
            let c: Float = 0.7978845608028654
            for i in 0..<count {
                let v = x[i]
                x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
            }
        case .relu: for i in 0..<count { x[i] = max(0, x[i]) }
        }
    }

    /// gate = act(gate) · up, elementwise.
    func gated(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        if case .silu = self { Math.siluMul(gate, up, count: count); return }
        apply(gate, count: count)
        for i in 0..<count { gate[i] *= up[i] }
    }
}

/// The position-wise block of a decoder layer.
protocol FeedForward: Sendable {
    /// out[rows, width] = block(x[rows, width]).
    func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>)
}

/// down(act(gate(x)) · up(x)): SwiGLU / GeGLU. Gate and up are two matrices, or one fused
/// matrix whose first half of rows is the gate (Phi-3's `gate_up_proj`).
struct GatedMLP: FeedForward {
    enum Input: Sendable { case separate(gate: Linear, up: Linear), fused(Linear) }
    let input: Input
    let down: Linear
    let act: Activation

    var inner: Int { down.inFeatures }

    /// `prefix{gate,up,down}_proj` (or other names), [inner, hidden] and [hidden, inner].
    static func load(_ w: WeightStore, _ prefix: String, hidden: Int, inner: Int, act: Activation, bias: Bool = false,
                     names: (gate: String, up: String, down: String) = ("gate_proj", "up_proj", "down_proj")) throws -> GatedMLP {
        GatedMLP(input: .separate(gate: try .load(w, prefix + names.gate, out: inner, in: hidden, bias: bias),
                                  up: try .load(w, prefix + names.up, out: inner, in: hidden, bias: bias)),
                 down: try .load(w, prefix + names.down, out: hidden, in: inner, bias: bias), act: act)
    }

    func apply(_ x: UnsafePointer<Float>, rows n: Int, into out: UnsafeMutablePointer<Float>) {
        let f = inner, h = down.outFeatures
        var g = [Float](repeating: 0, count: n * f)
        switch input {
        case .separate(let gate, let up):
            var u = g
            g.withUnsafeMutableBufferPointer { gp in
                u.withUnsafeMutableBufferPointer { upp in
                    Math.linears(x, rows: n, inFeatures: h, [
                        LinearOutput(matrix: gate.matrix, bias: gate.bias?.values, out: gp.baseAddress!),
                        LinearOutput(matrix: up.matrix, bias: up.bias?.values, out: upp.baseAddress!),
                    ])
                }
            }
            act.gated(&g, u, count: n * f)
        case .fused(let gateUp):
            var both = [Float](repeating: 0, count: n * 2 * f), u = g
            gateUp.apply(x, rows: n, into: &both)
            for r in 0..<n {
                for j in 0..<f {
                    g[r * f + j] = both[r * 2 * f + j]
                    u[r * f + j] = both[r * 2 * f + f + j]
                }
            }
            act.gated(&g, u, count: n * f)
        }
        down.apply(g, rows: n, into: out)
    }
}

/// proj(act(fc(x))): the plain MLP of GPT-2.
struct PlainMLP: FeedForward {
    let fc: Linear
    let proj: Linear
    let act: Activation

    func apply(_ x: UnsafePointer<Float>, rows n: Int, into out: UnsafeMutablePointer<Float>) {
        var t = [Float](repeating: 0, count: n * fc.outFeatures)
        fc.apply(x, rows: n, into: &t)
        act.apply(&t, count: t.count)
        proj.apply(t, rows: n, into: out)
    }
}
