import Foundation
import Folio

/// The tokenizer.json files transformers writes for SentencePiece checkpoints (Llama 2,
/// TinyLlama, Mistral, Gemma: BPE with byte fallback; XLM-R, T5-like: Unigram), encoded and
/// decoded as Hugging Face `tokenizers` does (Tools/reference/SENTENCEPIECE_NOTES.md):
/// added tokens split out of the raw text, the normalizer per segment (Prepend, Replace,
/// Strip, Precompiled, NFC/NFKC), normalized added tokens found by their normalized form,
/// the pre-tokenizer (Metaspace, WhitespaceSplit, literal Split), the model per piece, the
/// template; decoding through Replace, ByteFallback, Fuse, Strip or the Metaspace decoder.
public final class SentencePieceTokenizer: TextTokenizer, @unchecked Sendable {
    // @unchecked: immutable after init.
    enum Model {
        case bpe(BPEModel)
        case unigram(UnigramModel)
    }

    let model: Model
    let normalizers: [NormalizerStep]
    let preTokenizers: [SentencePiecePreStep]
    let added: AddedVocabulary
    let templates: [[TemplatePiece]]
    let decoders: [DecoderStep]?
    /// The string of every id as decoding sees it (added tokens first, normalized form for
    /// normalized ones), and whether it is special.
    let decodeTable: [Int32: DecodedToken]
    let tokenIDs: [[UInt8]: Int32]

    public let vocabSize: Int
    public let bosID: Int32?

