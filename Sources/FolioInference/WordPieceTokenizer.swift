import Foundation
import Folio

/// BERT's WordPiece tokenizer as the Hugging Face `tokenizers` library runs it from a
/// tokenizer.json: added (special) tokens matched in the raw text, the BertNormalizer
/// (clean text, spaces around CJK characters, accent stripping, lowercasing), the
/// BertPreTokenizer (split on whitespace and punctuation), greedy longest-match WordPiece
/// with a `##` continuation prefix, and the [CLS] ... [SEP] template.
public struct WordPieceTokenizer: Sendable {
    public let vocab: [String: Int32]
    public let unkToken: String
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    /// Added tokens matched before normalization, longest first.
    let addedTokens: [(content: String, id: Int32)]
    public let clsID: Int32
    public let sepID: Int32
    public let padID: Int32

    /// Reads a tokenizer.json whose model is WordPiece. `file` names it in errors.
    public init(json: [UInt8], file: String) throws {
        func bad(_ f: String, _ r: String) -> InferenceError { .badConfig(file: file, field: f, reason: r) }
        let doc: JSONValue
        do { doc = try JSONParser.parse(json) } catch { throw InferenceError.unsupported(file: file, reason: "not valid JSON: \(error)") }
        guard let model = doc["model"], model["type"]?.stringValue == "WordPiece" else {
            throw InferenceError.unsupported(file: file, reason: "tokenizer model is \(doc["model"]?["type"]?.stringValue ?? "missing"), not WordPiece")
        }
        guard let v = model["vocab"]?.objectValue else { throw bad("model.vocab", "missing") }
        var vocab: [String: Int32] = [:]
        for (k, id) in v {
            guard let i = id.intValue, i < Int(Int32.max) else { throw bad("model.vocab.\(k)", "not a token id") }
            vocab[k] = Int32(i)
        }
        self.vocab = vocab
        unkToken = model["unk_token"]?.stringValue ?? "[UNK]"
        continuingPrefix = model["continuing_subword_prefix"]?.stringValue ?? "##"
        maxInputCharsPerWord = model["max_input_chars_per_word"]?.intValue ?? 100
        let norm = doc["normalizer"]
        if let n = norm, n != .null {
            guard n["type"]?.stringValue == "BertNormalizer" else {
                throw InferenceError.unsupported(file: file, reason: "normalizer \(n["type"]?.stringValue ?? "?") is not supported (BertNormalizer is)")
            }
            lowercase = n["lowercase"]?.boolValue ?? true
            cleanText = n["clean_text"]?.boolValue ?? true
            handleChineseChars = n["handle_chinese_chars"]?.boolValue ?? true
            // strip_accents null means: follow lowercase (as in BERT).
            stripAccents = n["strip_accents"]?.boolValue ?? lowercase
        } else {
            lowercase = false; cleanText = false; handleChineseChars = false; stripAccents = false
        }
        if let p = doc["pre_tokenizer"], p != .null, p["type"]?.stringValue != "BertPreTokenizer" {
            throw InferenceError.unsupported(file: file, reason: "pre-tokenizer \(p["type"]?.stringValue ?? "?") is not supported (BertPreTokenizer is)")
        }
        var added: [(String, Int32)] = []
        for (i, t) in (doc["added_tokens"]?.arrayValue ?? []).enumerated() {
            guard let c = t["content"]?.stringValue, !c.isEmpty else { continue }
            // Found by fuzzing: an id beyond Int32 used to trap in the conversion.
            guard let id = t["id"]?.intValue, id < Int(Int32.max) else {
                throw bad("added_tokens[\(i)].id", "missing or not a token id below 2^31")
            }
            added.append((c, Int32(id)))
        }
        addedTokens = added.sorted { $0.0.count > $1.0.count }
        guard let cls = vocab["[CLS]"], let sep = vocab["[SEP]"] else { throw bad("model.vocab", "has no [CLS] or [SEP]") }
        clsID = cls
        sepID = sep
        padID = vocab["[PAD]"] ?? 0
        guard vocab[unkToken] != nil else { throw bad("model.unk_token", "'\(unkToken)' is not in the vocabulary") }
    }

