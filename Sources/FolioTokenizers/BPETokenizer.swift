import Foundation
import Folio

/// Byte-level BPE as the Hugging Face `tokenizers` library runs it from a tokenizer.json
/// (GPT-2, Llama 3, Qwen2 and their kin), with identical ids.
///
/// The pipeline is the library's: added tokens are split out of the raw text (longest match,
/// with their `single_word`/`lstrip`/`rstrip` rules), the rest is normalized (NFC or nothing),
/// normalized added tokens are split out, the pre-tokenizer cuts the text into pieces (the
/// GPT-2, Llama 3 and Qwen2 regexes, run by hand-written scanners over Unicode scalars with
/// Oniguruma's `\s`, `\p{L}` and `\p{N}`), each piece's UTF-8 bytes are mapped to the GPT-2
/// byte alphabet and merged by rank, and the post-processor's template adds special tokens.
/// Every field of the file is validated when the tokenizer is built; encoding never fails.
///
/// `truncation` and `padding` in the file are ignored, as transformers does for generation.
public final class BPETokenizer: TextTokenizer, @unchecked Sendable {
    /// Model vocabulary by the UTF-8 bytes of the token (not `String`: Swift compares strings
    /// by canonical equivalence, and "é" and "e\u{301}" are distinct tokens).
    let vocab: [[UInt8]: Int32]
    /// Merge ranks: key `a << 32 | b` (token ids), value `rank << 32 | merged id`.
    let merges: [UInt64: UInt64]
    /// Ids of the one-scalar tokens below U+0180 (the byte alphabet lives there), -1 if none.
    let scalarIDs: [Int32]
    let ignoreMerges: Bool
    let unkID: Int32?
    let fuseUnk: Bool
    let nfc: Bool
    let preTokenizer: [PreTokenizerStep]
    let added: AddedVocabulary
    /// TemplateProcessing steps of the post-processor, applied in order when special tokens
    /// are asked for.
    let templates: [[TemplatePiece]]
    /// Decoded bytes of every id (added tokens first, as the library looks them up).
    let decodeTable: [Int32: DecodedToken]
    /// Token ids by content, added tokens first.
    let tokenIDs: [[UInt8]: Int32]