    /// Reads a tokenizer.json whose model is Unigram, or BPE that is not byte-level.
    public init(json: [UInt8], file: String) throws {
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: field, reason: reason) }
        let doc: JSONValue
        do { doc = try JSONParser.parse(json) } catch { throw TokenizerError.unsupported(file: file, reason: "not valid JSON: \(error)") }
        guard let m = doc["model"], m.objectValue != nil else { throw bad("model", "missing or not an object") }
        var pieces: [[UInt8]] = []
        switch m["type"]?.stringValue {
        case "BPE":
            let b = try BPEModel(m, file: file)
            pieces = b.pieces
            model = .bpe(b)
        case "Unigram":
            let u = try UnigramModel(m, file: file)
            pieces = u.pieces
            model = .unigram(u)
        default:
            throw TokenizerError.unsupported(file: file, reason: "tokenizer model \(BPETokenizer.quoted(m["type"]?.stringValue ?? "missing")) is not BPE or Unigram")
        }
        var vocab: [[UInt8]: Int32] = [:]
        for (i, p) in pieces.enumerated() { vocab[p] = Int32(i) }  // a repeated piece keeps its last id

        let normalizers = try NormalizerStep.read(doc["normalizer"], field: "normalizer", file: file)
        self.normalizers = normalizers
        preTokenizers = try SentencePiecePreStep.read(doc["pre_tokenizer"], field: "pre_tokenizer", file: file)

        let addedTokens = try AddedToken.readList(doc["added_tokens"], file: file)
        let normalize = { (b: [UInt8]) in NormalizerStep.apply(normalizers, to: b) }
        added = try AddedVocabulary(addedTokens, vocab: vocab, modelSize: pieces.count, normalize: normalize, file: file)
        templates = try BPETokenizer.readPostProcessor(doc["post_processor"], field: "post_processor", file: file)
        bosID = BPETokenizer.leadingID(templates)
        decoders = try DecoderStep.read(doc["decoder"], field: "decoder", file: file)

        var table: [Int32: DecodedToken] = [:]
        var maxID: Int32 = Int32(pieces.count) - 1
        for (i, p) in pieces.enumerated() { table[Int32(i)] = DecodedToken(bytes: p, special: added.specialContents.contains(p)) }
        for (id, t) in added.tokenByID {
            let form = t.normalized ? normalize(t.content) : t.content
            table[id] = DecodedToken(bytes: form.isEmpty ? t.content : form, special: added.specialContents.contains(t.content))
            maxID = max(maxID, id)
        }
        decodeTable = table
        var ids = vocab
        for (content, id) in added.idByContent { ids[content] = id }
        tokenIDs = ids
        vocabSize = Int(maxID) + 1
    }

    // MARK: Encoding

    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = []
        let bytes = Array(text.utf8)
        for segment in added.split(bytes, normalizedTokens: false) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(range):
                let normalized = NormalizerStep.apply(normalizers, to: Array(bytes[range]))
                for inner in added.split(normalized, normalizedTokens: true) {
                    switch inner {
                    case let .token(id): ids.append(id)
                    case let .text(r):
                        // Metaspace's "first" prepends only to the piece at the start of the input.
                        let first = range.lowerBound == 0 && r.lowerBound == 0
                        var pieces = [(Array(String(decoding: normalized[r], as: UTF8.self).unicodeScalars), first)]
                        for step in preTokenizers {
                            var next: [([Unicode.Scalar], Bool)] = []
                            for p in pieces { step.apply(p.0, first: p.1, into: &next) }
                            pieces = next
                        }
                        for (p, _) in pieces where !p.isEmpty {
                            var key: [UInt8] = []
                            for u in p { key.append(contentsOf: u.utf8) }
                            switch model {
                            case let .bpe(m): ids += m.encode(p, key: key)
                            case let .unigram(m): ids += m.encode(key)
                            }
                        }
                    }
                }
            }
        }
        return addSpecialTokens ? withSpecialTokens(ids) : ids
    }

    public func withSpecialTokens(_ ids: [Int32]) -> [Int32] { BPETokenizer.apply(templates, to: ids) }

    public var specialTokensAdded: Int { withSpecialTokens([]).count }

    // MARK: Decoding

    /// The text of `ids` as the library decodes it; unknown ids are skipped.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    public func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool = false) -> [UInt8] {
        decoded(ids, skipSpecialTokens: skipSpecialTokens)
    }

    /// A trailing run of byte-fallback tokens: its text is known only once the run ends
    /// (invalid UTF-8 turns every byte of the run into U+FFFD).
    public func unsettledTokens(_ ids: [Int32]) -> Int {
        guard decoders?.contains(where: { if case .byteFallback = $0 { return true }; return false }) == true else { return 0 }
        var n = 0
        for id in ids.reversed() {
            guard let t = decodeTable[id], DecoderStep.byteToken(t.bytes) != nil else { break }
            n += 1
        }
        return n
    }

    func decoded(_ ids: [Int32], skipSpecialTokens: Bool) -> [UInt8] {
        var tokens: [[UInt8]] = []
        for id in ids {
            guard let t = decodeTable[id], !(skipSpecialTokens && t.special) else { continue }
            tokens.append(t.bytes)
        }
        guard let decoders else {
            var out: [UInt8] = []
            for (i, t) in tokens.enumerated() { if i > 0 { out.append(0x20) }; out += t }
            return out
        }
        for d in decoders { tokens = d.apply(tokens) }
        return tokens.flatMap { $0 }
    }

    public func id(of token: String) -> Int32? { tokenIDs[Array(token.utf8)] }
}

// MARK: - Models

/// BPE over the characters of a piece (not bytes): a character outside the vocabulary becomes
/// its `<0xNN>` byte tokens when `byte_fallback` is set and all of them exist, else the unknown
/// token (consecutive ones fused with `fuse_unk`), else nothing.
struct BPEModel: Sendable {
    let pieces: [[UInt8]]
    let vocab: [[UInt8]: Int32]
    let merges: [UInt64: UInt64]
    let unkID: Int32?
    let fuseUnk: Bool
    let ignoreMerges: Bool
    /// The id of `<0xNN>` for every byte, or nil where byte fallback is off or a byte lacks one.
    let byteIDs: [Int32]?

