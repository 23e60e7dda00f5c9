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
    /// Added tokens matched before normalization, longest first.
    let addedTokens: [(content: String, id: Int32)]
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
        templates = try BPETokenizer.readPostProcessor(doc["post_processor"], field: "post_processor", file: file)
        bosID = BPETokenizer.leadingID(templates)
        padID = vocab["[PAD]"] ?? vocab["<pad>"] ?? 0
        guard vocab[unkToken] != nil else { throw bad("model.unk_token", "'\(unkToken)' is not in the vocabulary") }
        var byID: [Int32: String] = [:]
        for (k, id) in vocab { byID[id] = k }
        var special = Set<Int32>()
        for t in doc["added_tokens"]?.arrayValue ?? [] {
            if let c = t["content"]?.stringValue, let id = t["id"]?.intValue, id < Int(Int32.max) {
                byID[Int32(id)] = c
                if t["special"]?.boolValue == true { special.insert(Int32(id)) }
            }
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
        for piece in splitAdded(text) {
            switch piece {
            case let .added(id): ids.append(id)
            case let .text(t): ids += wordPieces(t)
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

    public func withSpecialTokens(_ ids: [Int32]) -> [Int32] {
        var out = ids
        for t in templates { out = BPETokenizer.apply(t, to: out) }
        return out
    }

    /// The WordPiece decoder: continuation pieces joined to the previous one, others after a
    /// space, then transformers' clean-up of spaces before punctuation and contractions.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var out = ""
        for id in ids {
            guard let t = tokenByID[id], !(skipSpecialTokens && special.contains(id)) else { continue }
            if t.hasPrefix(continuingPrefix) { out += t.dropFirst(continuingPrefix.count) } else { out += out.isEmpty ? t : " " + t }
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
