import Folio

/// A model's config.json read field by field, with one-line errors that name the field.
/// Hugging Face configs vary (an id or a list of ids, null for absent, ints written as
/// floats), so fields are read from the parsed JSON rather than decoded into a fixed type.
///
/// Every key read is logged (nested objects included), so that after a model is built the
/// keys it never read can be refused (`unreadKeys`): a key that changes the math and that the
/// architecture does not implement is an error, never silently ignored.
struct ModelConfig {
    let file: String
    let json: JSONValue
    let prefix: String
    let log: KeyLog

    /// The keys read so far, shared by a config and the nested objects read from it.
    final class KeyLog: @unchecked Sendable {
        // @unchecked: written while one model is built, on one thread.
        var read = Set<String>()
        /// Nested objects that were opened (their own keys are checked too).
        var objects: [(prefix: String, json: JSONValue)] = []
    }

    init(file: String, json: JSONValue, prefix: String = "", log: KeyLog = KeyLog()) {
        self.file = file
        self.json = json
        self.prefix = prefix
        self.log = log
    }

    init(file: String, bytes: [UInt8]) throws {
        do { json = try JSONParser.parse(bytes) } catch {
            throw InferenceError.badConfig(file: file, field: "config.json", reason: "not valid JSON: \(error)")
        }
        guard json.objectValue != nil else { throw InferenceError.badConfig(file: file, field: "config.json", reason: "is not a JSON object") }
        self.file = file
        prefix = ""
        log = KeyLog()
    }

    /// Whether the key is present and not null (counts as reading it).
    func has(_ key: String) -> Bool {
        log.read.insert(prefix + key)
        if let v = json[key], v != .null { return true }
        return false
    }

    /// The raw value of a key, nil when absent or null (counts as reading it).
    func value(_ key: String) -> JSONValue? {
        log.read.insert(prefix + key)
        guard let v = json[key], v != .null else { return nil }
        return v
    }

    /// Marks keys as handled without reading them (they are known not to change the math).
    func accept(_ keys: String...) {
        for k in keys { log.read.insert(prefix + k) }
    }

    /// Keys present with a non-null value that nobody read, with their nested path, except
    /// the top-level keys in `inert` (metadata and training-only settings).
    func unreadKeys(inert: Set<String>) -> [String] {
        var out: [String] = []
        func scan(_ json: JSONValue, _ prefix: String) {
            guard let obj = json.objectValue else { return }
            for (k, v) in obj where v != .null {
                let path = prefix + k
                if log.read.contains(path) || (prefix.isEmpty && inert.contains(k)) { continue }
                if case .array(let a) = v, a.isEmpty { continue }
                out.append(path)
            }
        }
        scan(json, prefix)
        for (p, j) in log.objects { scan(j, p) }
        return out.sorted()
    }

    func bad(_ key: String, _ reason: String) -> InferenceError {
        .badConfig(file: file, field: prefix + key, reason: reason)
    }

