import Folio

/// What the user asked of a conversion.
public struct ConversionOptions: Sendable {
    /// Scheme for every tensor recognized as an embedding table; nil keeps them as they are.
    public var embeddings: Encoding?
    /// Explicit schemes by name pattern; the first match wins, and wins over `embeddings`.
    public var rules: [(Glob, Encoding)]
    public var pageSize: Int
    /// Unit of the data checksums (FOLIO.md 8): 1 MiB by default; a file served over HTTP
    /// for row lookups reads best with chunks of one page, since a remote read fetches and
    /// checks whole chunks.
    public var chunkSize: Int = FolioFormat.defaultChunkSize
    /// For safetensors output: keep quantized tensors' records instead of dequantizing.
    public var keepQuantized: Bool
    /// Split the output into shards of at most this many bytes.
    public var maxShardSize: Int?
    /// `--weights`: a preset for all of a model's matrices (`WeightsPreset`); rules and
    /// `--embeddings` win over it.
    public var weights: WeightsPreset?

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
            throw ConvertError.badOption("\(option): unknown scheme '\(name)' (expected f32, f16, bf16, int8, int8/gN, int4, int4/gN or affine8/gN with N in 16, 32, 64, 128, 256)")
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

/// What `--weights int8` and `--weights int4` do, as a user of llama.cpp's Q8_0 / Q4_0 or
/// mlx-lm's quantize expects: every linear weight (a 2-d `.weight` that is not a norm or an
/// embedding table) gets the preset's scheme, stored as records back to back (FOLIO.md 7.5)
/// because it is multiplied whole; the output layer (`lm_head.weight`, GGUF's
/// `output.weight`, or the token embeddings when they are tied to the output and no lm_head
/// is stored) gets int8/g32 with both presets, as llama.cpp keeps the output layer at higher
/// precision than Q4_0 (it is the layer the logits are most sensitive to); embedding tables
/// that are only looked up get the preset's scheme, paged. Norms, biases, 1-d tensors and
/// MoE routers are kept as they are.
public enum WeightsPreset: String, Sendable, CaseIterable {
    case int8, int4

    public var linear: Encoding { self == .int8 ? .int8(group: 32) : .int4(group: 32) }
    public var output: Encoding { .int8(group: 32) }

    public static func parse(_ text: String) throws -> WeightsPreset {
        guard let p = WeightsPreset(rawValue: text) else {
            throw ConvertError.badOption("--weights: unknown preset '\(text)' (expected int8 or int4)")
        }
        return p
    }

    static let tokenEmbeddings = ["embed_tokens.weight", "tok_embeddings.weight", "wte.weight", "token_embd.weight", "word_embeddings.weight"]

    /// MoE routers (LongCat's `router.classifier`, Mixtral's `block_sparse_moe.gate`, Qwen
    /// and DeepSeek's `mlp.gate`, GGUF's `ffn_gate_inp`): kept as stored, as llama.cpp's
    /// quantizer keeps `ffn_gate_inp`; they are tiny, and a perturbed router score picks a
    /// different expert, which changes the output by far more than the weight error.
    static func isRouter(_ name: String) -> Bool {
        name.contains(".router.") || name.hasSuffix(".gate.weight") || name.contains("ffn_gate_inp")
    }

    static func isOutput(_ name: String) -> Bool {
        name == "lm_head.weight" || name.hasSuffix(".lm_head.weight") || name == "output.weight"
    }
}

/// The decision for one tensor.
public struct TensorDecision: Sendable {
    public let source: SourceTensor
    public let target: Encoding
    public let paged: Bool
    /// Records back to back instead of pages (quantized targets only).
    public var records: Bool = false
    /// Why a requested scheme was not applied (for the summary), if it was not.
    public let note: String?
    /// True when bytes can be copied as they are.
    public var isCopy: Bool { target == source.encoding && paged == source.isPaged && records == source.isRecords }
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
    /// The token embeddings double as the output layer (tied, and no lm_head stored).
    let tiedOutput: Bool

    public init(options: ConversionOptions, checkpoint: Checkpoint) {
        self.options = options
        tables = EmbeddingTables.tables(in: checkpoint)
        let config = checkpoint.files.first(where: { $0.name == "config.json" }).flatMap { try? JSONParser.parse($0.bytes) }
        let hasHead = checkpoint.tensors.contains { WeightsPreset.isOutput($0.name) }
        tiedOutput = !hasHead && (config?["tie_word_embeddings"]?.boolValue ?? true)
    }

    /// The preset's scheme and layout for a tensor, or nil when the preset leaves it alone.
    func preset(_ p: WeightsPreset, _ t: SourceTensor, isTable: Bool) -> (Encoding, records: Bool)? {
        guard t.shape.count == 2, t.name.hasSuffix(".weight"), !t.name.lowercased().contains("norm"),
              !WeightsPreset.isRouter(t.name) else { return nil }
        if WeightsPreset.isOutput(t.name) { return (p.output, true) }
        if isTable {
            if tiedOutput, WeightsPreset.tokenEmbeddings.contains(where: { t.name.hasSuffix($0) }) { return (p.output, true) }
            return (p.linear, false)
        }
        return (p.linear, true)
    }

    public func decide(_ t: SourceTensor) throws -> TensorDecision {
        var keep = TensorDecision(source: t, target: t.encoding, paged: t.isPaged || t.encoding.isQuantized, note: nil)
        // A quantized matrix from a foreign file (GGUF blocks kept with --keep-quantized) is
        // stored as records unless it is a table read by rows.
        keep.records = t.isRecords || (t.encoding.isQuantized && !t.isPaged && t.shape.count == 2 && !tables.contains(t.name))
        let isTable = tables.contains(t.name)
        var requested: (Encoding, exact: Bool, source: String)? = nil
        for (g, e) in options.rules where g.matches(t.name) {
            requested = (e, !g.hasWildcards, "--quantize \(g.pattern)=\(e.name)")
            break
        }
        if requested == nil, isTable, let e = options.embeddings { requested = (e, false, "--embeddings \(e.name)") }
        // The preset's layout holds for a linear weight whatever scheme a rule picks for it.
        let fromPreset = options.weights.flatMap { p in preset(p, t, isTable: isTable).map { (p, $0) } }
        if requested == nil, let (p, (e, _)) = fromPreset { requested = (e, false, "--weights \(p.rawValue)") }
        let records = fromPreset?.1.records ?? false
        guard let (target, exact, origin) = requested else { return keep }
        if let problem = problem(t, target) {
            if exact { throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "\(problem) (\(origin))") }
            return TensorDecision(source: t, target: t.encoding, paged: keep.paged, note: "kept as \(t.encoding.name): \(problem)")
        }
        let paged = target.isQuantized || (isTable && options.embeddings != nil) || (t.isPaged && target == t.encoding)
        var d = TensorDecision(source: t, target: target, paged: paged, note: nil)
        d.records = target.isQuantized && (records || (t.isRecords && target == t.encoding))
        return d
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
