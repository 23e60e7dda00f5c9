import Foundation
import Folio
import FolioTokenizers

/// Sentence embeddings as sentence-transformers computes them, from a .folio file (or a
/// sharded model's index) made from a sentence-transformers model folder: the Transformer
/// module (an encoder of `Registry.encoders`, by config.json's `model_type`), the Pooling
/// module of `1_Pooling/config.json` in either style (the `pooling_mode_*` booleans of
/// sentence-transformers 2-5 or 6.x's `pooling_mode`, a mode or a list of modes whose outputs
/// are concatenated) and, when `modules.json` lists it, the Normalize module (unit L2 norm).
/// Texts longer than `max_seq_length` (sentence_bert_config.json, else tokenizer_config.json's
/// `model_max_length`, else the model's positions) are truncated as sentence-transformers does.
public final class SentenceEmbedder: @unchecked Sendable {
    // @unchecked: immutable after init.
    public enum Pooling: String, Sendable, CaseIterable {
        case cls, max, mean, meanSqrtLen = "mean_sqrt_len_tokens", weightedMean = "weightedmean", lastToken = "lasttoken"
    }

    public let path: String
    public let modelType: String
    /// The pooling modes, in the order their outputs are concatenated.
    public let poolings: [Pooling]
    public var pooling: Pooling { poolings[0] }
    public let normalize: Bool
    public let lowercase: Bool
    public let maxSeqLength: Int
    /// Width of one embedding (hidden size × pooling modes).
    public let dimension: Int
    public let tokenizer: any TextTokenizer
    let model: any Encoder
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
        try file.fetchFiles()
        let json = { (name: String) throws -> JSONValue? in
            guard let bytes = file.fileBytes(named: name) else { return nil }
            do { return try JSONParser.parse(bytes) } catch {
                throw InferenceError.badConfig(file: path, field: name, reason: "not valid JSON: \(error)")
            }
        }
        guard let configBytes = file.fileBytes(named: "config.json") else {
            throw InferenceError.unsupported(file: path, reason: "no config.json inside: convert the model's Hugging Face folder, not a lone weights file")
        }
        let config = try ModelConfig(file: path + ":config.json", bytes: configBytes)
        modelType = try config.string("model_type")
        guard let architecture = Registry.encoder(modelType) else {
            throw InferenceError.unsupported(file: path, reason: "model_type '\(modelType)' is not a supported encoder (supported: \(Registry.encoderNames.joined(separator: ", ")))")
        }
        guard let tok = file.fileBytes(named: "tokenizer.json") else {
            throw InferenceError.unsupported(file: path, reason: "no tokenizer.json inside")
        }
        tokenizer = try Tokenizers.load(json: tok, file: path + ":tokenizer.json")

        // Modules: Transformer, then Pooling and Normalize as listed.
        var poolingDir = "1_Pooling"
        var normalize = false
        if let modules = try json("modules.json")?.arrayValue {
            for m in modules {
                let type = m["type"]?.stringValue ?? ""
                let name = type.split(separator: ".").last.map(String.init) ?? type
                switch name {
                case "Pooling": poolingDir = m["path"]?.stringValue ?? poolingDir
                case "Normalize": normalize = true
                case "Transformer": continue
                default:
                    throw InferenceError.unsupported(file: path, reason: "modules.json: sentence-transformers module '\(type)' is not supported (Transformer, Pooling, Normalize are)")
                }
            }
        }
        self.normalize = normalize

        // The encoder, with the names a task model's prefix may carry.
        let prefix = architecture.prefixes.first { p in file.tensorNames.contains { $0.hasPrefix(p) } } ?? ""
        let weights = WeightStore(source: file, prefix: prefix)
        model = try architecture.build(config, weights)
        try config.refuseUnread(modelType: modelType)
        let unused = weights.unused { name in architecture.ignores(name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name) }
        if let first = unused.first {
            throw InferenceError.unsupported(file: path, reason: "tensor '\(first)' is not part of a \(modelType) encoder (\(unused.count) such tensors)")
        }
        let hidden = model.hidden

        var poolings = [Pooling.mean]
        if let p = try json(poolingDir + "/config.json") {
            poolings = try Self.poolingModes(p, file: path, field: poolingDir + "/config.json", hidden: hidden)
        }
        self.poolings = poolings
        dimension = hidden * poolings.count