    /// An integer field in `range`; `def` when absent or null (required when `def` is nil).
    func int(_ key: String, _ def: Int? = nil, in range: ClosedRange<Int> = 1...(1 << 40)) throws -> Int {
        guard let v = value(key) else {
            if let def { return def }
            throw bad(key, "is required")
        }
        guard let i = v.intValue ?? v.doubleValue.flatMap({ $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil }) else {
            throw bad(key, "must be an integer")
        }
        guard range.contains(i) else { throw bad(key, "is \(i), must be in \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    /// A finite number field; `def` when absent or null.
    func double(_ key: String, _ def: Double? = nil) throws -> Double {
        guard let v = value(key) else {
            if let def { return def }
            throw bad(key, "is required")
        }
        guard let d = v.doubleValue, d.isFinite else { throw bad(key, "must be a finite number") }
        return d
    }

    func bool(_ key: String, _ def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard let b = v.boolValue else { throw bad(key, "must be true or false") }
        return b
    }

    func string(_ key: String, _ def: String? = nil) throws -> String {
        guard let v = value(key) else {
            if let def { return def }
            throw bad(key, "is required")
        }
        guard let s = v.stringValue else { throw bad(key, "must be a string") }
        return s
    }

    /// A nested object, or nil when absent or null.
    func object(_ key: String) throws -> ModelConfig? {
        guard let v = value(key) else { return nil }
        guard v.objectValue != nil else { throw bad(key, "must be an object") }
        log.objects.append((prefix + key + ".", v))
        return ModelConfig(file: file, json: v, prefix: prefix + key + ".", log: log)
    }

    /// Token ids given as one id or a list of ids (eos_token_id); empty when absent.
    func ids(_ key: String) throws -> [Int32] {
        guard let v = value(key) else { return [] }
        let list = v.arrayValue ?? [v]
        return try list.map { e in
            guard let i = e.intValue, i >= 0, i <= Int(Int32.max) else { throw bad(key, "must be a token id or a list of token ids") }
            return Int32(i)
        }
    }
}

extension ModelConfig {
    /// A list of strings (layer_types); nil when absent.
    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let a = v.arrayValue else { throw bad(key, "must be a list of strings") }
        return try a.map { e in
            guard let s = e.stringValue else { throw bad(key, "must be a list of strings") }
            return s
        }
    }

    /// A list of integers (mlp_only_layers); empty when absent.
    func ints(_ key: String) throws -> [Int] {
        guard let v = value(key) else { return [] }
        guard let a = v.arrayValue else { throw bad(key, "must be a list of integers") }
        return try a.map { e in
            guard let i = e.intValue else { throw bad(key, "must be a list of integers") }
            return i
        }
    }

    /// A list of numbers (longrope's factors).
    func doubles(_ key: String) throws -> [Double] {
        guard let v = value(key), let a = v.arrayValue else { throw bad(key, "must be a list of numbers") }
        return try a.map { e in
            guard let d = e.doubleValue, d.isFinite else { throw bad(key, "must be a list of numbers") }
            return d
        }
    }

    /// Top-level keys of Hugging Face configs that do not change a forward pass: metadata,
    /// token ids used by generation, and training-only settings (dropout, initialisation,
    /// auxiliary losses).
    static let inertKeys: Set<String> = [
        "architectures", "model_type", "transformers_version", "dtype", "torch_dtype", "_name_or_path", "name_or_path",
        "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "initializer_range",
        "initializer_factor", "use_cache", "attention_dropout", "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob",
        "embd_pdrop", "resid_pdrop", "attn_pdrop", "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
        "summary_first_dropout", "output_attentions", "output_hidden_states", "return_dict", "use_return_dict", "torchscript",
        "tokenizer_class", "id2label", "label2id", "problem_type", "task_specific_params", "finetuning_task", "prefix",
        "output_router_logits", "router_aux_loss_coef", "router_jitter_noise", "router_z_loss_coef", "aux_loss_alpha", "seq_aux",
        "pretraining_tp", "num_nextn_predict_layers", "auto_map", "keys_to_ignore_at_inference", "chunk_size_feed_forward",
        "is_decoder", "is_encoder_decoder", "add_cross_attention", "tie_encoder_decoder", "pruned_heads", "tf_legacy_loss",
        "use_bfloat16", "cache_implementation", "classifier_dropout", "mlp_dropout", "embedding_dropout", "_attn_implementation",
        "_sliding_window_pattern", "sliding_window_pattern", "attn_implementation", "gradient_checkpointing", "mtp_loss_scaling_factor",
        "dropout", "qa_dropout", "seq_classif_dropout", "classifier_dropout", "output_past",
    ]

    /// Refuses the first key no one read (see `unreadKeys`), naming it.
    func refuseUnread(modelType: String) throws {
        if let k = unreadKeys(inert: Self.inertKeys).first {
            throw InferenceError.unsupported(file: file, reason: "config key '\(k)' is not implemented for \(modelType); refusing rather than guessing what it changes")
        }
    }
}
