import Foundation

/// Picks the next token from logits: greedy at temperature 0, otherwise a draw from
/// softmax(logits / T), restricted to the smallest set of most likely tokens whose
/// probabilities reach `topP` (nucleus sampling) when 0 < topP < 1. Draws come from a
/// seeded generator, so a seed gives the same tokens on every run.
struct Sampler {
    let temperature: Float
    let topP: Float
    var rng: SplitMix64

    init(temperature: Float, topP: Float, seed: UInt64) {
        self.temperature = temperature
        self.topP = topP
        rng = SplitMix64(seed: seed)
    }

    mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if temperature <= 0 { return Int32(Self.argmax(logits)) }
        let inv = 1 / temperature
        var m = -Float.infinity
        for x in logits where !x.isNaN { m = max(m, x * inv) }
        var probs = [Float](repeating: 0, count: logits.count)
        var total: Double = 0
        for i in 0..<logits.count {
            let x = logits[i]
            let p = x.isNaN ? 0 : expf(x * inv - m)
            probs[i] = p
            total += Double(p)
        }
        var candidates = Array(0..<logits.count)
        if topP > 0 && topP < 1 {
            candidates.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            var kept = 0
            var mass: Double = 0
            let goal = Double(topP) * total
            while kept < candidates.count {
                mass += Double(probs[candidates[kept]])
                kept += 1
                if mass >= goal { break }
            }
            candidates.removeSubrange(kept...)
            total = mass
        }
        let u = rng.nextUnit() * total
        var acc: Double = 0
        for c in candidates {
            acc += Double(probs[c])
            if u < acc { return Int32(c) }
        }
        return Int32(candidates.last(where: { probs[$0] > 0 }) ?? Self.argmax(logits))
    }

    /// Index of the largest logit (the first one on ties; NaN never wins).
    static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var value = -Float.infinity
        for i in 0..<x.count where x[i] > value { value = x[i]; best = i }
        return best
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small seeded generator with good statistics.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 bits.
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