    init(_ m: JSONValue, file: String) throws {
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: field, reason: reason) }
        if let d = m["dropout"], d != .null, d.doubleValue != 0 {
            throw TokenizerError.unsupported(file: file, reason: "BPE dropout \(BPETokenizer.brief(d)) is not supported (null or 0 is)")
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = m[field], v != .null, v.stringValue != "" {
                throw TokenizerError.unsupported(file: file, reason: "BPE \(field) \(BPETokenizer.brief(v)) is not supported (null or empty is)")
            }
        }
        fuseUnk = try BPETokenizer.bool(m["fuse_unk"], default: false) { bad("model.fuse_unk", "expected true or false") }
        ignoreMerges = try BPETokenizer.bool(m["ignore_merges"], default: false) { bad("model.ignore_merges", "expected true or false") }
        let fallback = try BPETokenizer.bool(m["byte_fallback"], default: false) { bad("model.byte_fallback", "expected true or false") }
        guard let members = m["vocab"]?.objectValue else { throw bad("model.vocab", "missing or not an object") }
        var byID: [Int32: [UInt8]] = [:]
        var vocab: [[UInt8]: Int32] = [:]
        for (token, value) in members {
            guard let i = value.intValue, i >= 0, i < Int(Int32.max) else {
                throw bad("model.vocab", "token \(BPETokenizer.quoted(token)) has id \(BPETokenizer.brief(value)), expected an integer from 0 to \(Int32.max - 1)")
            }
            if byID[Int32(i)] != nil { throw bad("model.vocab", "two tokens have id \(i)") }
            byID[Int32(i)] = Array(token.utf8)
            vocab[Array(token.utf8)] = Int32(i)
        }
        let count = (byID.keys.max().map { Int($0) + 1 }) ?? 0
        guard count == byID.count else { throw bad("model.vocab", "ids are not 0..<\(byID.count) without gaps") }
        pieces = (0..<count).map { byID[Int32($0)]! }
        self.vocab = vocab
        if let u = m["unk_token"], u != .null {
            guard let s = u.stringValue, let id = vocab[Array(s.utf8)] else { throw bad("model.unk_token", "is not a token of the vocabulary") }
            unkID = id
        } else {
            unkID = nil
        }
        if fallback {
            let ids = (0..<256).map { b in vocab[Array(String(format: "<0x%02X>", b).utf8)] ?? -1 }
            byteIDs = ids
        } else {
            byteIDs = nil
        }
        guard let list = m["merges"]?.arrayValue else { throw bad("model.merges", "missing or not an array") }
        var merges: [UInt64: UInt64] = [:]
        var rank: UInt64 = 0
        for (index, item) in list.enumerated() {
            let field = "model.merges[\(index)]"
            let left: [UInt8], right: [UInt8]
            if let line = item.stringValue {
                if line.utf8.starts(with: "#version".utf8) { continue }
                let parts = line.utf8.split(separator: 0x20, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw bad(field, "\(BPETokenizer.quoted(line)) is not two tokens separated by one space") }
                (left, right) = (Array(parts[0]), Array(parts[1]))
            } else if let pair = item.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                (left, right) = (Array(a.utf8), Array(b.utf8))
            } else {
                throw bad(field, "expected \"a b\" or [\"a\", \"b\"]")
            }
            guard let a = vocab[left], let b = vocab[right], let ab = vocab[left + right] else {
                throw bad(field, "a token of the merge (or the merged token) is not in the vocabulary")
            }
            merges[BPETokenizer.pairKey(a, b)] = rank << 32 | UInt64(UInt32(ab))
            rank += 1
        }
        self.merges = merges
    }

    func encode(_ piece: [Unicode.Scalar], key: [UInt8]) -> [Int32] {
        if ignoreMerges, let id = vocab[key] { return [id] }
        var c: [Int32] = [], len: [Int] = []
        var pending: (id: Int32, len: Int)? = nil
        for u in piece {
            let bytes = Array(String(u).utf8)
            if let id = vocab[bytes] {
                if let p = pending { c.append(p.id); len.append(p.len); pending = nil }
                c.append(id)
                len.append(bytes.count)
            } else if let byteIDs, bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                // As the library does, a pending unknown is not flushed before the bytes.
                for b in bytes { c.append(byteIDs[Int(b)]); len.append(1) }
            } else if let unk = unkID {
                if let p = pending {
                    if fuseUnk { pending = (p.id, p.len + bytes.count) } else { c.append(p.id); len.append(p.len); pending = (unk, bytes.count) }
                } else {
                    pending = (unk, bytes.count)
                }
            }
        }
        if let p = pending { c.append(p.id); len.append(p.len) }
        return BPETokenizer.merge(c, len, merges)
    }
}

