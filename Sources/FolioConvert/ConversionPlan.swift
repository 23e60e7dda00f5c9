import Folio

/// What the user asked of a conversion.
public struct ConversionOptions: Sendable {
    /// Scheme for every tensor recognized as an embedding table; nil keeps them as they are.
    public var embeddings: Encoding?
    /// Explicit schemes by name pattern; the first match wins, and wins over `embeddings`.
    public var rules: [(Glob, Encoding)]
    public var pageSize: Int
    /// For safetensors output: keep quantized tensors' records instead of dequantizing.
    public var keepQuantized: Bool

    public init(embeddings: Encoding? = nil, rules: [(Glob, Encoding)] = [], pageSize: Int = FolioFormat.defaultPageSize, keepQuantized: Bool = false) {
        self.embeddings = embeddings
        self.rules = rules
        self.pageSize = pageSize
        self.keepQuantized = keepQuantized
    }

    /// Parses `GLOB=SCHEME`.
    public static func parseRule(_ text: String) throws -> (Glob, Encoding) {
        guard let eq = text.lastIndex(of: "=") else {
            throw ConvertError.badOption("--quantize '\(text)': expected GLOB=SCHEME")
        }
        let glob = String(text[..<eq]), scheme = String(text[text.index(after: eq)...])
        guard !glob.isEmpty else { throw ConvertError.badOption("--quantize '\(text)': empty pattern") }
        return (Glob(glob), try parseScheme(scheme, option: "--quantize"))
    }

    public static func parseScheme(_ name: String, option: String) throws -> Encoding {
        guard let e = Encoding(name: name), name == name.lowercased() || e.plainDType != nil else {
            throw ConvertError.badOption("\(option): unknown scheme '\(name)' (expected f32, f16, bf16, int8, int8/gN, int4, int4/gN or affine8/gN with N in 32, 64, 128, 256)")
        }
        return e
    }
}

/// Recognizes embedding tables by name: token embeddings of the usual architectures and the
/// n-gram embedding tables of LongCat-Flash-Lite.
public enum EmbeddingTables {
    static let suffixes = [
        "embed_tokens.weight", "word_embeddings.weight", "tok_embeddings.weight", "wte.weight",
        "token_embd.weight", "embeddings.weight", "embedding.weight", "embed.weight",
    ]

    public static func isEmbedding(_ name: String, shape: [Int]) -> Bool {
        guard shape.count == 2 else { return false }
        let n = name.lowercased()
        if n.contains("norm") { return false }
        if suffixes.contains(where: { n.hasSuffix($0) }) { return true }
        // LongCat n-gram tables and other "...ngram..." embedding stacks.
        if n.contains("ngram") && n.contains("emb") { return true }
        return false
    }
}

/// The decision for one tensor.
public struct TensorDecision: Sendable {
    public let source: SourceTensor
    public let target: Encoding
    public let paged: Bool
    /// True when bytes can be copied as they are.
    public var isCopy: Bool { target == source.encoding && paged == source.isPaged }
}

extension ConversionOptions {
    /// Decides the encoding and layout of every tensor for a Folio destination.
    public func decide(_ t: SourceTensor) throws -> TensorDecision {
        var target: Encoding? = nil
        var paged = t.isPaged || t.encoding.isQuantized
        for (g, e) in rules where g.matches(t.name) { target = e; break }
        let isTable = EmbeddingTables.isEmbedding(t.name, shape: t.shape)
        if target == nil, isTable, let e = embeddings { target = e }
        guard let target else { return TensorDecision(source: t, target: t.encoding, paged: paged) }
        if target == t.encoding && !isTable { return TensorDecision(source: t, target: target, paged: paged) }
        guard t.encoding.isQuantized || (t.encoding.plainDType?.isFloatingPoint ?? false) else {
            throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "is \(t.encoding.name); only floating-point tensors can be cast or quantized to \(target.name)")
        }
        if target.isQuantized {
            guard !t.shape.isEmpty else {
                throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "is 0-d; \(target.name) quantizes rows")
            }
            if let p = target.rowProblem(width: t.rowWidth) {
                throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "cannot be quantized to \(target.name): \(p)")
            }
            paged = true
        } else if isTable && !t.shape.isEmpty && embeddings != nil {
            paged = true
        }
        return TensorDecision(source: t, target: target, paged: paged)
    }
}
