import Foundation
import Folio

/// BERT's WordPiece tokenizer as the Hugging Face `tokenizers` library runs it from a
/// tokenizer.json: added (special) tokens matched in the raw text, the BertNormalizer
/// (clean text, spaces around CJK characters, accent stripping, lowercasing), the
/// BertPreTokenizer (split on whitespace and punctuation), greedy longest-match WordPiece
/// with a `##` continuation prefix, and the post-processor's template ([CLS] ... [SEP] for
/// BERT, <s> ... </s> for MPNet).
public final class WordPieceTokenizer: TextTokenizer, @unchecked Sendable {
    // @unchecked: immutable after init.
    public let vocab: [String: Int32]
    public let unkToken: String
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    public let lowercase: Bool
    public let stripAccents: Bool
    public let cleanText: Bool
    public let handleChineseChars: Bool
    /// Added tokens, matched as the library matches them (raw ones before normalization,
    /// normalized ones after; lstrip, rstrip, single_word).
    let added: AddedVocabulary
    let templates: [[TemplatePiece]]
    let tokenByID: [Int32: String]
    let special: Set<Int32>
    /// The id padding uses: [PAD] or <pad> when the vocabulary has one, else 0.
    public let padID: Int32
    public let vocabSize: Int
    public let bosID: Int32?