/// Unigram: the segmentation of highest total score (Viterbi over the bytes, candidates at
/// character boundaries), unknown characters scored min score - 10 and runs of them fused.
struct UnigramModel: Sendable {
    let pieces: [[UInt8]]
    let scores: [Double]
    let ids: [[UInt8]: Int32]
    let unkID: Int32?
    let unkScore: Double
    let maxPieceBytes: Int
    /// The longest piece starting with each byte (0: none), bounding the search at a position.
    let longestFrom: [Int]
    let byteIDs: [Int32]?

    init(_ m: JSONValue, file: String) throws {
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: field, reason: reason) }
        guard let list = m["vocab"]?.arrayValue else { throw bad("model.vocab", "missing or not an array of [piece, score]") }
        var pieces: [[UInt8]] = [], scores: [Double] = []
        for (i, e) in list.enumerated() {
            guard let pair = e.arrayValue, pair.count == 2, let p = pair[0].stringValue, let s = pair[1].doubleValue, s.isFinite else {
                throw bad("model.vocab[\(i)]", "expected [piece, score]")
            }
            pieces.append(Array(p.utf8))
            scores.append(s)
        }
        guard !pieces.isEmpty else { throw bad("model.vocab", "is empty") }
        self.pieces = pieces
        self.scores = scores
        var ids: [[UInt8]: Int32] = [:]
        for (i, p) in pieces.enumerated() { ids[p] = Int32(i) }
        self.ids = ids
        if let u = m["unk_id"], u != .null {
            guard let i = u.intValue, i >= 0, i < pieces.count else { throw bad("model.unk_id", "is not an id of the vocabulary") }
            unkID = Int32(i)
        } else {
            unkID = nil
        }
        unkScore = scores.min()! - 10
        maxPieceBytes = pieces.map(\.count).max() ?? 1
        var longest = [Int](repeating: 0, count: 256)
        for p in pieces where !p.isEmpty { longest[Int(p[0])] = max(longest[Int(p[0])], p.count) }
        longestFrom = longest
        if try BPETokenizer.bool(m["byte_fallback"], default: false, { bad("model.byte_fallback", "expected true or false") }) {
            byteIDs = (0..<256).map { b in ids[Array(String(format: "<0x%02X>", b).utf8)] ?? -1 }
        } else {
            byteIDs = nil
        }
    }

    func encode(_ s: [UInt8]) -> [Int32] {
        let n = s.count
        guard n > 0 else { return [] }
        // best[i]: (score, start, id) of the best segmentation of s[0..<i].
        var score = [Double](repeating: -.infinity, count: n + 1)
        var start = [Int](repeating: -1, count: n + 1)
        var piece = [Int32](repeating: -1, count: n + 1)
        var reached = [Bool](repeating: false, count: n + 1)
        score[0] = 0
        reached[0] = true
        var pos = 0
        while pos < n {
            let c = Self.scalarLength(s[pos])
            let here = min(n, pos + c)
            var single = false
            if reached[pos] {
                var end = pos + 1
                while end <= min(n, pos + longestFrom[Int(s[pos])]) {
                    if end == n || s[end] & 0xC0 != 0x80, let id = ids[Array(s[pos..<end])] {
                        let cand = score[pos] + scores[Int(id)]
                        if !reached[end] || cand > score[end] {
                            score[end] = cand; start[end] = pos; piece[end] = id; reached[end] = true
                        }
                        if end == here { single = true }
                    }
                    end += 1
                }
                if !single, let unk = unkID {
                    let cand = score[pos] + unkScore
                    if !reached[here] || cand > score[here] {
                        score[here] = cand; start[here] = pos; piece[here] = unk; reached[here] = true
                    }
                }
            }
            pos = here
        }
        guard reached[n] else { return [] }
        // Back from the end; runs of unknowns are fused into one string.
        var strings: [[UInt8]] = []
        var unknown: [Bool] = []
        var i = n
        while i > 0 {
            let j = start[i]
            let isUnk = piece[i] == unkID
            if isUnk, unknown.last == true {
                strings[strings.count - 1] = Array(s[j..<i]) + strings[strings.count - 1]
            } else {
                strings.append(Array(s[j..<i]))
                unknown.append(isUnk)
            }
            i = j
        }
        var out: [Int32] = []
        for str in strings.reversed() {
            if let id = ids[str] {
                out.append(id)
            } else if let byteIDs, str.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                for b in str { out.append(byteIDs[Int(b)]) }
            } else if let unk = unkID {
                out.append(unk)
            }
        }
        return out
    }

    @inline(__always) static func scalarLength(_ lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
    }
}