    /// One more than the largest id of the vocabulary and the added tokens.
    public let vocabSize: Int
    /// The id the post-processor's template puts before the text, if it puts one there.
    public let bosID: Int32?

    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]
    static let cacheCapacity = 10_000
    static let cachedPieceBytes = 256

    // MARK: Reading tokenizer.json

    /// Reads a tokenizer.json whose model is byte-level BPE.
    /// - Parameters:
    ///   - json: the file's bytes.
    ///   - file: the file's name, for error messages.
    /// - Throws: `TokenizerError` naming the file and the field for invalid JSON, a model
    ///   that is not BPE, components this reader does not implement, and malformed or
    ///   inconsistent fields (ids out of range, merges of unknown tokens).
    public init(json: [UInt8], file: String) throws {
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: field, reason: reason) }
        func unsupported(_ reason: String) -> TokenizerError { .unsupported(file: file, reason: reason) }
        let doc: JSONValue
        do { doc = try JSONParser.parse(json) } catch { throw unsupported("not valid JSON: \(error)") }
        guard doc.objectValue != nil else { throw unsupported("not a tokenizer.json: the document is not a JSON object") }
        guard let model = doc["model"], model.objectValue != nil else { throw bad("model", "missing or not an object") }
        guard let type = model["type"]?.stringValue, type == "BPE" else {
            throw unsupported("tokenizer model is \(Self.quoted(model["type"]?.stringValue ?? "missing")), not BPE")
        }

        // Model options this reader implements.
        if let d = model["dropout"], d != .null, d.doubleValue != 0 {
            throw unsupported("BPE dropout \(Self.brief(d)) is not supported (null or 0 is)")
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[field], v != .null, v.stringValue != "" {
                throw unsupported("BPE \(field) \(Self.brief(v)) is not supported (null or empty is)")
            }
        }
        if try Self.bool(model["byte_fallback"], default: false, { bad("model.byte_fallback", "expected true or false") }) {
            throw unsupported("BPE byte_fallback is not supported (byte-level BPE needs none)")
        }
        ignoreMerges = try Self.bool(model["ignore_merges"], default: false) { bad("model.ignore_merges", "expected true or false") }
        fuseUnk = try Self.bool(model["fuse_unk"], default: false) { bad("model.fuse_unk", "expected true or false") }

        // Vocabulary.
        guard let vocabMembers = model["vocab"]?.objectValue else { throw bad("model.vocab", "missing or not an object") }
        var vocab: [[UInt8]: Int32] = [:]
        vocab.reserveCapacity(vocabMembers.count)
        var tokenByID: [Int32: [UInt8]] = [:]
        tokenByID.reserveCapacity(vocabMembers.count)
        for (token, value) in vocabMembers {
            guard let i = value.intValue, i < Int(Int32.max) else {
                throw bad("model.vocab", "token \(Self.quoted(token)) has id \(Self.brief(value)), expected an integer from 0 to \(Int32.max - 1)")
            }
            let bytes = Array(token.utf8)
            let id = Int32(i)
            if let other = tokenByID[id] {
                throw bad("model.vocab", "tokens \(Self.quoted(String(decoding: other, as: UTF8.self))) and \(Self.quoted(token)) both have id \(id)")
            }
            tokenByID[id] = bytes
            vocab[bytes] = id
        }
        self.vocab = vocab
        var scalarIDs = [Int32](repeating: -1, count: 0x180)
        for v in 0..<scalarIDs.count {
            if let u = Unicode.Scalar(v), let id = vocab[Array(String(u).utf8)] { scalarIDs[v] = id }
        }
        self.scalarIDs = scalarIDs

        if let u = model["unk_token"], u != .null {
            guard let s = u.stringValue else { throw bad("model.unk_token", "expected a string or null") }
            guard let id = vocab[Array(s.utf8)] else { throw bad("model.unk_token", "\(Self.quoted(s)) is not in the vocabulary") }
            unkID = id
        } else {
            unkID = nil
        }

        // Merges, in either form: ["a b", ...] ("#version" lines skipped, as in merges.txt) or
        // [["a", "b"], ...]. The rank is the position.
        guard let mergeList = model["merges"]?.arrayValue else { throw bad("model.merges", "missing or not an array") }
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(mergeList.count)
        var rank: UInt64 = 0
        for (index, m) in mergeList.enumerated() {
            let field = "model.merges[\(index)]"
            let left: [UInt8], right: [UInt8]
            if let line = m.stringValue {
                if line.utf8.starts(with: "#version".utf8) { continue }  // bytes, as Rust compares
                let parts = line.utf8.split(separator: 0x20, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw bad(field, "\(Self.quoted(line)) is not two tokens separated by one space") }
                left = Array(parts[0])
                right = Array(parts[1])
            } else if let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                left = Array(a.utf8)
                right = Array(b.utf8)
            } else {
                throw bad(field, "expected \"a b\" or [\"a\", \"b\"]")
            }
            func name(_ b: [UInt8]) -> String { Self.quoted(String(decoding: b, as: UTF8.self)) }
            guard let a = vocab[left] else { throw bad(field, "token \(name(left)) is not in the vocabulary") }
            guard let b = vocab[right] else { throw bad(field, "token \(name(right)) is not in the vocabulary") }
            guard let ab = vocab[left + right] else { throw bad(field, "the merged token \(name(left + right)) is not in the vocabulary") }
            // As the library's map is built: a repeated pair keeps its last rank.
            merges[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] = rank << 32 | UInt64(UInt32(ab))
            rank += 1
        }
        self.merges = merges

        // Normalizer.
        let nfc = try Self.readNormalizer(doc["normalizer"], field: "normalizer", file: file)
        self.nfc = nfc

        // Pre-tokenizer.
        preTokenizer = try Self.readPreTokenizer(doc["pre_tokenizer"], field: "pre_tokenizer", file: file)

        // Added tokens, with the ids the library gives them (the file's "id" is not used:
        // a token already in the vocabulary keeps its id, others follow the vocabulary).
        let addedTokens = try AddedToken.readList(doc["added_tokens"], file: file)
        let added = try AddedVocabulary(addedTokens, vocab: vocab, normalize: { nfc ? Normalizer.nfc($0) : $0 }, file: file)
        self.added = added

        // Post-processor.
        let templates = try Self.readPostProcessor(doc["post_processor"], field: "post_processor", file: file)
        self.templates = templates
        bosID = Self.leadingID(templates)

        // Decoder.
        try Self.checkDecoder(doc["decoder"], field: "decoder", file: file)

        // Tables for decoding and lookups.
        var table: [Int32: DecodedToken] = [:]
        table.reserveCapacity(tokenByID.count + added.contentByID.count)
        var maxID: Int32 = -1
        for (id, token) in tokenByID {
            table[id] = DecodedToken(bytes: ByteLevel.decode(token), special: added.specialContents.contains(token))
            maxID = max(maxID, id)
        }
        for (id, token) in added.contentByID {
            table[id] = DecodedToken(bytes: ByteLevel.decode(token), special: added.specialContents.contains(token))
            maxID = max(maxID, id)
        }
        decodeTable = table
        var ids = vocab
        for (content, id) in added.idByContent { ids[content] = id }
        tokenIDs = ids
        vocabSize = Int(maxID) + 1
    }

    // MARK: Public API

    /// Token ids of `text`.
    /// - Parameters:
    ///   - text: the text; special tokens written in it are recognized as tokens.
    ///   - addSpecialTokens: apply the post-processor's template (Llama 3's BOS, for one).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int32] {
        var ids: [Int32] = []
        let bytes = Array(text.utf8)
        for segment in added.split(bytes, normalizedTokens: false) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(range):
                var normalized = Array(bytes[range])
                if nfc { normalized = Normalizer.nfc(normalized) }
                for inner in added.split(normalized, normalizedTokens: true) {
                    switch inner {
                    case let .token(id): ids.append(id)
                    case let .text(r): encodeText(normalized[r], into: &ids)
                    }
                }
            }
        }
        return addSpecialTokens ? withSpecialTokens(ids) : ids
    }

    public func withSpecialTokens(_ ids: [Int32]) -> [Int32] { Self.apply(templates, to: ids) }

    /// The text of `ids` as the library decodes it: each token's bytes (the byte alphabet
    /// mapped back), then UTF-8 with invalid sequences replaced by U+FFFD. Unknown ids are
    /// skipped.
    /// - Parameter skipSpecialTokens: leave out special added tokens.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    /// The bytes `decode` turns into text (UTF-8, possibly ending inside a character).
    public func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        for id in ids {
            guard let t = decodeTable[id], !(skipSpecialTokens && t.special) else { continue }
            bytes += t.bytes
        }
        return bytes
    }

    /// The bytes of one token, for printing text as it is generated (a character may span
    /// tokens: the caller buffers incomplete UTF-8). Empty for an unknown id.
    public func tokenBytes(_ id: Int32) -> [UInt8] { decodeTable[id]?.bytes ?? [] }

    /// The id of a token given as it is written in tokenizer.json (byte-level alphabet for
    /// vocabulary tokens, e.g. "Ġthe"), added tokens first.
    public func id(of token: String) -> Int32? { tokenIDs[Array(token.utf8)] }

    // MARK: Encoding

    /// Pre-tokenizes normalized text and runs BPE on every piece.
    func encodeText(_ bytes: ArraySlice<UInt8>, into ids: inout [Int32]) {
        guard !bytes.isEmpty else { return }
        var pieces = [Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)]
        for step in preTokenizer {
            var next: [[Unicode.Scalar]] = []
            for p in pieces { step.apply(p, into: &next) }
            pieces = next
        }
        for p in pieces where !p.isEmpty { bpe(p, into: &ids) }
    }

    /// The BPE model on one piece: the whole piece if it is a token and `ignore_merges` is set,
    /// else its characters merged pair by pair, lowest rank first (leftmost on ties).
    func bpe(_ piece: [Unicode.Scalar], into ids: inout [Int32]) {
        var key: [UInt8] = []
        key.reserveCapacity(piece.count * 2)
        for u in piece { Normalizer.appendUTF8(u, to: &key) }
        if ignoreMerges, let id = vocab[key] {
            ids.append(id)
            return
        }
        let cacheable = key.count < Self.cachedPieceBytes
        if cacheable {
            cacheLock.lock()
            let hit = cache[key]
            cacheLock.unlock()
            if let hit { ids += hit; return }
        }
        let result = mergeWord(piece)
        ids += result
        if cacheable {
            cacheLock.lock()
            if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[key] = result
            cacheLock.unlock()
        }
    }

    /// The library's `merge_word` and `merge_all`: symbols in a linked list, candidate merges
    /// in a min-heap by (rank, position), stale entries skipped when popped.
    func mergeWord(_ piece: [Unicode.Scalar]) -> [Int32] {
        var c: [Int32] = []
        var len: [Int] = []
        c.reserveCapacity(piece.count)
        len.reserveCapacity(piece.count)
        var pendingUnk: (id: Int32, len: Int)? = nil
        for u in piece {
            let byteLen = u.utf8.count
            var id: Int32 = -1
            if Int(u.value) < scalarIDs.count {
                id = scalarIDs[Int(u.value)]
            } else if let v = vocab[Array(String(u).utf8)] {
                id = v
            }
            if id >= 0 {
                if let p = pendingUnk { c.append(p.id); len.append(p.len); pendingUnk = nil }
                c.append(id)
                len.append(byteLen)
            } else if let unk = unkID {
                // A character outside the vocabulary: the unknown token (runs fused if asked).
                if let p = pendingUnk {
                    if fuseUnk {
                        pendingUnk = (p.id, p.len + byteLen)
                    } else {
                        c.append(p.id); len.append(p.len)
                        pendingUnk = (unk, byteLen)
                    }
                } else {
                    pendingUnk = (unk, byteLen)
                }
            }
            // With no unknown token the library drops the character.
        }
        if let p = pendingUnk { c.append(p.id); len.append(p.len) }
        return Self.merge(c, len, merges)
    }

    /// Merges adjacent symbols (ids, with their byte lengths) pair by pair, lowest rank first
    /// (leftmost on ties), as the library's `merge_all` does.
    static func merge(_ symbols: [Int32], _ lengths: [Int], _ merges: [UInt64: UInt64]) -> [Int32] {
        var c = symbols, len = lengths
        let n = c.count
        guard n > 1 else { return c }
        var prev = [Int](repeating: 0, count: n)
        var next = [Int](repeating: 0, count: n)
        for i in 0..<n { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1 }

        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(c[i], c[i + 1])] { heap.push(MergeCandidate(m, pos: i)) }
        }
        while let top = heap.pop() {
            let pos = top.pos
            if len[pos] == 0 { continue }
            let nextPos = next[pos]
            if nextPos == -1 { continue }
            guard let m = merges[Self.pairKey(c[pos], c[nextPos])], Int32(truncatingIfNeeded: m) == top.newID else { continue }
            c[pos] = top.newID
            len[pos] += len[nextPos]
            next[pos] = next[nextPos]
            len[nextPos] = 0
            if next[pos] >= 0 { prev[next[pos]] = pos }
            if prev[pos] >= 0, let m = merges[Self.pairKey(c[prev[pos]], c[pos])] {
                heap.push(MergeCandidate(m, pos: prev[pos]))
            }
            if next[pos] >= 0, let m = merges[Self.pairKey(c[pos], c[next[pos]])] {
                heap.push(MergeCandidate(m, pos: pos))
            }
        }
        // A merge keeps the left symbol's slot, so the survivors are in order.
        var out: [Int32] = []
        for i in 0..<n where len[i] != 0 { out.append(c[i]) }
        return out
    }

    @inline(__always) static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The post-processor's templates applied in order (the last outermost).
    static func apply(_ templates: [[TemplatePiece]], to ids: [Int32]) -> [Int32] {
        var out = ids
        for t in templates { out = apply(t, to: out) }
        return out
    }

    static func apply(_ template: [TemplatePiece], to ids: [Int32]) -> [Int32] {
        var out: [Int32] = []
        for piece in template {
            switch piece {
            case let .special(_, pieceIDs): out += pieceIDs
            case .sequence: out += ids
            }
        }
        return out
    }

    /// The first id the templates put before the text, if any.
    static func leadingID(_ templates: [[TemplatePiece]]) -> Int32? {
        // The template applied last is outermost; when it starts with the text, look inside.
        outer: for t in templates.reversed() {
            for piece in t {
                switch piece {
                case let .special(_, ids): if let first = ids.first { return first }
                case .sequence: continue outer
                }
            }
            return nil
        }
        return nil
    }

    // MARK: Reading the components

    static func bool(_ v: JSONValue?, default d: Bool, _ err: () -> TokenizerError) throws -> Bool {
        guard let v, v != .null else { return d }
        guard let b = v.boolValue else { throw err() }
        return b
    }

    /// A JSON value for a one-line message, cut at 60 characters.
    static func brief(_ v: JSONValue) -> String {
        let text = v.serialized()
        return text.unicodeScalars.count > 60 ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(60))) + "..." : text
    }

    /// A string for a one-line message: quoted, control characters escaped, cut at 120.
    static func quoted(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars.prefix(120) {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "'": out += "\\'"
            default:
                if u.value < 0x20 || u.value == 0x7F || u.properties.generalCategory == .lineSeparator
                    || u.properties.generalCategory == .paragraphSeparator || u.value == 0x85 {
                    out += "\\u{\(String(u.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return "'" + out + (s.unicodeScalars.count > 120 ? "...'" : "'")
    }

    /// True for NFC, false for none; anything else is refused.
    static func readNormalizer(_ v: JSONValue?, field: String, file: String) throws -> Bool {
        guard let v, v != .null else { return false }
        switch v["type"]?.stringValue {
        case "NFC": return true
        case "Sequence":
            guard let list = v["normalizers"]?.arrayValue else {
                throw TokenizerError.badConfig(file: file, field: "\(field).normalizers", reason: "missing or not an array")
            }
            var any = false
            for (i, n) in list.enumerated() {
                if try readNormalizer(n, field: "\(field).normalizers[\(i)]", file: file) { any = true }
            }
            return any
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(quoted(v["type"]?.stringValue ?? "without a type")) is not supported (NFC or none is)")
        }
    }

    static func readPreTokenizer(_ v: JSONValue?, field: String, file: String) throws -> [PreTokenizerStep] {
        guard let v, v != .null else { return [] }
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        func flag(_ name: String, _ d: Bool) throws -> Bool { try bool(v[name], default: d) { bad(name, "expected true or false") } }
        switch v["type"]?.stringValue {
        case "Sequence":
            guard let list = v["pretokenizers"]?.arrayValue else { throw bad("pretokenizers", "missing or not an array") }
            var steps: [PreTokenizerStep] = []
            for (i, p) in list.enumerated() { steps += try readPreTokenizer(p, field: "\(field).pretokenizers[\(i)]", file: file) }
            return steps
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try flag("add_prefix_space", true), useRegex: try flag("use_regex", true))]
        case "Digits":
            return [.digits(individual: try flag("individual_digits", false))]
        case "Split":
            let pattern: SplitPattern
            if let regex = v["pattern"]?["Regex"]?.stringValue {
                // Byte for byte (String's == is canonical equivalence).
                guard let known = KnownPattern.allCases.first(where: { $0.source.utf8.elementsEqual(regex.utf8) }) else {
                    throw TokenizerError.unsupported(file: file, reason: "\(field) Split regex \(quoted(regex)) is not one of the GPT-2, Llama 3 or Qwen2 patterns this tokenizer implements")
                }
                pattern = .regex(known)
            } else if let literal = v["pattern"]?["String"]?.stringValue {
                pattern = .literal(Array(literal.unicodeScalars))
            } else {
                throw bad("pattern", "expected {\"Regex\": ...} or {\"String\": ...}")
            }
            guard let name = v["behavior"]?.stringValue, let behavior = SplitBehavior(rawValue: name) else {
                throw bad("behavior", "expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
            }
            return [.split(pattern, behavior, invert: try flag("invert", false))]
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(quoted(v["type"]?.stringValue ?? "without a type")) is not supported (ByteLevel, Split, Digits or a Sequence of them is)")
        }
    }

    static func readPostProcessor(_ v: JSONValue?, field: String, file: String) throws -> [[TemplatePiece]] {
        guard let v, v != .null else { return [] }
        func bad(_ f: String, _ r: String) -> TokenizerError { .badConfig(file: file, field: "\(field).\(f)", reason: r) }
        switch v["type"]?.stringValue {
        case "ByteLevel":
            return []  // offsets only
        case "Sequence":
            guard let list = v["processors"]?.arrayValue else { throw bad("processors", "missing or not an array") }
            var out: [[TemplatePiece]] = []
            for (i, p) in list.enumerated() { out += try readPostProcessor(p, field: "\(field).processors[\(i)]", file: file) }
            return out
        case "RobertaProcessing", "BertProcessing":
            // cls $A sep, each given as [token, id].
            func pair(_ key: String) throws -> TemplatePiece {
                guard let p = v[key]?.arrayValue, p.count == 2, let name = p[0].stringValue, let id = p[1].intValue, id >= 0, id < Int(Int32.max) else {
                    throw bad(key, "expected [token, id]")
                }
                return .special(name, [Int32(id)])
            }
            return [[try pair("cls"), .sequence, try pair("sep")]]
        case "TemplateProcessing":
            guard let single = v["single"]?.arrayValue else { throw bad("single", "missing or not an array") }
            var pieces: [TemplatePiece] = []
            for (i, p) in single.enumerated() {
                if let s = p["Sequence"] {
                    guard s["id"]?.stringValue == "A" else { throw bad("single[\(i)].Sequence.id", "expected \"A\" in the single-sequence template") }
                    pieces.append(.sequence)
                } else if let name = p["SpecialToken"]?["id"]?.stringValue {
                    guard let entry = v["special_tokens"]?[name] else { throw bad("special_tokens", "has no entry for \(quoted(name)), which the template uses") }
                    let idsField = "special_tokens[\(quoted(name))].ids"
                    guard let list = entry["ids"]?.arrayValue else { throw bad(idsField, "missing or not an array") }
                    var ids: [Int32] = []
                    for id in list {
                        guard let i = id.intValue, i < Int(Int32.max) else {
                            throw bad(idsField, "\(brief(id)) is not a token id from 0 to \(Int32.max - 1)")
                        }
                        ids.append(Int32(i))
                    }
                    pieces.append(.special(name, ids))
                } else {
                    throw bad("single[\(i)]", "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
                }
            }
            return [pieces]
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(quoted(v["type"]?.stringValue ?? "without a type")) is not supported (ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing or a Sequence of them is)")
        }
    }

    static func checkDecoder(_ v: JSONValue?, field: String, file: String) throws {
        guard let v, v != .null else {
            throw TokenizerError.unsupported(file: file, reason: "\(field) is missing; byte-level BPE needs the ByteLevel decoder")
        }
        switch v["type"]?.stringValue {
        case "ByteLevel": return
        case "Sequence":
            // A sequence of the one ByteLevel decoder decodes as ByteLevel.
            if let list = v["decoders"]?.arrayValue, list.count == 1 {
                try checkDecoder(list[0], field: "\(field).decoders[0]", file: file)
                return
            }
            fallthrough
        default:
            throw TokenizerError.unsupported(file: file, reason: "\(field) \(quoted(v["type"]?.stringValue ?? "without a type")) is not supported (ByteLevel is)")
        }
    }
}

// MARK: - Pieces of the pipeline

struct DecodedToken: Sendable {
    let bytes: [UInt8]
    let special: Bool
}

enum TemplatePiece: Sendable {
    case special(String, [Int32])
    case sequence
}

enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

enum SplitPattern: Sendable {
    case regex(KnownPattern)
    case literal([Unicode.Scalar])
}

/// One pre-tokenizer of the chain. Each maps a piece to pieces (empty ones dropped, as the
/// library drops them).
enum PreTokenizerStep: Sendable {
    case split(SplitPattern, SplitBehavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case digits(individual: Bool)

    func apply(_ piece: [Unicode.Scalar], into out: inout [[Unicode.Scalar]]) {
        guard !piece.isEmpty else { return }
        switch self {
        case let .split(pattern, behavior, invert):
            var matches: [(Range<Int>, Bool)]
            switch pattern {
            case let .regex(p): matches = p.matches(piece)
            case let .literal(l): matches = Self.literalMatches(l, in: piece)
            }
            if invert { matches = matches.map { ($0.0, !$0.1) } }
            Self.split(piece, matches, behavior, into: &out)
        case let .digits(individual):
            Self.split(piece, Self.numericMatches(piece), individual ? .isolated : .contiguous, into: &out)
        case let .byteLevel(addPrefixSpace, useRegex):
            var p = piece
            if addPrefixSpace && p.first != " " { p.insert(" ", at: 0) }
            if useRegex {
                var parts: [[Unicode.Scalar]] = []
                Self.split(p, KnownPattern.gpt2.matches(p), .isolated, into: &parts)
                for part in parts { out.append(ByteLevel.map(part)) }
            } else {
                out.append(ByteLevel.map(p))
            }
        }
    }

    /// The library's `split` behaviours over matches that cover the piece.
    static func split(_ s: [Unicode.Scalar], _ matches: [(Range<Int>, Bool)], _ behavior: SplitBehavior,
                      into out: inout [[Unicode.Scalar]]) {
        var ranges: [Range<Int>] = []
        switch behavior {
        case .isolated:
            ranges = matches.map(\.0)
        case .removed:
            ranges = matches.filter { !$0.1 }.map(\.0)
        case .contiguous:
            var previous = false
            for (r, isMatch) in matches {
                if isMatch == previous, let last = ranges.last { ranges[ranges.count - 1] = last.lowerBound..<r.upperBound }
                else { ranges.append(r) }
                previous = isMatch
            }
        case .mergedWithPrevious:
            var previous = false
            for (r, isMatch) in matches {
                if isMatch && !previous, let last = ranges.last { ranges[ranges.count - 1] = last.lowerBound..<r.upperBound }
                else { ranges.append(r) }
                previous = isMatch
            }
        case .mergedWithNext:
            var previous = false
            for (r, isMatch) in matches.reversed() {
                if isMatch && !previous, let last = ranges.last { ranges[ranges.count - 1] = r.lowerBound..<last.upperBound }
                else { ranges.append(r) }
                previous = isMatch
            }
            ranges.reverse()
        }
        for r in ranges where !r.isEmpty { out.append(Array(s[r])) }
    }

    static func literalMatches(_ literal: [Unicode.Scalar], in s: [Unicode.Scalar]) -> [(Range<Int>, Bool)] {
        if literal.isEmpty {
            // The library runs a literal as an escaped regex; the empty one matches (empty)
            // before and after every character.
            var out: [(Range<Int>, Bool)] = [(0..<0, true)]
            for i in s.indices { out += [(i..<(i + 1), false), ((i + 1)..<(i + 1), true)] }
            return out
        }
        var out: [(Range<Int>, Bool)] = []
        var prev = 0, i = 0
        while i + literal.count <= s.count {
            if s[i] == literal[0] && s[i..<(i + literal.count)].elementsEqual(literal) {
                if prev < i { out.append((prev..<i, false)) }
                out.append((i..<(i + literal.count), true))
                i += literal.count
                prev = i
            } else {
                i += 1
            }
        }
        if prev < s.count { out.append((prev..<s.count, false)) }
        return out
    }

    /// Every numeric character (Rust's `char::is_numeric`: Nd, Nl, No) a match of its own.
    static func numericMatches(_ s: [Unicode.Scalar]) -> [(Range<Int>, Bool)] {
        var out: [(Range<Int>, Bool)] = []
        var prev = 0
        for i in s.indices where CharClass.of(s[i]) == .number {
            if prev < i { out.append((prev..<i, false)) }
            out.append((i..<(i + 1), true))
            prev = i + 1
        }
        if prev < s.count { out.append((prev..<s.count, false)) }
        return out
    }
}

// MARK: - The known split regexes

/// Character classes as Oniguruma (the library's regex engine) defines them in Unicode mode:
/// `\p{L}` (Lu Ll Lt Lm Lo), `\p{N}` (Nd Nl No), `\s` (U+0009-000D, U+0085, Zs, Zl, Zp).
enum CharClass: Equatable {
    case letter, number, space, other

    static let ascii: [CharClass] = (0..<128).map { v in
        switch v {
        case 0x41...0x5A, 0x61...0x7A: return .letter
        case 0x30...0x39: return .number
        case 0x09...0x0D, 0x20: return .space
        default: return .other
        }
    }

    @inline(__always) static func of(_ u: Unicode.Scalar) -> CharClass {
        if u.value < 128 { return ascii[Int(u.value)] }
        if u.value == 0x85 { return .space }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return .space
        default: return .other
        }
    }
}

/// The three pre-tokenizer regexes in the wild, as hand-written scanners with the regex's
/// leftmost-first alternation and backtracking.
enum KnownPattern: CaseIterable, Sendable {
    case gpt2, llama3, qwen2

    var source: String {
        switch self {
        case .gpt2: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// Matches and the gaps between them, covering `s`, as the library's `find_matches`.
    func matches(_ s: [Unicode.Scalar]) -> [(Range<Int>, Bool)] {
        guard !s.isEmpty else { return [(0..<0, false)] }
        let classes = s.map(CharClass.of)
        var out: [(Range<Int>, Bool)] = []
        out.reserveCapacity(s.count / 3 + 1)
        var prev = 0, i = 0
        while i < s.count {
            if let end = matchEnd(s, classes, i), end > i {
                if prev < i { out.append((prev..<i, false)) }
                out.append((i..<end, true))
                prev = end
                i = end
            } else {
                i += 1
            }
        }
        if prev < s.count { out.append((prev..<s.count, false)) }
        return out
    }

    /// The end of the match starting at `i`, if the pattern matches there.
    func matchEnd(_ s: [Unicode.Scalar], _ k: [CharClass], _ i: Int) -> Int? {
        let n = s.count
        func run(_ from: Int, _ cls: CharClass) -> Int {
            var j = from
            while j < n && k[j] == cls { j += 1 }
            return j
        }
        let c = s[i]
        // Contractions: 's 't 're 've 'm 'll 'd (case-insensitive for Llama 3 and Qwen2, with
        // Unicode case folding: U+017F LONG S folds to s).
        if c == "'" && i + 1 < n {
            let fold = self != .gpt2
            func lower(_ u: Unicode.Scalar) -> Unicode.Scalar {
                guard fold else { return u }
                if u.value >= 0x41 && u.value <= 0x5A { return Unicode.Scalar(u.value + 0x20)! }
                if u.value == 0x17F { return "s" }
                return u
            }
            let d = lower(s[i + 1])
            if d == "s" || d == "t" || d == "m" || d == "d" { return i + 2 }
            if i + 2 < n {
                let e = lower(s[i + 2])
                if (d == "r" || d == "v") && e == "e" { return i + 3 }
                if d == "l" && e == "l" { return i + 3 }
            }
        }
        switch self {
        case .gpt2:
            // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
            let start = c == " " ? i + 1 : i
            if start < n && k[start] != .space { return run(start, k[start]) }
        case .llama3, .qwen2:
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if k[i] == .letter { return run(i, .letter) }
            if c != "\r" && c != "\n" && k[i] != .number && i + 1 < n && k[i + 1] == .letter { return run(i + 1, .letter) }
            // \p{N}{1,3} or \p{N}
            if k[i] == .number { return min(run(i, .number), i + (self == .llama3 ? 3 : 1)) }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let start = c == " " ? i + 1 : i
            if start < n && k[start] == .other {
                var j = run(start, .other)
                while j < n && (s[j] == "\r" || s[j] == "\n") { j += 1 }
                return j
            }
            // \s*[\r\n]+ : the whitespace run up to its last line break.
            if k[i] == .space {
                let end = run(i, .space)
                var last = end - 1
                while last >= i && s[last] != "\r" && s[last] != "\n" { last -= 1 }
                if last >= i { return last + 1 }
            }
        }
        // \s+(?!\S) then \s+ : a whitespace run, less its last character when text follows.
        if k[i] == .space {
            let end = run(i, .space)
            if end == n || end - i < 2 { return end }
            return end - 1
        }
        return nil
    }
}

// MARK: - Byte-level alphabet

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the other 68 are
/// shifted to U+0100 and up, so every byte is a visible character.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }()

    /// Byte of each alphabet character (index: scalar value below 0x144), -1 elsewhere.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, u) in byteToScalar.enumerated() { table[Int(u.value)] = Int16(b) }
        return table
    }()

    static func map(_ piece: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(piece.count)
        for u in piece {
            if u.value < 0x80 {
                out.append(byteToScalar[Int(u.value)])
            } else {
                for b in u.utf8 { out.append(byteToScalar[Int(b)]) }
            }
        }
        return out
    }

    /// A token's bytes as the ByteLevel decoder gives them: the alphabet mapped back when
    /// every character is in it, else the token's own UTF-8 (added tokens like "<|eot_id|>").
    static func decode(_ token: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        for u in String(decoding: token, as: UTF8.self).unicodeScalars {
            guard u.value < 0x144, scalarToByte[Int(u.value)] >= 0 else { return token }
            out.append(UInt8(scalarToByte[Int(u.value)]))
        }
        return out
    }
}

// MARK: - Normalizer

enum Normalizer {
    /// Unicode NFC of UTF-8 text.
    static func nfc(_ bytes: [UInt8]) -> [UInt8] {
        // Below U+0300 nothing composes or reorders.
        if bytes.allSatisfy({ $0 < 0xCC }) { return bytes }
        return Array(String(decoding: bytes, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
    }

    @inline(__always) static func appendUTF8(_ u: Unicode.Scalar, to out: inout [UInt8]) {
        if u.value < 0x80 { out.append(UInt8(u.value)) } else { out.append(contentsOf: u.utf8) }
    }
}

// MARK: - Added tokens

struct AddedToken: Hashable, Sendable {
    let content: [UInt8]
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
    let special: Bool

    /// tokenizer.json's `added_tokens` (absent or null: none), with the library's defaults
    /// (normalized true, the other flags false).
    static func readList(_ list: JSONValue?, file: String) throws -> [AddedToken] {
        func bad(_ field: String, _ reason: String) -> TokenizerError { .badConfig(file: file, field: field, reason: reason) }
        guard let list, list != .null else { return [] }
        guard let items = list.arrayValue else { throw bad("added_tokens", "expected an array") }
        return try items.enumerated().map { i, item in
            let field = "added_tokens[\(i)]"
            guard item.objectValue != nil, let content = item["content"]?.stringValue else {
                throw bad(field, "expected an object with a string 'content'")
            }
            func flag(_ name: String, _ d: Bool) throws -> Bool {
                try BPETokenizer.bool(item[name], default: d) { bad("\(field).\(name)", "expected true or false") }
            }
            return AddedToken(content: Array(content.utf8), singleWord: try flag("single_word", false),
                              lstrip: try flag("lstrip", false), rstrip: try flag("rstrip", false),
                              normalized: try flag("normalized", true), special: try flag("special", false))
        }
    }
}

/// The library's `AddedVocabulary`: ids given as `add_tokens` gives them, and the two
/// matchers (raw text, normalized text) with leftmost-longest matching.
struct AddedVocabulary: Sendable {
    enum Segment { case token(Int32), text(Range<Int>) }

    let idByContent: [[UInt8]: Int32]
    let contentByID: [Int32: [UInt8]]
    let tokenByID: [Int32: AddedToken]
    let specialContents: Set<[UInt8]>
    /// Patterns by first byte, longest first: (pattern bytes, id).
    let raw: [[([UInt8], Int32)]]
    let normalizedPatterns: [[([UInt8], Int32)]]
    let hasRaw: Bool
    let hasNormalized: Bool

    /// `normalize` maps a normalized token's content to the pattern it is found by (the
    /// normalizer's output for it, as the library's normalized cache holds).
    init(_ tokens: [AddedToken], vocab: [[UInt8]: Int32], modelSize: Int? = nil, normalize: ([UInt8]) -> [UInt8], file: String) throws {
        var specialList: [AddedToken] = []
        var specialSet = Set<[UInt8]>()
        for t in tokens where t.special && !t.content.isEmpty && !specialSet.contains(t.content) {
            specialList.append(t)
            specialSet.insert(t.content)
        }
        var idByContent: [[UInt8]: Int32] = [:]
        var tokenByID: [Int32: AddedToken] = [:]
        var seen = Set<AddedToken>()
        var classic: [AddedToken] = []
        var maxAdded: Int? = nil
        // The library numbers added tokens after the model's vocabulary size (a Unigram list
        // with a repeated piece has more ids than distinct pieces).
        let vocabCount = modelSize ?? vocab.count
        for (i, t) in tokens.enumerated() {
            if t.content.isEmpty || seen.contains(t) { continue }
            let id: Int
            if let existing = idByContent[t.content] ?? vocab[t.content] {
                id = Int(existing)
            } else if let m = maxAdded {
                id = (m >= vocabCount || vocabCount == 0) ? m + 1 : vocabCount
            } else {
                id = vocabCount
            }
            guard id < Int(Int32.max) else {
                throw TokenizerError.badConfig(file: file, field: "added_tokens[\(i)]", reason: "its id would be \(id), beyond \(Int32.max - 1)")
            }
            maxAdded = max(maxAdded ?? id, id)
            if let old = tokenByID[Int32(id)] { seen.remove(old) }
            idByContent[t.content] = Int32(id)
            tokenByID[Int32(id)] = t
            seen.insert(t)
            if !specialSet.contains(t.content) { classic.append(t) }
        }
        self.idByContent = idByContent
        self.tokenByID = tokenByID
        var contentByID: [Int32: [UInt8]] = [:]
        for (id, t) in tokenByID { contentByID[id] = t.content }
        self.contentByID = contentByID
        specialContents = specialSet

        var raw = [[([UInt8], Int32)]](repeating: [], count: 256)
        var normalized = [[([UInt8], Int32)]](repeating: [], count: 256)
        var hasRaw = false, hasNormalized = false
        for t in specialList + classic {
            guard let id = idByContent[t.content] else { continue }
            if t.normalized {
                let pattern = normalize(t.content)
                guard let first = pattern.first else { continue }
                normalized[Int(first)].append((pattern, id))
                hasNormalized = true
            } else {
                raw[Int(t.content[0])].append((t.content, id))
                hasRaw = true
            }
        }
        // Longest first; equal lengths keep their order (the first pattern wins, as in the library).
        for b in 0..<256 {
            raw[b] = raw[b].enumerated().sorted { ($0.element.0.count, -$0.offset) > ($1.element.0.count, -$1.offset) }.map(\.element)
            normalized[b] = normalized[b].enumerated().sorted { ($0.element.0.count, -$0.offset) > ($1.element.0.count, -$1.offset) }.map(\.element)
        }
        self.raw = raw
        self.normalizedPatterns = normalized
        self.hasRaw = hasRaw
        self.hasNormalized = hasNormalized
    }

    /// The library's `find_matches`: non-overlapping leftmost-longest matches; a match that
    /// breaks the single-word rule stays text; lstrip/rstrip take the whitespace beside it.
    func split(_ s: [UInt8], normalizedTokens: Bool) -> [Segment] {
        guard !s.isEmpty else { return [] }
        let table = normalizedTokens ? normalizedPatterns : raw
        guard normalizedTokens ? hasNormalized : hasRaw else { return [.text(0..<s.count)] }
        var out: [Segment] = []
        var startOffset = 0
        var i = 0
        while i < s.count {
            var found: ([UInt8], Int32)? = nil
            for candidate in table[Int(s[i])] {
                let p = candidate.0
                if p.count <= s.count - i && s[i..<(i + p.count)].elementsEqual(p) { found = candidate; break }
            }
            guard let (pattern, id) = found else { i += 1; continue }
            var start = i
            var stop = i + pattern.count
            i = stop
            guard let token = tokenByID[id] else { continue }
            if token.singleWord {
                let startSpace = start == 0 || !Self.isWordCharacter(Self.scalar(before: start, in: s))
                let stopSpace = stop == s.count || !Self.isWordCharacter(Self.scalar(at: stop, in: s))
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                var j = start
                while j > 0 {
                    let (u, width) = Self.scalarAndWidth(before: j, in: s)
                    guard u.properties.isWhitespace else { break }
                    j -= width
                }
                start = max(j, startOffset)
            }
            if token.rstrip {
                while stop < s.count {
                    let u = Self.scalar(at: stop, in: s)
                    guard u.properties.isWhitespace else { break }
                    stop += u.utf8.count
                }
            }
            if startOffset < start { out.append(.text(startOffset..<start)) }
            out.append(.token(id))
            startOffset = stop
            // rstrip may have consumed text the next match would start in; as in the library,
            // the search goes on from the end of the match itself.
        }
        if startOffset < s.count { out.append(.text(startOffset..<s.count)) }
        return out
    }

    /// Rust regex's Unicode `\w`: Alphabetic, marks, Nd, Pc, Join_Control.
    static func isWordCharacter(_ u: Unicode.Scalar) -> Bool {
        if u.properties.isAlphabetic || u.properties.isJoinControl { return true }
        switch u.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static func scalar(at i: Int, in s: [UInt8]) -> Unicode.Scalar {
        var it = s[i...].makeIterator()
        var decoder = UTF8()
        if case let .scalarValue(u) = decoder.decode(&it) { return u }
        return "\u{FFFD}"
    }

    static func scalarAndWidth(before i: Int, in s: [UInt8]) -> (Unicode.Scalar, Int) {
        var j = i - 1
        while j > 0 && s[j] & 0xC0 == 0x80 { j -= 1 }
        return (scalar(at: j, in: s), i - j)
    }

    static func scalar(before i: Int, in s: [UInt8]) -> Unicode.Scalar { scalarAndWidth(before: i, in: s).0 }
}

// MARK: - Merge queue

struct MergeCandidate {
    let rank: Int32
    let pos: Int
    let newID: Int32

    init(_ packed: UInt64, pos: Int) {
        rank = Int32(truncatingIfNeeded: packed >> 32)
        newID = Int32(truncatingIfNeeded: packed)
        self.pos = pos
    }

    @inline(__always) static func < (a: MergeCandidate, b: MergeCandidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }
}

/// A binary min-heap by (rank, position).
struct MergeHeap {
    var items: [MergeCandidate] = []

    mutating func push(_ x: MergeCandidate) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> MergeCandidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
