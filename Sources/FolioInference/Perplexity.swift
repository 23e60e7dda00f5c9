import Foundation

/// The likelihood a model gives a token sequence, as the Hugging Face perplexity recipe
/// computes it with a sliding window: windows of `window` tokens starting every `stride`
/// tokens; each window scores only the tokens the previous ones did not (its first
/// `window - stride` tokens are context), every token but the very first is scored once,
/// from the logits of the position before it.
public struct PerplexityResult: Sendable {
    public var tokens: Int
    /// Tokens scored (tokens - 1 when windows overlap; each window's first token is context only otherwise).
    public var scored: Int
    /// Sum of -log p over the scored tokens, in nats.
    public var totalNLL: Double
    public var window: Int
    public var stride: Int
    public var meanNLL: Double { scored > 0 ? totalNLL / Double(scored) : 0 }
    public var perplexity: Double { exp(meanNLL) }
    /// Bits per byte of a text of `bytes` UTF-8 bytes: the total in bits over the bytes.
    public func bitsPerByte(_ bytes: Int) -> Double { bytes > 0 ? totalNLL / log(2) / Double(bytes) : 0 }
}

extension TextGenerator {
    /// Scores `ids` with windows of `window` tokens every `stride` tokens (stride <= window).
    public func perplexity(_ ids: [Int32], window: Int, stride: Int) throws -> PerplexityResult {
        guard ids.count >= 2 else { throw InferenceError.badInput("perplexity needs at least 2 tokens, got \(ids.count)") }
        guard window >= 2, stride >= 1, stride <= window else {
            throw InferenceError.badInput("the window (\(window)) must be at least 2 and the stride (\(stride)) in 1...window")
        }
        guard window <= positionLimit else {
            throw InferenceError.badInput("a window of \(window) tokens is past what \(path) allows (\(positionLimit) positions)")
        }
        for t in ids where t < 0 || Int(t) >= vocabSize {
            throw InferenceError.badInput("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
        }
        var result = PerplexityResult(tokens: ids.count, scored: 0, totalNLL: 0, window: window, stride: stride)
        var scoredUpTo = 1  // positions before this are scored (position 0 never is)
        var begin = 0
        while scoredUpTo < ids.count {
            let end = min(ids.count, begin + window)
            let logits = try logits(Array(ids[begin..<end]))
            for p in max(scoredUpTo, begin + 1)..<end {
                let row = (p - 1 - begin) * vocabSize
                let target = Int(ids[p])
                var m = -Float.infinity
                for j in 0..<vocabSize { m = max(m, logits[row + j]) }
                var sum = 0.0
                for j in 0..<vocabSize { sum += Double(expf(logits[row + j] - m)) }
                result.totalNLL += log(sum) + Double(m) - Double(logits[row + target])
                result.scored += 1
            }
            scoredUpTo = end
            begin += stride
        }
        return result
    }
}
