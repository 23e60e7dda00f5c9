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
    /// Split the output into shards of at most this many bytes.
    public var maxShardSize: Int?

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

/// Recognizes embedding tables by role: token embeddings of the usual architectures, BERT's
/// word, position and token-type embeddings, an lm_head tied to the token embeddings, and the
/// n-gram embedding tables of LongCat-Flash-Lite (`model.ngram_embeddings.embedders.N`).
public enum EmbeddingTables {
    static let suffixes = [
        "embed_tokens.weight", "word_embeddings.weight", "tok_embeddings.weight", "wte.weight", "wpe.weight",
        "token_embd.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "embeddings.weight", "embedding.weight", "embed.weight",
    ]

    /// Whether a tensor's name and shape mark it as an embedding table.
    public static func isEmbedding(_ name: String, shape: [Int]) -> Bool {
        guard shape.count == 2 else { return false }
        let n = name.lowercased()
        if n.contains("norm") { return false }
        if suffixes.contains(where: { n.hasSuffix($0) }) { return true }
        // The n-gram tables, not their post projections (linear layers beside them).
        if n.contains("ngram_embeddings.embedders.") && n.hasSuffix(".weight") { return true }
        return false
    }

    /// Names of every embedding table of a checkpoint, including an lm_head that config.json
    /// declares tied to the token embeddings (`tie_word_embeddings`).
    public static func tables(in c: Checkpoint) -> Set<String> {
        var names = Set(c.tensors.filter { isEmbedding($0.name, shape: $0.shape) }.map(\.name))
        if let config = c.files.first(where: { $0.name == "config.json" }),
           let json = try? JSONParser.parse(config.bytes), json["tie_word_embeddings"]?.boolValue == true {
            for t in c.tensors where t.shape.count == 2 && (t.name == "lm_head.weight" || t.name.hasSuffix(".lm_head.weight")) {
                names.insert(t.name)
            }
        }
        return names
    }
}

/// The decision for one tensor.
public struct TensorDecision: Sendable {
    public let source: SourceTensor
    public let target: Encoding
    public let paged: Bool
    /// Why a requested scheme was not applied (for the summary), if it was not.
    public let note: String?
    /// True when bytes can be copied as they are.
    public var isCopy: Bool { target == source.encoding && paged == source.isPaged }
}

/// Decides, tensor by tensor, what a conversion does.
///
/// Rules (`--quantize GLOB=SCHEME`) are tried in order and the first match wins; then
/// `--embeddings` applies to embedding tables. A rule whose pattern names one tensor exactly
/// must be applicable, or the conversion fails. A pattern with wildcards, and `--embeddings`,
/// skip tensors the scheme cannot hold (integer tensors such as position ids; 0-d and 1-d
/// tensors for quantized schemes; rows that are not a multiple of the group size), which
/// are kept as they are and noted in the summary, as llama.cpp does.
public struct ConversionPlanner: Sendable {
    public let options: ConversionOptions
    public let tables: Set<String>

    public init(options: ConversionOptions, checkpoint: Checkpoint) {
        self.options = options
        tables = EmbeddingTables.tables(in: checkpoint)
    }

    public func decide(_ t: SourceTensor) throws -> TensorDecision {
        let keep = TensorDecision(source: t, target: t.encoding, paged: t.isPaged || t.encoding.isQuantized, note: nil)
        let isTable = tables.contains(t.name)
        var requested: (Encoding, exact: Bool, source: String)? = nil
        for (g, e) in options.rules where g.matches(t.name) {
            requested = (e, !g.hasWildcards, "--quantize \(g.pattern)=\(e.name)")
            break
        }
        if requested == nil, isTable, let e = options.embeddings { requested = (e, false, "--embeddings \(e.name)") }
        guard let (target, exact, origin) = requested else { return keep }
        if let problem = problem(t, target) {
            if exact { throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "\(problem) (\(origin))") }
            return TensorDecision(source: t, target: t.encoding, paged: keep.paged, note: "kept as \(t.encoding.name): \(problem)")
        }
        let paged = target.isQuantized || (isTable && options.embeddings != nil) || (t.isPaged && target == t.encoding)
        return TensorDecision(source: t, target: target, paged: paged, note: nil)
    }

    /// Why `target` cannot hold tensor `t`, or nil.
    func problem(_ t: SourceTensor, _ target: Encoding) -> String? {
        if target == t.encoding { return nil }
        guard t.encoding.isQuantized || (t.encoding.plainDType?.isFloatingPoint ?? false) else {
            return "is \(t.encoding.name); only floating-point tensors can be cast or quantized to \(target.name)"
        }
        if target.isQuantized {
            if t.shape.count < 2 { return "is \(t.shape.count)-d; \(target.name) quantizes rows of matrices" }
            if let p = target.rowProblem(width: t.rowWidth) { return "cannot be quantized to \(target.name): \(p)" }
        }
        return nil
    }
}
