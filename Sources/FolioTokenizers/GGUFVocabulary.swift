import Folio

/// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` keys, rewritten as the
/// Hugging Face tokenizer.json (and tokenizer_config.json) that encodes text as llama.cpp
/// does (its `src/llama-vocab.cpp`), so that a model converted from GGUF runs on text.
///
/// - `tokenizer.ggml.model` "llama" (SentencePiece BPE, llama.cpp's SPM tokenizer): the
///   text gets "▁" for spaces and, unless `add_space_prefix` is false, one "▁" in front of each
///   piece between special tokens; adjacent symbols are merged while their concatenation is a
///   token, highest `scores` first; symbols that are not tokens become `<0xXX>` byte tokens.
///   As a BPE model with byte fallback, the merges are every split of a token into two tokens,
///   ranked by the score of the token they make (as transformers' SentencePiece converter
///   derives them).
/// - "gpt2" (byte-level BPE) with the pre-tokenizer `tokenizer.ggml.pre` names: the GPT-2
///   regex ("gpt-2" and its aliases), the Llama 3 one ("llama-bpe", "llama3", ..., merges
///   ignored for whole-token pieces as llama.cpp does) or the Qwen2 one ("qwen2", ...).
///   Any other pre-tokenizer, and any other tokenizer model, is refused by name.
///
/// Token types (`tokenizer.ggml.token_type`, llama.cpp's `LLAMA_TOKEN_TYPE_*`): control (3) and
/// unknown (2) tokens are special added tokens; user-defined (4) ones are added tokens that are
/// not special; both are split out of the text before the model sees it.
public enum GGUFVocabulary {
    public struct Files: Sendable {
        public let tokenizer: [UInt8]
        public let tokenizerConfig: [UInt8]
    }

    static let normal = 1, unknown = 2, control = 3, userDefined = 4, byte = 6

    /// Pre-tokenizer names of llama.cpp's GPT-2, Llama 3 and Qwen2 regexes.
    static let gpt2Names: Set<String> = ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert"]
    static let llama3Names: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"]
    static let qwen2Names: Set<String> = ["qwen2", "deepseek-r1-qwen"]

    /// The tokenizer files of `metadata` (GGUF keys without a prefix, values as JSON), or nil
    /// when the file carries no tokenizer (`tokenizer.ggml.model` absent). `file` names the
    /// source in errors.
    public static func files(_ metadata: [String: JSONValue], file: String) throws -> Files? {
        guard let modelValue = metadata["tokenizer.ggml.model"] else { return nil }
        func bad(_ key: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: key, reason: reason) }
        guard let model = modelValue.stringValue else { throw bad("tokenizer.ggml.model", "must be a string") }
        guard let tokenValues = metadata["tokenizer.ggml.tokens"]?.arrayValue, !tokenValues.isEmpty else {
            throw bad("tokenizer.ggml.tokens", "missing or empty")
        }
        var tokens: [String] = []
        tokens.reserveCapacity(tokenValues.count)
        for (i, t) in tokenValues.enumerated() {
            guard let s = t.stringValue else { throw bad("tokenizer.ggml.tokens", "entry \(i) is not a string") }
            tokens.append(s)
        }
        let n = tokens.count
        var types = [Int](repeating: normal, count: n)
        if let tv = metadata["tokenizer.ggml.token_type"] {
            guard let list = tv.arrayValue, list.count == n else { throw bad("tokenizer.ggml.token_type", "must be a list of \(n) integers (one per token)") }
            for (i, v) in list.enumerated() {
                guard let t = v.intValue, (1...6).contains(t) else { throw bad("tokenizer.ggml.token_type", "entry \(i) is not a token type 1...6") }
                types[i] = t
            }
        }
        func tokenID(_ key: String, _ def: Int?) throws -> Int? {
            guard let v = metadata["tokenizer.ggml.\(key)"] else { return def }
            guard let i = v.intValue else { throw bad("tokenizer.ggml.\(key)", "must be an integer") }
            if i == -1 || i == Int(UInt32.max) { return nil }  // LLAMA_TOKEN_NULL as written by some converters
            guard i >= 0, i < n else { throw bad("tokenizer.ggml.\(key)", "\(i) is not a token id (0..<\(n))") }
            return i
        }
        func flag(_ key: String, _ def: Bool) throws -> Bool {
            guard let v = metadata["tokenizer.ggml.\(key)"] else { return def }
            guard let b = v.boolValue else { throw bad("tokenizer.ggml.\(key)", "must be a boolean") }
            return b
        }
        if let v = metadata["tokenizer.ggml.remove_extra_whitespaces"], v.boolValue == true {
            throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.remove_extra_whitespaces is true: collapsing spaces is not implemented")
        }
        let pre = metadata["tokenizer.ggml.pre"]?.stringValue

