import Foundation
import Folio
import FolioTokenizers

/// Sentence embeddings as sentence-transformers computes them, from a .folio file (or a
/// sharded model's index) made from a sentence-transformers model folder: the Transformer
/// module (a BERT encoder), the Pooling module of `1_Pooling/config.json` (mean, CLS or max
/// over the real tokens) and, when `modules.json` lists it, the Normalize module (unit L2
/// norm). Texts longer than
/// `max_seq_length` (sentence_bert_config.json) are truncated as sentence-transformers does.
public final class SentenceEmbedder: @unchecked Sendable {
    // @unchecked: immutable after init.
    public enum Pooling: String, Sendable { case mean, cls, max }

    public let path: String
    public let pooling: Pooling
    public let normalize: Bool
    public let maxSeqLength: Int
    public let dimension: Int
    let tokenizer: WordPieceTokenizer
    let model: BertModel
    let source: ModelSource

    /// Opens a .folio sentence-transformers model and checks that every weight is understood.
    public convenience init(path: String) throws {
        try self.init(source: try FolioFile(path: path))
    }

    /// The same from any source of tensors and carried files: one .folio file, or a sharded
    /// model's index.
    public init(source file: ModelSource) throws {
        let path = file.path
        self.path = path
        self.source = file
        try Math.requireBLAS(for: path)
        let json = { (name: String) throws -> JSONValue? in
            guard let bytes = file.fileBytes(named: name) else { return nil }
            do { return try JSONParser.parse(bytes) } catch {
                throw InferenceError.badConfig(file: path, field: name, reason: "not valid JSON: \(error)")
            }
        }
        guard let configBytes = file.fileBytes(named: "config.json") else {
            throw InferenceError.unsupported(file: path, reason: "no config.json inside: convert the model's Hugging Face folder, not a lone weights file")
        }
        let config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: Data(configBytes)) } catch {
            let type = (try? JSONParser.parse(configBytes))?["model_type"]?.stringValue ?? "unknown"
            if !BertConfig.supportedTypes.contains(type) {
                throw InferenceError.unsupported(file: path, reason: "model_type '\(type)' is not a supported encoder (supported: bert)")
            }
            throw InferenceError.badConfig(file: path, field: "config.json", reason: Self.describe(error))
        }
        guard BertConfig.supportedTypes.contains(config.modelType) else {
            throw InferenceError.unsupported(file: path, reason: "model_type '\(config.modelType)' is not a supported encoder (supported: bert)")
        }
        guard let tok = file.fileBytes(named: "tokenizer.json") else {
            throw InferenceError.unsupported(file: path, reason: "no tokenizer.json inside")
        }
        tokenizer = try WordPieceTokenizer(json: tok, file: path + ":tokenizer.json")

        // Modules: Transformer, then Pooling and Normalize as listed.
        var poolingDir = "1_Pooling"
        var normalize = false
        if let modules = try json("modules.json")?.arrayValue {
            for m in modules {
                let type = m["type"]?.stringValue ?? ""
                if type.hasSuffix("Pooling") { poolingDir = m["path"]?.stringValue ?? poolingDir }
                else if type.hasSuffix("Normalize") { normalize = true }
                else if !type.hasSuffix("Transformer") {
                    throw InferenceError.unsupported(file: path, reason: "sentence-transformers module '\(type)' is not supported (Transformer, Pooling, Normalize are)")
                }
            }
        }
        self.normalize = normalize
        var pooling = Pooling.mean
        if let p = try json(poolingDir + "/config.json") {
            let modes = [("pooling_mode_cls_token", Pooling.cls), ("pooling_mode_mean_tokens", .mean), ("pooling_mode_max_tokens", .max)]
            let on = modes.filter { p[$0.0]?.boolValue == true }
            if p["pooling_mode_mean_sqrt_len_tokens"]?.boolValue == true || on.count != 1 {
                throw InferenceError.unsupported(file: path, reason: "\(poolingDir)/config.json: exactly one of CLS, mean or max pooling is supported")
            }
            pooling = on[0].1
        }
        self.pooling = pooling
        let st = try json("sentence_bert_config.json")
        maxSeqLength = min(st?["max_seq_length"]?.intValue ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
        guard maxSeqLength >= 2 else { throw InferenceError.badConfig(file: path, field: "max_seq_length", reason: "must be at least 2") }
        dimension = config.hiddenSize

        // Hugging Face BertModel names, with or without a "bert." prefix.
        let prefix = file.parts(of: "bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
        let weights = WeightStore(source: file, prefix: prefix)
        model = try BertModel(config: config, weights: weights)
        let unused = weights.unused { name in
            let n = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
            return n.hasPrefix("pooler.") || n == "embeddings.position_ids" || n.hasPrefix("cls.")
        }
        if let first = unused.first {
            throw InferenceError.unsupported(file: path, reason: "tensor '\(first)' is not part of a BERT encoder (\(unused.count) such tensors)")
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): return "missing field '\(key.stringValue)'"
        case let DecodingError.typeMismatch(_, c): return "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.valueNotFound(_, c): return "null at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: return "\(error)"
        }
    }

    /// Token ids of a text as the model sees them.
    public func tokenize(_ text: String) -> [Int32] { tokenizer.encode(text, maxLength: maxSeqLength) }

    /// Embeddings of `texts`, in order. Texts are sorted by length and run in padded batches
    /// of `batchSize`, as sentence-transformers does.
    public func embed(_ texts: [String], batchSize: Int = 32) throws -> [[Float]] {
        let tokens = texts.map(tokenize)
        let order = tokens.indices.sorted { tokens[$0].count > tokens[$1].count }
        var out = [[Float]](repeating: [], count: texts.count)
        let h = dimension
        var start = 0
        while start < order.count {
            let idx = Array(order[start..<min(order.count, start + max(1, batchSize))])
            let lengths = idx.map { tokens[$0].count }
            let L = lengths.max() ?? 1
            var ids = [Int32](repeating: tokenizer.padID, count: idx.count * L)
            for (b, i) in idx.enumerated() { for (p, t) in tokens[i].enumerated() { ids[b * L + p] = t } }
            let hidden = try model.forward(ids: ids, batch: idx.count, length: L, lengths: lengths)
            for (b, i) in idx.enumerated() {
                var v = [Float](repeating: 0, count: h)
                let n = lengths[b]
                switch pooling {
                case .cls:
                    for j in 0..<h { v[j] = hidden[b * L * h + j] }
                case .mean:
                    for p in 0..<n { for j in 0..<h { v[j] += hidden[(b * L + p) * h + j] } }
                    for j in 0..<h { v[j] /= Float(n) }
                case .max:
                    for j in 0..<h { v[j] = -.infinity }
                    for p in 0..<n { for j in 0..<h { v[j] = Swift.max(v[j], hidden[(b * L + p) * h + j]) } }
                }
                if normalize {
                    var s: Float = 0
                    for x in v { s += x * x }
                    let inv = 1 / Swift.max(s.squareRoot(), 1e-12)
                    for j in 0..<h { v[j] *= inv }
                }
                out[i] = v
            }
            start += idx.count
        }
        return out
    }
}