// MARK: - Normalizers

enum NormalizerStep: Sendable {
    case prepend([UInt8])
    case replace([UInt8], [UInt8])
    /// The regex patterns converters write: ` {2,}`, `\A +| +\z`, `\A▁`.
    case replaceRuns(minimum: Int, [UInt8])
    case trimSpaces
    case replaceLeadingMeta([UInt8])
    case strip(left: Bool, right: Bool)
    case precompiled(Charsmap)
    case nfc, nfkc, nfd, nfkd

    static let metaspace: [UInt8] = Array("\u{2581}".utf8)

    static func read(_ v: JSONValue?, field: String, file: String) throws -> [NormalizerStep] {
        guard let v, v != .null else { return [] }
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        switch v["type"]?.stringValue {
        case "Sequence":
            guard let list = v["normalizers"]?.arrayValue else { throw bad("normalizers", "missing or not an array") }
            var out: [NormalizerStep] = []
            for (i, n) in list.enumerated() { out += try read(n, field: "\(field).normalizers[\(i)]", file: file) }
            return out
        case "Prepend":
            guard let p = v["prepend"]?.stringValue else { throw bad("prepend", "missing or not a string") }
            return [.prepend(Array(p.utf8))]
        case "Replace":
            guard let content = v["content"]?.stringValue else { throw bad("content", "missing or not a string") }
            if let literal = v["pattern"]?["String"]?.stringValue {
                guard !literal.isEmpty else { throw bad("pattern", "is empty") }
                return [.replace(Array(literal.utf8), Array(content.utf8))]
            }
            guard let regex = v["pattern"]?["Regex"]?.stringValue else { throw bad("pattern", "expected {\"String\": ...} or {\"Regex\": ...}") }
            switch regex {
            case " {2,}": return [.replaceRuns(minimum: 2, Array(content.utf8))]
            case "\\A +| +\\z" where content.isEmpty: return [.trimSpaces]
            case "\\A\u{2581}": return [.replaceLeadingMeta(Array(content.utf8))]
            default:
                throw TokenizerError.unsupported(file: file, reason: "\(field) Replace regex \(BPETokenizer.quoted(regex)) is not one this tokenizer implements (' {2,}', '\\A +| +\\z', '\\A\u{2581}')")
            }
        case "Strip":
            let l = try BPETokenizer.bool(v["strip_left"], default: false) { bad("strip_left", "expected true or false") }
            let r = try BPETokenizer.bool(v["strip_right"], default: false) { bad("strip_right", "expected true or false") }
            return [.strip(left: l, right: r)]
        case "Precompiled":
            guard let b64 = v["precompiled_charsmap"]?.stringValue else { throw bad("precompiled_charsmap", "missing or not a string") }
            guard let data = Data(base64Encoded: b64) else { throw bad("precompiled_charsmap", "is not valid base64") }
            guard let map = Charsmap([UInt8](data)) else { throw bad("precompiled_charsmap", "is not a SentencePiece charsmap (trie size and strings do not fit)") }
            return [.precompiled(map)]
        case "NFC": return [.nfc]
        case "NFKC": return [.nfkc]
        case "NFD": return [.nfd]
        case "NFKD": return [.nfkd]
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(BPETokenizer.quoted(v["type"]?.stringValue ?? "without a type")) is not supported (Prepend, Replace, Strip, Precompiled, NFC, NFKC, NFD, NFKD or a Sequence of them is)")
        }
    }

