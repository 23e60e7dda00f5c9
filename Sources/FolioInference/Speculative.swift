/// Where speculative decoding gets the tokens it proposes.
public enum Drafter: @unchecked Sendable {
    // @unchecked: a TextGenerator is immutable after init.
    /// A smaller model with the same vocabulary proposes `tokens` tokens, greedily or by its
    /// own draws (the conventional twin of the n-gram model, as the LongCat paper pairs them).
    case model(TextGenerator, tokens: Int)
    /// Prompt lookup: the tokens that followed the latest earlier occurrence of the last
    /// three (else two, else one) tokens of the context, up to `tokens` of them.
    case lookup(tokens: Int)
}

/// Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): each step proposes K
/// tokens after the last one, runs the model once over the last token and the K proposals,
/// and keeps the proposals as long as they are what the model itself would have produced,
/// plus the model's own next token. Greedy: a proposal is kept when it is the argmax, so the
/// tokens are exactly those of plain greedy decoding. Sampling: a proposal d drawn from the
/// draft distribution q is kept with probability min(1, p(d)/q(d)) under the model's
/// distribution p (after temperature, top-k, top-p and min-p), and on rejection the token is
/// drawn from max(0, p - q) normalised, so every token has the model's distribution (prompt
/// lookup's q is a point mass on its proposal).
struct SpeculativeDecoding {
    let target: TextGenerator
    let drafter: Drafter
    let draftSession: (any ModelSession)?
    var draftSampler: Sampler?
    /// Tokens of the sequence the draft has been fed.
    var draftFed = 0

    init(target: TextGenerator, drafter: Drafter, options o: GenerationOptions, prompt: [Int32]) throws {
        self.target = target
        self.drafter = drafter
        guard o.repetitionPenalty == 1 else {
            throw InferenceError.badInput("speculative decoding (--draft, --lookup) with a repetition penalty is not implemented")
        }
        switch drafter {
        case let .model(draft, k):
            guard k >= 1 else { throw InferenceError.badInput("draft tokens must be at least 1") }
            guard draft.vocabSize == target.vocabSize else {
                throw InferenceError.badInput("the draft model \(draft.path) has \(draft.vocabSize) tokens, the model \(target.vocabSize): they must share one vocabulary")
            }
            guard prompt.count + o.maxTokens <= draft.positionLimit else {
                throw InferenceError.badInput("the draft model \(draft.path) allows \(draft.positionLimit) positions; the prompt and new tokens need \(prompt.count + o.maxTokens)")
            }
            draftSession = draft.model.startSession()
            draftSampler = Sampler(temperature: o.temperature, topP: o.topP, seed: o.seed ^ 0x5EED_D4AF_7000_0001, topK: o.topK, minP: o.minP)
        case let .lookup(k):
            guard k >= 1 else { throw InferenceError.badInput("lookup tokens must be at least 1") }
            draftSession = nil
            draftSampler = nil
        }
    }