        var members: [(String, JSONValue)] = [("version", .string("1.0")), ("truncation", .null), ("padding", .null)]
        var addBOS: Bool, addEOS: Bool
        let bos: Int?, eos: Int?
        let modelObject: JSONValue, normalizer: JSONValue, preTokenizer: JSONValue, decoder: JSONValue
        switch model {
        case "llama":
            guard let sv = metadata["tokenizer.ggml.scores"]?.arrayValue, sv.count == n else {
                throw bad("tokenizer.ggml.scores", "must be a list of \(n) numbers (one per token) for a SentencePiece vocabulary")
            }
            var scores: [Double] = []
            scores.reserveCapacity(n)
            for (i, v) in sv.enumerated() {
                guard let d = v.doubleValue, !d.isNaN else { throw bad("tokenizer.ggml.scores", "entry \(i) is not a number") }
                scores.append(d)
            }
            let unk = try tokenID("unknown_token_id", 0)
            bos = try tokenID("bos_token_id", 1)
            eos = try tokenID("eos_token_id", 2)
            addBOS = try flag("add_bos_token", true)
            addEOS = try flag("add_eos_token", false)
            let prefix = try flag("add_space_prefix", true)
            modelObject = .object([
                ("type", .string("BPE")), ("dropout", .null), ("unk_token", unk.map { .string(tokens[$0]) } ?? .null),
                ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", .bool(true)),
                ("byte_fallback", .bool(true)), ("ignore_merges", .bool(false)),
                ("vocab", vocabulary(tokens)), ("merges", .array(spmMerges(tokens, types: types, scores: scores))),
            ])
            let replace: JSONValue = .object([("type", .string("Replace")), ("pattern", .object([("String", .string(" "))])), ("content", .string("▁"))])
            normalizer = prefix ? .object([("type", .string("Sequence")), ("normalizers", .array([
                .object([("type", .string("Prepend")), ("prepend", .string("▁"))]), replace,
            ]))]) : replace
            preTokenizer = .null
            var steps: [JSONValue] = [
                .object([("type", .string("Replace")), ("pattern", .object([("String", .string("▁"))])), ("content", .string(" "))]),
                .object([("type", .string("ByteFallback"))]), .object([("type", .string("Fuse"))]),
            ]
            if prefix { steps.append(.object([("type", .string("Strip")), ("content", .string(" ")), ("start", .int(1)), ("stop", .int(0))])) }
            decoder = .object([("type", .string("Sequence")), ("decoders", .array(steps))])
        case "gpt2":
            guard let mv = metadata["tokenizer.ggml.merges"]?.arrayValue else {
                throw bad("tokenizer.ggml.merges", "missing: a byte-level BPE vocabulary needs its merges")
            }
            // Kept as "a b" lines, as the GGUF writes them (and merges.txt: a "#version" line is skipped).
            for (i, v) in mv.enumerated() where v.stringValue == nil { throw bad("tokenizer.ggml.merges", "entry \(i) is not a string") }
            let merges = mv
            guard let pre else {
                throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.pre is missing: llama.cpp then guesses a pre-tokenizer ('default', with a warning that quality degrades); Folio does not guess")
            }
            let pattern: String?, ignoreMerges: Bool
            if gpt2Names.contains(pre) {
                pattern = nil; ignoreMerges = false
            } else if llama3Names.contains(pre) {
                pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
                ignoreMerges = true
            } else if qwen2Names.contains(pre) {
                pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
                ignoreMerges = false
            } else {
                throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.pre '\(pre)' is not a pre-tokenizer Folio implements (GPT-2, Llama 3 and Qwen2 ones are)")
            }
            bos = try tokenID("bos_token_id", nil)
            eos = try tokenID("eos_token_id", nil)
            addBOS = try flag("add_bos_token", llama3Names.contains(pre))
            addEOS = try flag("add_eos_token", false)
            modelObject = .object([
                ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
                ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
                ("ignore_merges", .bool(ignoreMerges)), ("vocab", vocabulary(tokens)), ("merges", .array(merges)),
            ])
            normalizer = .null
            if let pattern {
                preTokenizer = .object([("type", .string("Sequence")), ("pretokenizers", .array([
                    .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(pattern))])), ("behavior", .string("Isolated")), ("invert", .bool(false))]),
                    .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(false)), ("use_regex", .bool(false))]),
                ]))])
            } else {
                preTokenizer = .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
            }
            decoder = .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
        default:
            throw TokenizerError.unsupported(file: file, reason: "tokenizer.ggml.model '\(model)' is not a tokenizer Folio implements for GGUF files ('llama' and 'gpt2' are)")
        }
        if addBOS, bos == nil { throw bad("tokenizer.ggml.add_bos_token", "is true but there is no tokenizer.ggml.bos_token_id") }
        if addEOS, eos == nil { throw bad("tokenizer.ggml.add_eos_token", "is true but there is no tokenizer.ggml.eos_token_id") }
        var added: [JSONValue] = []
        for i in 0..<n where types[i] == control || types[i] == unknown || types[i] == userDefined {
            added.append(.object([
                ("id", .int(i)), ("content", .string(tokens[i])), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(types[i] != userDefined)),
            ]))
        }
        members.append(("added_tokens", .array(added)))
        members += [("normalizer", normalizer), ("pre_tokenizer", preTokenizer), ("post_processor", template(tokens, bos: addBOS ? bos : nil, eos: addEOS ? eos : nil)),
                    ("decoder", decoder), ("model", modelObject)]

        var config: [(String, JSONValue)] = [("add_bos_token", .bool(addBOS)), ("add_eos_token", .bool(addEOS))]
        if let bos { config.append(("bos_token", .string(tokens[bos]))) }
        if let eos { config.append(("eos_token", .string(tokens[eos]))) }
        if let t = metadata["tokenizer.chat_template"] {
            guard let s = t.stringValue else { throw bad("tokenizer.chat_template", "must be a string") }
            config.append(("chat_template", .string(s)))
        }
        return Files(tokenizer: Array(JSONValue.object(members).serialized().utf8), tokenizerConfig: Array(JSONValue.object(config).serialized(pretty: true).utf8))
    }

    /// The vocabulary object: token -> id. A token written twice keeps its last id, as
    /// llama.cpp's `token_to_id` does (a JSON object cannot hold it twice). Tokens are told
    /// apart by their bytes (Swift's String equality would merge canonically equal ones).
    static func vocabulary(_ tokens: [String]) -> JSONValue {
        var last: [[UInt8]: Int] = [:]
        for (i, t) in tokens.enumerated() { last[Array(t.utf8)] = i }
        return .object(tokens.enumerated().compactMap { i, t in last[Array(t.utf8)] == i ? (t, .int(i)) : nil })
    }

    /// Every split of a token into two tokens at a character boundary, ranked by the score of
    /// the token they make (highest first; then by that token's id and the left part's id).
    /// Byte, control and unknown tokens are never made by a merge, nor byte tokens used in one.
    static func spmMerges(_ tokens: [String], types: [Int], scores: [Double]) -> [JSONValue] {
        let bytes = tokens.map { Array($0.utf8) }
        var id: [ArraySlice<UInt8>: Int] = [:]
        for (i, b) in bytes.enumerated() where types[i] != byte { id[b[...]] = i }
        var found: [(score: Double, merged: Int, left: Int, cut: Int)] = []
        for (i, b) in bytes.enumerated() where types[i] == normal || types[i] == userDefined || types[i] == 5 {
            for k in 1..<max(1, b.count) where b[k] & 0xC0 != 0x80 {
                if let l = id[b[..<k]], id[b[k...]] != nil { found.append((scores[i], i, l, k)) }
            }
        }
        found.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.merged != b.merged { return a.merged < b.merged }
            return a.left < b.left
        }
        return found.map { f in
            let b = bytes[f.merged]
            return .array([.string(String(decoding: b[..<f.cut], as: UTF8.self)), .string(String(decoding: b[f.cut...], as: UTF8.self))])
        }
    }

    /// A TemplateProcessing with the beginning and end tokens llama.cpp adds.
    static func template(_ tokens: [String], bos: Int?, eos: Int?) -> JSONValue {
        func special(_ i: Int) -> JSONValue { .object([("SpecialToken", .object([("id", .string(tokens[i])), ("type_id", .int(0))]))]) }
        func sequence(_ s: String, _ type: Int) -> JSONValue { .object([("Sequence", .object([("id", .string(s)), ("type_id", .int(type))]))]) }
        let head = bos.map { [special($0)] } ?? [], tail = eos.map { [special($0)] } ?? []
        var specials: [(String, JSONValue)] = []
        for i in [bos, eos].compactMap({ $0 }) where !specials.contains(where: { $0.0 == tokens[i] }) {
            specials.append((tokens[i], .object([("id", .string(tokens[i])), ("ids", .array([.int(i)])), ("tokens", .array([.string(tokens[i])]))])))
        }
        return .object([
            ("type", .string("TemplateProcessing")),
            ("single", .array(head + [sequence("A", 0)] + tail)),
            ("pair", .array(head + [sequence("A", 0)] + tail + head + [sequence("B", 1)] + tail)),
            ("special_tokens", .object(specials)),
        ])
    }
}
