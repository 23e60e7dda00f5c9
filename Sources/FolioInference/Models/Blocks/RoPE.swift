import Foundation

/// Rotary position embedding over the first `dims` values of each head, with the inverse
/// frequencies of the scaling type that config.json names (`rope_scaling`): none/default,
/// linear, llama3, yarn. Formulas follow Hugging Face's `modeling_rope_utils`
/// (`_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`,
/// `_compute_yarn_parameters`).
struct RoPE: Sendable {
    let dims: Int
    /// The base of the unscaled frequencies, theta^(-2i/dims).
    let theta: Double
    private(set) var invFreq: [Double]
    /// Factor on cos and sin (YaRN's attention factor; 1 otherwise).
    let attentionFactor: Double
    /// true: rotate pairs (2i, 2i+1) ("traditional", GPT-J); false: rotate (i, i + dims/2) (Llama's rotate_half).
    let interleaved: Bool
    /// The longest sequence the config allows: max_position_embeddings, or more where the
    /// scaling stretches it (factor × the original context of linear, llama3 and yarn).
    let positionLimit: Int

    /// YaRN's magnitude correction, 0.1 · mscale · ln(scale) + 1 for scale > 1.
    static func yarnMscale(_ scale: Double, _ mscale: Double = 1) -> Double {
        scale <= 1 ? 1 : 0.1 * mscale * log(scale) + 1
    }