    /// One step: `sequence` is every token so far, its last one not yet fed to `session`.
    /// Returns the accepted proposals and the model's next token.
    mutating func step(session: any ModelSession, sequence: [Int32], sampler: inout Sampler, remaining: Int,
                       result: inout GenerationResult) throws -> [Int32] {
        let vocab = target.vocabSize
        let pending = sequence.last!
        let room = target.positionLimit - (sequence.count + 1)
        // A pass over the last token and the proposals stays within the rows that go through
        // the matrix-vector kernels, as a single token does: the same arithmetic, so greedy
        // verification picks exactly the tokens plain decoding picks.
        let perPass = Math.vectorRows - 1
        // Proposals, and for sampling the draft's distribution of each.
        var proposals: [Int32] = []
        var draftDistributions: [[Int: Double]] = []
        switch drafter {
        case let .model(_, k):
            let count = min(k, remaining - 1, room, perPass)
            if count > 0, let draft = draftSession {
                // The draft catches up in prefill-sized chunks (attention scores are [chunk, positions]).
                while draftFed < sequence.count - 1 {
                    let upto = min(sequence.count - 1, draftFed + TextGenerator.prefillChunk)
                    _ = try draft.forward(Array(sequence[draftFed..<upto]), allLogits: false)
                    draftFed = upto
                }
                var input = pending
                for _ in 0..<count {
                    let logits = try draft.forward([input], allLogits: false)
                    let next: Int32
                    if sampler.temperature <= 0 {
                        next = logits.withUnsafeBufferPointer { Int32(Sampler.argmax($0)) }
                    } else {
                        let q = logits.withUnsafeBufferPointer { Self.probabilities(draftSampler!.distribution($0)) }
                        next = Self.draw(q, &draftSampler!.rng)
                        draftDistributions.append(q)
                    }
                    proposals.append(next)
                    input = next
                }
                draftFed = sequence.count + count - 1
            }
        case let .lookup(k):
            proposals = Self.lookup(sequence, count: min(k, remaining - 1, room, perPass))
            draftDistributions = proposals.map { [Int($0): 1] }
        }
        let rows = try session.forward([pending] + proposals, allLogits: true)
        result.verifyPasses += 1
        result.draftProposed += proposals.count
        var accepted = 0
        var next: Int32 = 0
        var decided = false
        rows.withUnsafeBufferPointer { all in
            func row(_ i: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: all[(i * vocab)..<((i + 1) * vocab)]) }
            for (i, d) in proposals.enumerated() {
                if sampler.temperature <= 0 {
                    let best = Int32(Sampler.argmax(row(i)))
                    if best == d { accepted += 1; continue }
                    next = best
                } else {
                    let p = Self.probabilities(sampler.distribution(row(i)))
                    if let token = Self.verify(d, p: p, q: draftDistributions[i], &sampler.rng) {
                        next = token
                    } else {
                        accepted += 1
                        continue
                    }
                }
                decided = true
                break
            }
            if !decided { next = sampler.next(row(accepted)) }
        }
        result.draftAccepted += accepted
        let batch = Array(proposals[..<accepted]) + [next]
        // The model keeps the last token and the accepted proposals; the draft what it was fed of them.
        let kept = sequence + batch
        session.rewind(to: sequence.count + accepted, sequence: kept)
        if let draft = draftSession {
            draftFed = min(draftFed, sequence.count + accepted)
            draft.rewind(to: draftFed, sequence: kept)
        }
        return batch
    }

    /// The rejection rule for a proposal `d` drawn from `q`: nil when it is kept (probability
    /// min(1, p(d)/q(d))), else the token drawn instead from max(0, p - q) normalised.
    static func verify(_ d: Int32, p: [Int: Double], q: [Int: Double], _ rng: inout SplitMix64) -> Int32? {
        let ratio = (p[Int(d)] ?? 0) / max(q[Int(d)] ?? 0, 1e-300)
        if rng.nextUnit() < ratio { return nil }
        var residual: [Int: Double] = [:]
        for (id, pv) in p { let r = pv - (q[id] ?? 0); if r > 0 { residual[id] = r } }
        return residual.isEmpty ? draw(p, &rng) : draw(residual, &rng)
    }

    /// Normalised probabilities of a sampler's candidate set.
    static func probabilities(_ d: (ids: [Int], weights: [Double])) -> [Int: Double] {
        let total = d.weights.reduce(0, +)
        var out: [Int: Double] = [:]
        guard total > 0 else { return out }
        for (i, w) in zip(d.ids, d.weights) { out[i] = w / total }
        return out
    }

    /// A draw from a distribution (ids in increasing order, so a seed fixes the result).
    static func draw(_ p: [Int: Double], _ rng: inout SplitMix64) -> Int32 {
        let ids = p.keys.sorted()
        let total = ids.reduce(0) { $0 + p[$1]! }
        let u = rng.nextUnit() * total
        var acc = 0.0
        for id in ids {
            acc += p[id]!
            if u < acc { return Int32(id) }
        }
        return Int32(ids.last ?? 0)
    }

    /// Prompt lookup: the tokens after the latest earlier occurrence of the context's last
    /// n tokens (n = 4, 3, 2, the longest that occurs), at most `count` (2 after a match of
    /// two tokens). A match of one token
    /// is not used: on the trained n-gram model's held-out code its proposals were accepted
    /// so rarely that the passes cost more than they saved (Tools/bench/speculative_bench.py:
    /// acceptance 0.71 with them, 0.83-0.89 without).
    static func lookup(_ s: [Int32], count: Int) -> [Int32] {
        guard count > 0 else { return [] }
        for n in stride(from: 4, through: 2, by: -1) where s.count > n {
            // A two-token match is a weaker guess: it proposes at most two tokens.
            let count = n == 2 ? min(count, 2) : count
            let suffix = s[(s.count - n)...]
            var start = s.count - n - 1
            while start >= 0 {
                if s[start..<(start + n)].elementsEqual(suffix) {
                    let from = start + n
                    let upto = min(s.count, from + count)
                    if from < upto { return Array(s[from..<upto]) }
                }
                start -= 1
            }
        }
        return []
    }
}
