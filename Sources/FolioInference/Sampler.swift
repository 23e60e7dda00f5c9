import Foundation

/// Picks the next token from logits, with the logits processors of Hugging Face
/// transformers' `generate` in its order: the repetition penalty on the raw logits (over every
/// id of the prompt and of the generated text: a positive logit is divided by the penalty, a
/// negative one multiplied), then, when sampling, the temperature, top-k (the k largest
/// logits; ties at the k-th value are kept), top-p (the smallest set of most likely tokens
/// whose probability reaches p) and min-p (tokens less likely than min_p times the most
/// likely one are dropped). Temperature 0 is greedy: the penalized argmax. Draws come from a
/// seeded generator, so a seed gives the same tokens on every run.
struct Sampler {
    let temperature: Float
    let topK: Int
    let topP: Float
    let minP: Float
    let repetitionPenalty: Float
    var rng: SplitMix64
    /// Every id seen so far (prompt and generated), for the repetition penalty.
    private(set) var seen: Set<Int32> = []

    init(temperature: Float, topP: Float, seed: UInt64, topK: Int = 0, minP: Float = 0, repetitionPenalty: Float = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        rng = SplitMix64(seed: seed)
    }

    /// Records ids for the repetition penalty (the prompt, then each generated token).
    mutating func observe<S: Sequence>(_ ids: S) where S.Element == Int32 {
        if repetitionPenalty != 1 { seen.formUnion(ids) }
    }

    /// The penalized logits: the repetition penalty applied to every id seen.
    func penalized(_ raw: UnsafeBufferPointer<Float>) -> [Float] {
        var logits = Array(raw)
        if repetitionPenalty != 1 {
            for id in seen where Int(id) < logits.count {
                let x = logits[Int(id)]
                logits[Int(id)] = x < 0 ? x * repetitionPenalty : x / repetitionPenalty
            }
        }
        return logits
    }

    /// The tokens a draw may pick and their weights (unnormalized probabilities), most likely
    /// first, after temperature, top-k, top-p and min-p. Only for temperature > 0.
    func distribution(_ raw: UnsafeBufferPointer<Float>) -> (ids: [Int], weights: [Double]) {
        var logits = penalized(raw)
        let inv = 1 / temperature
        var candidates = [Int]()
        candidates.reserveCapacity(logits.count)
        for i in 0..<logits.count where !logits[i].isNaN && logits[i] > -.infinity {
            logits[i] *= inv
            candidates.append(i)
        }
        guard !candidates.isEmpty else { return ([], []) }
        // Most likely first; equal logits by id, so the order (and a seeded draw) is stable.
        candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if topK > 0 && topK < candidates.count {
            let threshold = logits[candidates[topK - 1]]
            var kept = topK
            while kept < candidates.count && logits[candidates[kept]] >= threshold { kept += 1 }
            candidates.removeSubrange(kept...)
        }
        let m = logits[candidates[0]]
        var probs = candidates.map { Double(expf(logits[$0] - m)) }
        if topP > 0 && topP < 1 {
            let goal = Double(topP) * probs.reduce(0, +)
            var kept = 0
            var mass: Double = 0
            while kept < candidates.count {
                mass += probs[kept]
                kept += 1
                if mass >= goal { break }
            }
            candidates.removeSubrange(kept...)
            probs.removeSubrange(kept...)
        }
        if minP > 0 {
            // probs[0] is the largest: the floor is relative to it.
            let floor = Double(minP) * probs[0]
            var kept = 1
            while kept < probs.count && probs[kept] >= floor { kept += 1 }
            candidates.removeSubrange(kept...)
            probs.removeSubrange(kept...)
        }
        return (candidates, probs)
    }

    mutating func next(_ raw: UnsafeBufferPointer<Float>) -> Int32 {
        if temperature <= 0 { return penalized(raw).withUnsafeBufferPointer { Int32(Self.argmax($0)) } }
        let (ids, probs) = distribution(raw)
        guard !ids.isEmpty else { return Int32(Self.argmax(raw)) }
        let u = rng.nextUnit() * probs.reduce(0, +)
        var acc: Double = 0
        for (c, p) in zip(ids, probs) {
            acc += p
            if u < acc { return Int32(c) }
        }
        return Int32(ids[0])
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