        let st = try json("sentence_bert_config.json")
        lowercase = st?["do_lower_case"]?.boolValue ?? false
        var limit = model.positionLimit
        if let m = st?["max_seq_length"], m != .null {
            guard let v = m.intValue, v >= 1 else { throw InferenceError.badConfig(file: path, field: "sentence_bert_config.json: max_seq_length", reason: "must be a positive integer") }
            limit = min(limit, v)
        } else if let m = try json("tokenizer_config.json")?["model_max_length"]?.intValue, m >= 1 {
            limit = min(limit, m)
        }
        maxSeqLength = limit
        guard maxSeqLength > tokenizer.specialTokensAdded else {
            throw InferenceError.badConfig(file: path, field: "max_seq_length", reason: "\(maxSeqLength) leaves no room beside the \(tokenizer.specialTokensAdded) special tokens")
        }
    }

    /// The modes of a Pooling config: 6.x's `pooling_mode` (a name or a list), else the
    /// `pooling_mode_*` booleans (in sentence-transformers' concatenation order). The width
    /// it declares must be the encoder's.
    static func poolingModes(_ p: JSONValue, file: String, field: String, hidden: Int) throws -> [Pooling] {
        func bad(_ reason: String) -> InferenceError { .badConfig(file: file, field: field, reason: reason) }
        let width = p["embedding_dimension"] ?? p["word_embedding_dimension"]
        if let width, width != .null, width.intValue != hidden {
            throw bad("declares embedding dimension \(width.serialized()), but the encoder's hidden size is \(hidden)")
        }
        var modes: [Pooling] = []
        if let m = p["pooling_mode"], m != .null {
            let names = m.arrayValue ?? [m]
            for n in names {
                guard let s = n.stringValue, let mode = Pooling(rawValue: s) else {
                    throw bad("pooling_mode \(n.serialized()) is not one of \(Pooling.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                modes.append(mode)
            }
        } else {
            let legacy: [(String, Pooling)] = [("pooling_mode_cls_token", .cls), ("pooling_mode_max_tokens", .max), ("pooling_mode_mean_tokens", .mean),
                                               ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLen), ("pooling_mode_weightedmean_tokens", .weightedMean),
                                               ("pooling_mode_lasttoken", .lastToken)]
            modes = legacy.filter { p[$0.0]?.boolValue == true }.map(\.1)
            // sentence-transformers' default when no mode is set.
            if modes.isEmpty { modes = [.mean] }
        }
        guard !modes.isEmpty else { throw bad("pooling_mode is an empty list") }
        return modes
    }

    /// Token ids of a text as the model sees them: the tokenizer's ids truncated to leave
    /// room for the template's special tokens within max_seq_length.
    public func tokenize(_ text: String) -> [Int32] {
        var ids = tokenizer.encode(lowercase ? text.lowercased() : text, addSpecialTokens: false)
        let room = maxSeqLength - tokenizer.specialTokensAdded
        if ids.count > room { ids.removeLast(ids.count - room) }
        return tokenizer.withSpecialTokens(ids)
    }

    /// Embeddings of `texts`, in order. Texts are sorted by length and run in padded batches
    /// of `batchSize`, as sentence-transformers does.
    public func embed(_ texts: [String], batchSize: Int = 32) throws -> [[Float]] {
        let tokens = texts.map(tokenize)
        let order = tokens.indices.sorted { tokens[$0].count > tokens[$1].count }
        var out = [[Float]](repeating: [], count: texts.count)
        let h = model.hidden
        var start = 0
        while start < order.count {
            let idx = Array(order[start..<min(order.count, start + max(1, batchSize))])
            let lengths = idx.map { tokens[$0].count }
            let L = max(1, lengths.max() ?? 1)
            var ids = [Int32](repeating: 0, count: idx.count * L)
            for (b, i) in idx.enumerated() { for (p, t) in tokens[i].enumerated() { ids[b * L + p] = t } }
            let hidden = try model.forward(ids: ids, batch: idx.count, length: L, lengths: lengths)
            for (b, i) in idx.enumerated() {
                let n = lengths[b]
                func row(_ p: Int) -> ArraySlice<Float> { hidden[((b * L + p) * h)..<((b * L + p + 1) * h)] }
                var v: [Float] = []
                for mode in poolings {
                    var part = [Float](repeating: 0, count: h)
                    switch mode {
                    case .cls: part = Array(row(0))
                    case .lastToken: part = Array(row(max(0, n - 1)))
                    case .max:
                        part = [Float](repeating: -.infinity, count: h)
                        for p in 0..<n { for (j, x) in row(p).enumerated() { part[j] = Swift.max(part[j], x) } }
                    case .mean, .meanSqrtLen:
                        for p in 0..<n { for (j, x) in row(p).enumerated() { part[j] += x } }
                        let d = mode == .mean ? Float(Swift.max(n, 1)) : Float(Swift.max(n, 1)).squareRoot()
                        for j in 0..<h { part[j] /= d }
                    case .weightedMean:
                        var total: Float = 0
                        for p in 0..<n {
                            let wgt = Float(p + 1)
                            total += wgt
                            for (j, x) in row(p).enumerated() { part[j] += wgt * x }
                        }
                        for j in 0..<h { part[j] /= Swift.max(total, 1e-9) }
                    }
                    v += part
                }
                if normalize {
                    var s: Float = 0
                    for x in v { s += x * x }
                    let inv = 1 / Swift.max(s.squareRoot(), 1e-12)
                    for j in 0..<v.count { v[j] *= inv }
                }
                out[i] = v
            }
            start += idx.count
        }
        return out
    }
}