    /// Token ids of `text` with [CLS] and [SEP], truncated to `maxLength` tokens in all.
    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        var ids: [Int32] = [clsID]
        for piece in splitAdded(text) {
            switch piece {
            case let .added(id): ids.append(id)
            case let .text(t): ids += wordPieces(t)
            }
        }
        if ids.count > maxLength - 1 { ids.removeLast(ids.count - (maxLength - 1)) }
        ids.append(sepID)
        return ids
    }

    enum Piece { case added(Int32), text(Substring) }

    /// Splits out added tokens (exact matches in the raw text, longest first).
    func splitAdded(_ text: String) -> [Piece] {
        guard !addedTokens.isEmpty else { return [.text(Substring(text))] }
        var out: [Piece] = []
        var rest = Substring(text)
        var start = rest.startIndex
        var i = rest.startIndex
        while i < rest.endIndex {
            var matched = false
            for (content, id) in addedTokens where rest[i...].hasPrefix(content) {
                if start < i { out.append(.text(rest[start..<i])) }
                out.append(.added(id))
                i = rest.index(i, offsetBy: content.count)
                start = i
                matched = true
                break
            }
            if !matched { i = rest.index(after: i) }
        }
        if start < rest.endIndex { out.append(.text(rest[start...])) }
        rest = ""
        return out
    }

    func wordPieces(_ text: Substring) -> [Int32] {
        var ids: [Int32] = []
        for word in preTokenize(normalize(text)) {
            ids += wordPiece(word)
        }
        return ids
    }

    // MARK: BertNormalizer

    func normalize(_ text: Substring) -> String {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        for u in text.unicodeScalars {
            if cleanText {
                if u.value == 0 || u.value == 0xFFFD || Self.isControl(u) { continue }
                if Self.isWhitespace(u) { scalars.append(" "); continue }
            }
            if handleChineseChars && Self.isChinese(u) {
                scalars += [" ", u, " "]
                continue
            }
            scalars.append(u)
        }
        var s = String(String.UnicodeScalarView(scalars))
        if stripAccents {
            s = String(String.UnicodeScalarView(s.decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                $0.properties.generalCategory != .nonspacingMark
            }))
        }
        if lowercase {
            // Per scalar, as Rust's char::to_lowercase (no context-dependent final sigma).
            var out = String.UnicodeScalarView()
            for u in s.unicodeScalars { out.append(contentsOf: u.properties.lowercaseMapping.unicodeScalars) }
            s = String(out)
        }
        return s
    }

    static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        u == " " || u == "\t" || u == "\n" || u == "\r" || u.properties.isWhitespace
    }

    static func isControl(_ u: Unicode.Scalar) -> Bool {
        if u == "\t" || u == "\n" || u == "\r" { return false }
        switch u.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isChinese(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    static func isPunctuation(_ u: Unicode.Scalar) -> Bool {
        if u.isASCII, (33...47).contains(u.value) || (58...64).contains(u.value) || (91...96).contains(u.value) || (123...126).contains(u.value) {
            return true
        }
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    // MARK: BertPreTokenizer

    /// Words: runs split on whitespace (dropped) and on punctuation (each its own word).
    func preTokenize(_ s: String) -> [String.UnicodeScalarView] {
        var words: [String.UnicodeScalarView] = []
        var current = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if Self.isWhitespace(u) {
                if !current.isEmpty { words.append(current); current = .init() }
            } else if Self.isPunctuation(u) {
                if !current.isEmpty { words.append(current); current = .init() }
                words.append(String.UnicodeScalarView([u]))
            } else {
                current.append(u)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    // MARK: WordPiece

    func wordPiece(_ word: String.UnicodeScalarView) -> [Int32] {
        let unk = vocab[unkToken]!
        let scalars = Array(word)  // max_input_chars_per_word counts Unicode scalars (Rust chars)
        if scalars.count > maxInputCharsPerWord { return [unk] }
        var ids: [Int32] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32? = nil
            while start < end {
                var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { piece = continuingPrefix + piece }
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unk] }
            ids.append(id)
            start = end
        }
        return ids
    }
}