    static func apply(_ steps: [NormalizerStep], to input: [UInt8]) -> [UInt8] {
        var s = input
        for step in steps { s = step.apply(s) }
        return s
    }

    func apply(_ s: [UInt8]) -> [UInt8] {
        switch self {
        case let .prepend(p): return s.isEmpty ? s : p + s
        case let .replace(pattern, content): return Self.replaceAll(s, pattern, content)
        case let .replaceRuns(minimum, content):
            var out: [UInt8] = []
            var i = 0
            while i < s.count {
                if s[i] == 0x20 {
                    var j = i
                    while j < s.count && s[j] == 0x20 { j += 1 }
                    if j - i >= minimum { out += content } else { out += s[i..<j] }
                    i = j
                } else {
                    out.append(s[i]); i += 1
                }
            }
            return out
        case .trimSpaces:
            var a = 0, b = s.count
            while a < b && s[a] == 0x20 { a += 1 }
            while b > a && s[b - 1] == 0x20 { b -= 1 }
            return Array(s[a..<b])
        case let .replaceLeadingMeta(content):
            return s.starts(with: Self.metaspace) ? content + s[Self.metaspace.count...] : s
        case let .strip(left, right):
            let scalars = Array(String(decoding: s, as: UTF8.self).unicodeScalars)
            var a = 0, b = scalars.count
            if left { while a < b, scalars[a].properties.isWhitespace { a += 1 } }
            if right { while b > a, scalars[b - 1].properties.isWhitespace { b -= 1 } }
            var out: [UInt8] = []
            for u in scalars[a..<b] { out.append(contentsOf: u.utf8) }
            return out
        case let .precompiled(map): return map.normalize(s)
        case .nfc: return Array(String(decoding: s, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        case .nfkc: return Array(String(decoding: s, as: UTF8.self).precomposedStringWithCompatibilityMapping.utf8)
        case .nfd: return Array(String(decoding: s, as: UTF8.self).decomposedStringWithCanonicalMapping.utf8)
        case .nfkd: return Array(String(decoding: s, as: UTF8.self).decomposedStringWithCompatibilityMapping.utf8)
        }
    }

    static func replaceAll(_ s: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
        guard s.count >= pattern.count else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if s[i] == pattern[0], i + pattern.count <= s.count, s[i..<(i + pattern.count)].elementsEqual(pattern) {
                out += content
                i += pattern.count
            } else {
                out.append(s[i]); i += 1
            }
        }
        return out
    }
}

/// SentencePiece's precompiled character map: a darts-clone double-array trie over UTF-8
/// keys whose values are offsets of NUL-ended replacement strings. As `tokenizers` applies
/// it: per grapheme cluster shorter than 6 bytes, the shortest matching prefix replaces the
/// whole cluster; otherwise each character by itself, kept when nothing matches.
struct Charsmap: Sendable {
    let units: [UInt32]
    let strings: [UInt8]

    init?(_ blob: [UInt8]) {
        guard blob.count > 4 else { return nil }
        let t = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard t > 0, t % 4 == 0, 4 + t <= blob.count else { return nil }
        units = (0..<(t / 4)).map { i in
            let o = 4 + 4 * i
            return UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        strings = Array(blob[(4 + t)...])
        guard String(validating: strings, as: UTF8.self) != nil else { return nil }
    }

    /// The replacement of the shortest key that is a prefix of `key`, if any.
    func lookup<C: Collection>(_ key: C) -> [UInt8]? where C.Element == UInt8 {
        guard let root = units.first else { return nil }
        var pos = Int(Self.offset(root))
        for c in key {
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0, pos < units.count else { return nil }
            let u = units[pos]
            guard u & 0x8000_00FF == UInt32(c) else { return nil }
            pos ^= Int(Self.offset(u))
            if (u >> 8) & 1 == 1 {
                guard pos >= 0, pos < units.count else { return nil }
                let value = Int(units[pos] & 0x7FFF_FFFF)
                guard value <= strings.count else { return nil }
                var end = value
                while end < strings.count && strings[end] != 0 { end += 1 }
                return Array(strings[value..<end])
            }
        }
        return nil
    }

    @inline(__always) static func offset(_ u: UInt32) -> UInt32 { (u >> 10) << ((u & 0x200) >> 6) }

    func normalize(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        for g in String(decoding: s, as: UTF8.self) {
            let bytes = Array(g.utf8)
            if bytes.count < 6, let r = lookup(bytes) {
                out += r
                continue
            }
            for u in g.unicodeScalars {
                let b = Array(String(u).utf8)
                out += lookup(b) ?? b
            }
        }
        return out
    }
}

// MARK: - Pre-tokenizers

enum SentencePiecePreStep: Sendable {
    enum Prepend: String, Sendable { case always, first, never }
    case metaspace(replacement: [Unicode.Scalar], prepend: Prepend, split: Bool)
    case whitespaceSplit
    case shared(PreTokenizerStep)

