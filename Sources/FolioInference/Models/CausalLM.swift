import Folio

/// What a model keeps between the steps of one sequence (a KV cache, and for the n-gram
/// model its token history).
protocol SequenceState: AnyObject {
    /// Positions the state holds.
    var length: Int { get }
}

/// A decoder-only language model that runs a sequence in steps: a prefill of the prompt,
/// then one token at a time, keeping what it needs between steps in its own state type.
protocol CausalLM: AnyObject, Sendable {
    associatedtype State: SequenceState
    var vocabSize: Int { get }
    /// The most positions a sequence may have (max_position_embeddings, or what RoPE scaling allows).
    var positionLimit: Int { get }
    /// A fresh state for one sequence.
    func makeState() -> State
    /// Runs `tokens` after the positions `state` holds and returns logits,
    /// [tokens.count, vocabSize] when `allLogits`, else [vocabSize] for the last token.
    func forward(_ tokens: [Int32], state: State, allLogits: Bool) throws -> [Float]
    /// Takes the state back to its first `length` positions; `sequence` is every token the
    /// state has seen, at least `length` of them (for state kept beside the caches).
    func rewind(_ state: State, to length: Int, sequence: [Int32])
}

/// One sequence being run: a model with its state, for callers that hold any model.
protocol ModelSession: AnyObject {
    var length: Int { get }
    func forward(_ tokens: [Int32], allLogits: Bool) throws -> [Float]
    func rewind(to length: Int, sequence: [Int32])
}

final class Session<Model: CausalLM>: ModelSession {
    let model: Model
    let state: Model.State
    init(_ model: Model) {
        self.model = model
        state = model.makeState()
    }
    var length: Int { state.length }
    func forward(_ tokens: [Int32], allLogits: Bool) throws -> [Float] { try model.forward(tokens, state: state, allLogits: allLogits) }
    func rewind(to length: Int, sequence: [Int32]) { model.rewind(state, to: length, sequence: sequence) }
}

extension CausalLM {
    /// A new sequence on this model.
    func startSession() -> any ModelSession { Session(self) }
}

extension CausalLM {
    /// Final norm, then logits of the wanted rows of `hidden` ([count, width]).
    func logits(hidden: [Float], count: Int, width: Int, allLogits: Bool, norm: Weight, eps: Float, head: Matrix) -> [Float] {
        let first = allLogits ? 0 : count - 1
        let rows = count - first
        var normed = [Float](repeating: 0, count: rows * width)
        hidden.withUnsafeBufferPointer { h in
            Math.rmsNorm(h.baseAddress! + first * width, rows: rows, width: width, weight: norm.values, eps: eps, into: &normed)
        }
        var out = [Float](repeating: 0, count: rows * vocabSize)
        Math.linear(normed, rows: rows, inFeatures: width, matrix: head, bias: nil, into: &out)
        return out
    }
}
