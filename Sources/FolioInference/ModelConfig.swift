import Folio

/// A model's config.json read field by field, with one-line errors that name the field.
/// Hugging Face configs vary (an id or a list of ids, null for absent, ints written as
/// floats), so fields are read from the parsed JSON rather than decoded into a fixed type.
struct ModelConfig {
    let file: String
    let json: JSONValue
    let prefix: String

    init(file: String, json: JSONValue, prefix: String = "") {
        self.file = file
        self.json = json
        self.prefix = prefix
    }

    init(file: String, bytes: [UInt8]) throws {
        do { json = try JSONParser.parse(bytes) } catch {
            throw InferenceError.badConfig(file: file, field: "config.json", reason: "not valid JSON: \(error)")
        }
        guard json.objectValue != nil else { throw InferenceError.badConfig(file: file, field: "config.json", reason: "is not a JSON object") }
        self.file = file
        prefix = ""
    }

    func has(_ key: String) -> Bool {
        if let v = json[key], v != .null { return true }
        return false
    }

    func bad(_ key: String, _ reason: String) -> InferenceError {
        .badConfig(file: file, field: prefix + key, reason: reason)
    }

    /// An integer field in `range`; `def` when absent or null (required when `def` is nil).
    func int(_ key: String, _ def: Int? = nil, in range: ClosedRange<Int> = 1...(1 << 40)) throws -> Int {
        guard let v = json[key], v != .null else {
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
        guard let v = json[key], v != .null else {
            if let def { return def }
            throw bad(key, "is required")
        }
        guard let d = v.doubleValue, d.isFinite else { throw bad(key, "must be a finite number") }
        return d
    }

    func bool(_ key: String, _ def: Bool) throws -> Bool {
        guard let v = json[key], v != .null else { return def }
        guard let b = v.boolValue else { throw bad(key, "must be true or false") }
        return b
    }

    func string(_ key: String, _ def: String? = nil) throws -> String {
        guard let v = json[key], v != .null else {
            if let def { return def }
            throw bad(key, "is required")
        }
        guard let s = v.stringValue else { throw bad(key, "must be a string") }
        return s
    }

    /// A nested object, or nil when absent or null.
    func object(_ key: String) throws -> ModelConfig? {
        guard let v = json[key], v != .null else { return nil }
        guard v.objectValue != nil else { throw bad(key, "must be an object") }
        return ModelConfig(file: file, json: v, prefix: prefix + key + ".")
    }

    /// Token ids given as one id or a list of ids (eos_token_id); empty when absent.
    func ids(_ key: String) throws -> [Int32] {
        guard let v = json[key], v != .null else { return [] }
        let list = v.arrayValue ?? [v]
        return try list.map { e in
            guard let i = e.intValue, i >= 0, i <= Int(Int32.max) else { throw bad(key, "must be a token id or a list of token ids") }
            return Int32(i)
        }
    }
}