    /// Reads a tokenizer.json whose model is WordPiece. `file` names it in errors.
    public init(json: [UInt8], file: String) throws {
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: f, reason: r) }
        let doc: JSONValue
        do { doc = try JSONParser.parse(json) } catch { throw TokenizerError.unsupported(file: file, reason: "not valid JSON: \(error)") }
        guard let model = doc["model"], model["type"]?.stringValue == "WordPiece" else {
            throw TokenizerError.unsupported(file: file, reason: "tokenizer model is \(doc["model"]?["type"]?.stringValue ?? "missing"), not WordPiece")
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
                throw TokenizerError.unsupported(file: file, reason: "normalizer \(n["type"]?.stringValue ?? "?") is not supported (BertNormalizer is)")
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
            throw TokenizerError.unsupported(file: file, reason: "pre-tokenizer \(p["type"]?.stringValue ?? "?") is not supported (BertPreTokenizer is)")
        }
        var addedList: [AddedToken] = []
        for (i, t) in (doc["added_tokens"]?.arrayValue ?? []).enumerated() {
            guard let c = t["content"]?.stringValue, !c.isEmpty else { continue }
            // Found by fuzzing: an id beyond Int32 used to trap in the conversion.
            guard let id = t["id"]?.intValue, id < Int(Int32.max) else {
                throw bad("added_tokens[\(i)].id", "missing or not a token id below 2^31")
            }
            func flag(_ name: String, _ d: Bool) throws -> Bool {
                try BPETokenizer.bool(t[name], default: d) { bad("added_tokens[\(i)].\(name)", "expected true or false") }
            }
            addedList.append(AddedToken(content: Array(c.utf8), singleWord: try flag("single_word", false), lstrip: try flag("lstrip", false),
                                        rstrip: try flag("rstrip", false), normalized: try flag("normalized", true), special: try flag("special", false)))
        }
        var byteVocab: [[UInt8]: Int32] = [:]
        for (k, id) in vocab { byteVocab[Array(k.utf8)] = id }
        let (lc, sa, ct, hc) = (lowercase, stripAccents, cleanText, handleChineseChars)
        added = try AddedVocabulary(addedList, vocab: byteVocab, normalize: { content in
            Array(Self.normalize(Substring(String(decoding: content, as: UTF8.self)), lowercase: lc, stripAccents: sa, cleanText: ct,
                                 handleChineseChars: hc).utf8)
        }, file: file)
        templates = try BPETokenizer.readPostProcessor(doc["post_processor"], field: "post_processor", file: file)
        bosID = BPETokenizer.leadingID(templates)
        padID = vocab["[PAD]"] ?? vocab["<pad>"] ?? 0
        guard vocab[unkToken] != nil else { throw bad("model.unk_token", "'\(unkToken)' is not in the vocabulary") }
        var byID: [Int32: String] = [:]
        for (k, id) in vocab { byID[id] = k }
        var special = Set<Int32>()
        for (id, t) in added.tokenByID {
            byID[id] = String(decoding: t.content, as: UTF8.self)
            if added.specialContents.contains(t.content) { special.insert(id) }
        }
        for t in templates {
            for case let .special(name, ids) in t {
                for id in ids where byID[id] == nil {
                    throw bad("post_processor", "special token '\(name)' has id \(id), which is not in the vocabulary")
                }
            }
        }
        tokenByID = byID
        self.special = special
        vocabSize = Int(byID.keys.max() ?? -1) + 1
    }

    /// Token ids of `text`, with the template's special tokens when asked.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = []
        let bytes = Array(text.utf8)
        for segment in added.split(bytes, normalizedTokens: false) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(range):
                let normalized = Array(normalize(Substring(String(decoding: bytes[range], as: UTF8.self))).utf8)
                for inner in added.split(normalized, normalizedTokens: true) {
                    switch inner {
                    case let .token(id): ids.append(id)
                    case let .text(r):
                        for word in preTokenize(String(decoding: normalized[r], as: UTF8.self)) { ids += wordPiece(word) }
                    }
                }
            }
        }
        return addSpecialTokens ? withSpecialTokens(ids) : ids
    }

    /// Token ids of `text` with the template's special tokens, the text truncated so that
    /// there are at most `maxLength` ids in all (as transformers truncates).
    public func encode(_ text: String, maxLength: Int) -> [Int32] {
        var ids = encode(text, addSpecialTokens: false)
        let room = max(0, maxLength - specialTokensAdded)
        if ids.count > room { ids.removeLast(ids.count - room) }
        return withSpecialTokens(ids)
    }

    public func withSpecialTokens(_ ids: [Int32]) -> [Int32] { BPETokenizer.apply(templates, to: ids) }

    /// The WordPiece decoder: continuation pieces joined to the previous one, others after a
    /// space, then transformers' clean-up of spaces before punctuation and contractions.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var out = ""
        var index = 0
        for id in ids {
            guard let t = tokenByID[id], !(skipSpecialTokens && special.contains(id)) else { continue }
            // As the library's WordPiece decoder: the prefix is joined on from the second token on.
            if index > 0 && t.hasPrefix(continuingPrefix) { out += t.dropFirst(continuingPrefix.count) } else { out += index == 0 ? t : " " + t }
            index += 1
        }
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            out = out.replacingOccurrences(of: a, with: b)
        }
        return out
    }

    public func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool = false) -> [UInt8] {
        Array(decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
    }

    public func id(of token: String) -> Int32? { vocab[token] }


    // MARK: BertNormalizer

    func normalize(_ text: Substring) -> String {
        Self.normalize(text, lowercase: lowercase, stripAccents: stripAccents, cleanText: cleanText, handleChineseChars: handleChineseChars)
    }

    static func normalize(_ text: Substring, lowercase: Bool, stripAccents: Bool, cleanText: Bool, handleChineseChars: Bool) -> String {
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
                !Self.isNonspacingMark($0)
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

    // tokenizers classifies characters for BERT with the unicode_categories crate, whose
    // tables are Unicode 8.0: measured over every code point against tokenizers 0.23, a
    // character assigned after 8.0 is no control, mark or punctuation character to it, and a
    // few characters keep the category they had then.

    static func assignedByUnicode8(_ u: Unicode.Scalar) -> Bool {
        guard let age = u.properties.age else { return false }
        return (age.major, age.minor) <= (8, 0)
    }

    /// Cc, Cf and Co (not Cn: unassigned characters are kept), but tab, newline and return.
    static func isControl(_ u: Unicode.Scalar) -> Bool {
        if u == "\t" || u == "\n" || u == "\r" { return false }
        switch u.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse: return assignedByUnicode8(u)
        default: return false
        }
    }

    /// Mn as of Unicode 8.0 (what strip_accents removes after NFD).
    static func isNonspacingMark(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x1734, 0x1171E: return true                       // Mn in 8.0, Mc since
        case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false      // Mn only since 9.0 or later
        default: return u.properties.generalCategory == .nonspacingMark && assignedByUnicode8(u)
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
        if u.value == 0x166D || u.value == 0x111C9 { return true }  // punctuation in 8.0, not since
        switch u.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return assignedByUnicode8(u)
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