    static func read(_ v: JSONValue?, field: String, file: String) throws -> [SentencePiecePreStep] {
        guard let v, v != .null else { return [] }
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        switch v["type"]?.stringValue {
        case "Sequence":
            guard let list = v["pretokenizers"]?.arrayValue else { throw bad("pretokenizers", "missing or not an array") }
            var out: [SentencePiecePreStep] = []
            for (i, p) in list.enumerated() { out += try read(p, field: "\(field).pretokenizers[\(i)]", file: file) }
            return out
        case "Metaspace":
            return [try metaspace(v, field: field, file: file)]
        case "WhitespaceSplit":
            return [.whitespaceSplit]
        case "Split", "Digits":
            return try BPETokenizer.readPreTokenizer(v, field: field, file: file).map { .shared($0) }
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(BPETokenizer.quoted(v["type"]?.stringValue ?? "without a type")) is not supported here (Metaspace, WhitespaceSplit, Split, Digits or a Sequence of them is)")
        }
    }

    /// Metaspace's options as the library reads them (a missing prepend_scheme is "always",
    /// a missing split true; the legacy add_prefix_space false is "never").
    static func metaspace(_ v: JSONValue, field: String, file: String) throws -> SentencePiecePreStep {
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        let replacement = v["replacement"]?.stringValue ?? "\u{2581}"
        guard replacement.unicodeScalars.count == 1 else { throw bad("replacement", "must be one character") }
        var scheme = Prepend.always
        if let s = v["prepend_scheme"], s != .null {
            guard let name = s.stringValue, let p = Prepend(rawValue: name) else { throw bad("prepend_scheme", "expected always, first or never") }
            scheme = p
        } else if v["add_prefix_space"]?.boolValue == false {
            scheme = .never
        }
        let split = try BPETokenizer.bool(v["split"], default: true) { bad("split", "expected true or false") }
        return .metaspace(replacement: Array(replacement.unicodeScalars), prepend: scheme, split: split)
    }

    func apply(_ piece: [Unicode.Scalar], first: Bool, into out: inout [([Unicode.Scalar], Bool)]) {
        guard !piece.isEmpty else { return }
        switch self {
        case let .metaspace(replacement, prepend, split):
            let meta = replacement[0]
            var p = piece.map { $0 == " " ? meta : $0 }
            if prepend == .always || (prepend == .first && first), p.first != meta { p.insert(meta, at: 0) }
            guard split else { out.append((p, first)); return }
            var start = 0
            for i in 1..<max(1, p.count) where p[i] == meta {
                out.append((Array(p[start..<i]), first && start == 0))
                start = i
            }
            out.append((Array(p[start...]), first && start == 0))
        case .whitespaceSplit:
            var current: [Unicode.Scalar] = []
            var isFirst = first
            for u in piece {
                if u.properties.isWhitespace {
                    if !current.isEmpty { out.append((current, isFirst)); current = [] }
                    isFirst = false
                } else {
                    current.append(u)
                }
            }
            if !current.isEmpty { out.append((current, isFirst)) }
        case let .shared(step):
            var parts: [[Unicode.Scalar]] = []
            step.apply(piece, into: &parts)
            for (i, p) in parts.enumerated() { out.append((p, first && i == 0)) }
        }
    }
}

// MARK: - Decoders

enum DecoderStep: Sendable {
    case replace([UInt8], [UInt8])
    case byteFallback
    case fuse
    case strip(content: [UInt8], start: Int, stop: Int)
    case metaspace(replacement: [UInt8], prependScheme: SentencePiecePreStep.Prepend)