    /// Builds the RoPE of a config. `scaling` is the `rope_scaling` object, if any.
    init(dims: Int, theta: Double, scaling: ModelConfig?, maxPositions: Int, interleaved: Bool = false) throws {
        guard dims > 0, dims % 2 == 0 else { throw InferenceError.badConfig(file: scaling?.file ?? "config.json", field: "head_dim", reason: "rotary dims \(dims) must be even and positive") }
        guard theta > 1 else { throw InferenceError.badConfig(file: scaling?.file ?? "config.json", field: "rope_theta", reason: "must be greater than 1") }
        self.dims = dims
        self.theta = theta
        self.interleaved = interleaved
        let half = dims / 2
        let base = (0..<half).map { 1 / pow(theta, Double(2 * $0) / Double(dims)) }
        let type = try scaling.map { s in try s.has("rope_type") ? s.string("rope_type") : s.string("type", "default") } ?? "default"
        var limit = maxPositions
        switch type {
        case "default":
            invFreq = base
            attentionFactor = 1
        case "linear":
            let factor = try scaling!.double("factor")
            guard factor > 0 else { throw scaling!.bad("factor", "must be positive") }
            invFreq = base.map { $0 / factor }
            attentionFactor = 1
            let original = try scaling!.int("original_max_position_embeddings", maxPositions)
            limit = max(maxPositions, Int(Double(original) * factor))
        case "llama3":
            let s = scaling!
            let factor = try s.double("factor"), low = try s.double("low_freq_factor"), high = try s.double("high_freq_factor")
            let original = Double(try s.int("original_max_position_embeddings"))
            guard factor > 0, low > 0, high > low else { throw s.bad("high_freq_factor", "llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0") }
            let lowWavelen = original / low, highWavelen = original / high
            limit = max(maxPositions, Int(original * factor))
            invFreq = base.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / factor }
                let smooth = (original / wavelen - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
            attentionFactor = 1
        case "yarn":
            let s = scaling!
            let factor = try s.double("factor")
            guard factor > 0 else { throw s.bad("factor", "must be positive") }
            let original = Double(try s.int("original_max_position_embeddings", maxPositions))
            limit = max(maxPositions, Int(original * factor))
            let betaFast = try s.double("beta_fast", 32), betaSlow = try s.double("beta_slow", 1)
            if s.has("attention_factor") {
                attentionFactor = try s.double("attention_factor")
            } else {
                let m = try s.double("mscale", 0), mAll = try s.double("mscale_all_dim", 0)
                attentionFactor = (m != 0 && mAll != 0) ? Self.yarnMscale(factor, m) / Self.yarnMscale(factor, mAll) : Self.yarnMscale(factor)
            }
            func correctionDim(_ rotations: Double) -> Double {
                Double(dims) * log(original / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            let truncate = try s.bool("truncate", true)
            var lo = correctionDim(betaFast), hi = correctionDim(betaSlow)
            if truncate { lo = floor(lo); hi = ceil(hi) }
            lo = max(lo, 0); hi = min(hi, Double(dims - 1))
            if lo == hi { hi += 0.001 }
            invFreq = (0..<half).map { i in
                let ramp = min(max((Double(i) - lo) / (hi - lo), 0), 1)
                let extrapolation = 1 - ramp
                return base[i] / factor * (1 - extrapolation) + base[i] * extrapolation
            }
        default:
            throw InferenceError.unsupported(file: scaling?.file ?? "config.json", reason: "rope_scaling type '\(type)' is not supported (default, linear, llama3, yarn are)")
        }
        positionLimit = limit
    }

    /// The RoPE of a config over `headDim`-wide heads: transformers 5's `rope_parameters`
    /// object (rope_type, rope_theta, the scaling fields and partial_rotary_factor together),
    /// else the older top-level `rope_theta`, `rope_scaling` and `partial_rotary_factor`.
    /// `parameters` overrides where the object is read from (Gemma 3's per-layer-type
    /// objects). A partial rotary factor is refused unless `partial` (the rotary part is then
    /// the first headDim · factor values of each head).
    static func from(_ c: ModelConfig, headDim: Int, parameters: ModelConfig? = nil, defaultTheta: Double = 10000,
                     partial: Bool = false, interleaved: Bool = false) throws -> RoPE {
        let maxPositions = try c.int("max_position_embeddings", 2048)
        let p = try parameters ?? c.object("rope_parameters")
        let theta: Double, scaling: ModelConfig?, fraction: Double
        if let p {
            if c.has("rope_scaling") { throw c.bad("rope_scaling", "is given beside rope_parameters; one of them must go") }
            let top = c.has("rope_theta") ? try c.double("rope_theta") : nil
            theta = try p.double("rope_theta", top ?? defaultTheta)
            if let top, top != theta { throw c.bad("rope_theta", "is \(top) but rope_parameters.rope_theta is \(theta)") }
            fraction = try p.has("partial_rotary_factor") ? p.double("partial_rotary_factor") : c.double("partial_rotary_factor", 1)
            scaling = p
        } else {
            theta = try c.double("rope_theta", defaultTheta)
            fraction = try c.double("partial_rotary_factor", 1)
            scaling = try c.object("rope_scaling")
        }
        var dims = headDim
        if fraction != 1 {
            guard partial else { throw InferenceError.unsupported(file: c.file, reason: "partial_rotary_factor \(fraction) is not implemented for this architecture (1 is)") }
            let d = Double(headDim) * fraction
            guard fraction > 0, fraction < 1, d == d.rounded(), Int(d) % 2 == 0 else {
                throw c.bad("partial_rotary_factor", "\(fraction) × head_dim \(headDim) must be a positive even number of dimensions")
            }
            dims = Int(d)
        }
        return try RoPE(dims: dims, theta: theta, scaling: scaling, maxPositions: maxPositions, interleaved: interleaved)
    }

    /// The same rotation with each frequency divided by a factor (GGUF's `rope_freqs.weight`,
    /// which llama.cpp divides the angle of pair i by: its llama3 scaling as stored).
    func dividingFrequencies(by factors: [Float]) -> RoPE {
        var r = self
        r.invFreq = zip(invFreq, factors).map { $0 / Double($1) }
        return r
    }

    /// Rotates `count` positions starting at `start`: rows of `x` hold `heads` heads of
    /// `stride` values each (row stride `rowStride`), the rotary part at `offset` in each head.
    func apply(_ x: UnsafeMutablePointer<Float>, positions start: Int, count: Int, rowStride: Int, heads: Int, headStride: Int, offset: Int = 0) {
        let half = dims / 2
        var cosv = [Float](repeating: 0, count: half), sinv = cosv
        for t in 0..<count {
            let pos = Double(start + t)
            for i in 0..<half {
                let a = Float(pos) * Float(invFreq[i])
                cosv[i] = Float(Double(cos(a)) * attentionFactor)
                sinv[i] = Float(Double(sin(a)) * attentionFactor)
            }
            for h in 0..<heads {
                let v = x + t * rowStride + h * headStride + offset
                if interleaved {
                    for i in 0..<half {
                        let a = v[2 * i], b = v[2 * i + 1]
                        v[2 * i] = a * cosv[i] - b * sinv[i]
                        v[2 * i + 1] = a * sinv[i] + b * cosv[i]
                    }
                } else {
                    for i in 0..<half {
                        let a = v[i], b = v[i + half]
                        v[i] = a * cosv[i] - b * sinv[i]
                        v[i + half] = a * sinv[i] + b * cosv[i]
                    }
                }
            }
        }
    }
}