    /// nil: no decoder (tokens are joined with spaces).
    static func read(_ v: JSONValue?, field: String, file: String) throws -> [DecoderStep]? {
        guard let v, v != .null else { return nil }
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        switch v["type"]?.stringValue {
        case "Sequence":
            guard let list = v["decoders"]?.arrayValue else { throw bad("decoders", "missing or not an array") }
            var out: [DecoderStep] = []
            for (i, d) in list.enumerated() { out += try read(d, field: "\(field).decoders[\(i)]", file: file) ?? [] }
            return out
        case "Replace":
            guard let literal = v["pattern"]?["String"]?.stringValue, !literal.isEmpty, let content = v["content"]?.stringValue else {
                throw TokenizerError.unsupported(file: file, reason: "\(field) Replace is supported with a non-empty string pattern only")
            }
            return [.replace(Array(literal.utf8), Array(content.utf8))]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Strip":
            guard let content = v["content"]?.stringValue, content.unicodeScalars.count == 1 else { throw bad("content", "must be one character") }
            let start = v["start"]?.intValue ?? 0, stop = v["stop"]?.intValue ?? 0
            guard start >= 0, stop >= 0 else { throw bad("start", "start and stop must not be negative") }
            return [.strip(content: Array(content.utf8), start: start, stop: stop)]
        case "Metaspace":
            guard case let .metaspace(r, p, _) = try SentencePiecePreStep.metaspace(v, field: field, file: file) else { return [] }
            return [.metaspace(replacement: Array(String(String.UnicodeScalarView(r)).utf8), prependScheme: p)]
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(BPETokenizer.quoted(v["type"]?.stringValue ?? "without a type")) is not supported here (Replace, ByteFallback, Fuse, Strip, Metaspace or a Sequence of them is)")
        }
    }

    /// The decoder on the token strings; ByteFallback turns a run of byte tokens that is not
    /// valid UTF-8 as a whole into one U+FFFD per byte, as the library does.
    func apply(_ tokens: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case let .replace(pattern, content):
            return tokens.map { NormalizerStep.replaceAll($0, pattern, content) }
        case .fuse:
            return [tokens.flatMap { $0 }]
        case let .strip(content, start, stop):
            return tokens.map { t in
                var a = 0, b = t.count, n = 0
                while n < start, b - a >= content.count, t[a..<(a + content.count)].elementsEqual(content) { a += content.count; n += 1 }
                n = 0
                while n < stop, b - a >= content.count, t[(b - content.count)..<b].elementsEqual(content) { b -= content.count; n += 1 }
                return Array(t[a..<b])
            }
        case let .metaspace(replacement, scheme):
            return tokens.enumerated().map { i, t in
                if i == 0 && scheme != .never { return NormalizerStep.replaceAll(t, replacement, []) }
                return NormalizerStep.replaceAll(t, replacement, [0x20])
            }
        case .byteFallback:
            var out: [[UInt8]] = []
            var run: [UInt8] = []
            func flush() {
                guard !run.isEmpty else { return }
                if String(validating: run, as: UTF8.self) != nil {
                    out.append(run)
                } else {
                    out.append(Array(repeating: "\u{FFFD}", count: run.count).joined().utf8.map { $0 })
                }
                run = []
            }
            for t in tokens {
                if let b = Self.byteToken(t) { run.append(b) } else { flush(); out.append(t) }
            }
            flush()
            return out
        }
    }

    /// The byte of a `<0xNN>` token (6 bytes; either hex case; Rust's radix parse also takes
    /// a leading '+').
    static func byteToken(_ t: [UInt8]) -> UInt8? {
        guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
        return UInt8(String(decoding: t[3..<5], as: UTF8.self), radix: 16)
    }
}
