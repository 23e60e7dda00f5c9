import Foundation
import Testing
import Folio
@testable import FolioTokenizers
@testable import FolioInference

/// Reference cases from Tools/reference/make_bpe_fixtures.py, read with Folio's strict parser
/// so strings keep their exact scalars (Foundation's would be compared by canonical
/// equivalence, and "é" must stay distinct from "e\u{301}").
struct BPECases {
    struct Flavor {
        let vocabSize: Int
        let ids: [[Int32]]
        let idsWithSpecial: [[Int32]]
        let decode: [String]
        let decodeSkipSpecial: [String]
        let randomIDs: [(ids: [Int32], text: String, textSkipSpecial: String)]
    }

    static let flavors = ["gpt2", "gpt2-digits", "llama3", "qwen2"]

    let strings: [String]
    let handWritten: Int
    let flavors: [String: Flavor]
    /// The gpt2 model behind other pre-tokenizers, with the ids of `variantStrings`.
    let variantStrings: [String]
    let variants: [(preTokenizer: JSONValue, ids: [[Int32]])]

    static func load() throws -> BPECases {
        let doc = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("bpe/cases.json")))))
        func ids(_ v: JSONValue) throws -> [Int32] {
            try #require(v.arrayValue).map { Int32(try #require($0.intValue)) }
        }
        let strings = try #require(doc["strings"]?.arrayValue).map { try #require($0.stringValue) }
        var flavors: [String: Flavor] = [:]
        for (name, f) in try #require(doc["flavors"]?.objectValue) {
            let plain = try #require(f["ids"]?.arrayValue).map(ids)
            // Nulls stand for the value they would repeat (see the generator).
            let withSpecial = try zip(try #require(f["ids_with_special"]?.arrayValue), plain).map { $0 == .null ? $1 : try ids($0) }
            let decode = try zip(try #require(f["decode"]?.arrayValue), strings).map { $0 == .null ? $1 : try #require($0.stringValue) }
            let skip = try zip(try #require(f["decode_skip_special"]?.arrayValue), decode).map { $0 == .null ? $1 : try #require($0.stringValue) }
            let random = try #require(f["random_ids"]?.arrayValue).map {
                (try ids(try #require($0["ids"])), try #require($0["text"]?.stringValue), try #require($0["text_skip_special"]?.stringValue))
            }
            flavors[name] = Flavor(vocabSize: try #require(f["vocab_size"]?.intValue), ids: plain, idsWithSpecial: withSpecial,
                                   decode: decode, decodeSkipSpecial: skip, randomIDs: random)
        }
        let variants = try #require(doc["pre_tokenizer_variants"]?.arrayValue).map {
            (try #require($0["pre_tokenizer"]), try #require($0["ids"]?.arrayValue).map(ids))
        }
        return BPECases(strings: strings, handWritten: try #require(doc["hand_written"]?.intValue), flavors: flavors,
                        variantStrings: try #require(doc["variant_strings"]?.arrayValue).map { try #require($0.stringValue) },
                        variants: variants)
    }
}

func bpeTokenizerJSON(_ flavor: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("bpe/\(flavor)/tokenizer.json"))))
}

func loadBPE(_ flavor: String) throws -> BPETokenizer {
    try BPETokenizer(json: try bpeTokenizerJSON(flavor), file: "\(flavor)/tokenizer.json")
}

/// `doc` with the member `key` of the object at `path` set to `value`.
func patched(_ doc: JSONValue, _ path: [String], _ key: String, _ value: JSONValue) -> JSONValue {
    guard case var .object(members) = doc else { return doc }
    if let first = path.first {
        if let i = members.firstIndex(where: { $0.0 == first }) { members[i].1 = patched(members[i].1, Array(path.dropFirst()), key, value) }
    } else if let i = members.firstIndex(where: { $0.0 == key }) {
        members[i].1 = value
    } else {
        members.append((key, value))
    }
    return .object(members)
}

/// Byte-exact: Swift's `==` on strings is canonical equivalence.
func sameText(_ a: String, _ b: String) -> Bool { Array(a.utf8) == Array(b.utf8) }

@Suite struct BPETokenizerTests {
    static let cases = Result { try BPECases.load() }

    @Test func casesCoverEnoughStrings() throws {
        let cases = try Self.cases.get()
        #expect(cases.handWritten >= 80)
        #expect(cases.strings.count > cases.handWritten)
        #expect(Set(cases.flavors.keys) == Set(BPECases.flavors))
    }

    /// Ids identical to Hugging Face `tokenizers` on every case string, with and without the
    /// post-processor's special tokens.
    @Test(arguments: BPECases.flavors)
    func idsMatchHuggingFace(flavor: String) throws {
        let cases = try Self.cases.get()
        let expected = try #require(cases.flavors[flavor])
        let tok = try loadBPE(flavor)
        var mismatches = 0
        for (i, s) in cases.strings.enumerated() {
            let plain = tok.encode(s, addSpecialTokens: false)
            let withSpecial = tok.encode(s, addSpecialTokens: true)
            if plain != expected.ids[i] || withSpecial != expected.idsWithSpecial[i] {
                mismatches += 1
                if mismatches <= 10 {
                    Issue.record("\(flavor) case \(i) \(String(s.unicodeScalars.prefix(40).map { "\($0)" }.joined()).debugDescription) \(s.unicodeScalars.prefix(24).map { String($0.value, radix: 16) }): got \(plain.prefix(30)), expected \(expected.ids[i].prefix(30))")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(cases.strings.count) strings differ")
    }

    /// decode(encode(x)) is Hugging Face's decode of the same ids, with and without special
    /// tokens; streaming (the bytes of each token in turn) gives the same text.
    @Test(arguments: BPECases.flavors)
    func decodeMatchesHuggingFace(flavor: String) throws {
        let cases = try Self.cases.get()
        let expected = try #require(cases.flavors[flavor])
        let tok = try loadBPE(flavor)
        var mismatches = 0
        for (i, s) in cases.strings.enumerated() {
            let ids = tok.encode(s)
            let text = tok.decode(ids)
            // Streaming: the bytes of each token in turn, decoded at the end. (Not always the
            // UTF-8 of `text`: an added token like "café" decodes through the byte alphabet to
            // the lone byte 0xE9, which the full decode replaces with U+FFFD, as the library does.)
            let streamed = ids.flatMap(tok.tokenBytes)
            let ok = sameText(text, expected.decode[i])
                && sameText(tok.decode(ids, skipSpecialTokens: true), expected.decodeSkipSpecial[i])
                && sameText(String(decoding: streamed, as: UTF8.self), text)
            if !ok {
                mismatches += 1
                if mismatches <= 10 { Issue.record("\(flavor) case \(i): decoded \(text.debugDescription), expected \(expected.decode[i].debugDescription)") }
            }
        }
        #expect(mismatches == 0)
    }

    /// Random id lists, unknown ids and broken UTF-8 included: the same text as Hugging Face
    /// (U+FFFD for each maximal invalid subsequence, unknown ids skipped).
    @Test(arguments: BPECases.flavors)
    func decodingRandomIDsMatchesHuggingFace(flavor: String) throws {
        let expected = try #require(try Self.cases.get().flavors[flavor])
        let tok = try loadBPE(flavor)
        #expect(expected.randomIDs.count >= 20)
        for (ids, text, skip) in expected.randomIDs {
            #expect(sameText(tok.decode(ids), text), "\(ids): \(tok.decode(ids).debugDescription) vs \(text.debugDescription)")
            #expect(sameText(tok.decode(ids, skipSpecialTokens: true), skip), "\(ids)")
        }
    }

    @Test func vocabularySizeAndSpecialTokens() throws {
        let cases = try Self.cases.get()
        for flavor in BPECases.flavors {
            let tok = try loadBPE(flavor)
            #expect(tok.vocabSize == cases.flavors[flavor]?.vocabSize, "\(flavor)")
        }
        let llama = try loadBPE("llama3")
        let bos = try #require(llama.id(of: "<|begin_of_text|>"))
        #expect(llama.bosID == bos)
        #expect(llama.encode("hi").first == bos && llama.encode("hi", addSpecialTokens: false).first != bos)
        #expect(llama.id(of: "<|eot_id|>") == llama.encode("<|eot_id|>", addSpecialTokens: false).first)
        #expect(llama.tokenBytes(bos) == Array("<|begin_of_text|>".utf8))
        #expect(llama.decode([bos], skipSpecialTokens: true) == "")
        let qwen = try loadBPE("qwen2")
        #expect(qwen.bosID == nil)
        #expect(qwen.id(of: "<|im_end|>") != nil && qwen.id(of: "Ġthe") != nil && qwen.id(of: "no such token") == nil)
        #expect(try loadBPE("gpt2").bosID == nil)
        #expect(qwen.tokenBytes(-1).isEmpty && qwen.tokenBytes(Int32.max).isEmpty)
    }

    /// Llama 3's ignore_merges: a pre-token that is itself in the vocabulary is one token,
    /// though no merge leads to it; GPT-2 (without the flag) spells it out.
    @Test func ignoreMergesEmitsWholeVocabularyTokens() throws {
        let llama = try loadBPE("llama3")
        let whole = try #require(llama.id(of: "Ġsupercalifragilistic"))
        #expect(llama.encode(" supercalifragilistic", addSpecialTokens: false) == [whole])
        let gpt2 = try loadBPE("gpt2")
        #expect(gpt2.encode(" supercalifragilistic").count > 1)
    }

    @Test func longSingleWordFinishes() throws {
        for flavor in BPECases.flavors {
            let tok = try loadBPE(flavor)
            // gpt2-digits has add_prefix_space.
            let prefix = flavor == "gpt2-digits" ? " " : ""
            var rng = SplitMix64(seed: 7)
            let letters = Array("abcdefghijklmnopqrstuvwxyzéü".unicodeScalars)
            let word = String(String.UnicodeScalarView((0..<20_000).map { _ in letters[Int(rng.next() % UInt64(letters.count))] }))
            let clock = ContinuousClock()
            var ids: [Int32] = []
            let elapsed = clock.measure { ids = tok.encode(word, addSpecialTokens: false) }
            #expect(!ids.isEmpty && elapsed < .seconds(20), "\(flavor): \(elapsed)")
            #expect(sameText(tok.decode(ids), prefix + word), "\(flavor): the long word does not round-trip")
            // (gpt2-digits puts its prefix space before every digit, as the library does.)
            let digits = String(repeating: "1234567890", count: 2_000)
            let expected = flavor == "gpt2-digits" ? digits.map { " \($0)" }.joined() : digits
            #expect(sameText(tok.decode(tok.encode(digits, addSpecialTokens: false)), expected), "\(flavor): the long number does not round-trip")
        }
    }

    @Test func concurrentEncodingAgrees() throws {
        let cases = try Self.cases.get()
        let tok = try loadBPE("llama3")
        let strings = Array(cases.strings.prefix(cases.handWritten))
        let expected = strings.map { tok.encode($0) }
        let results = Results(count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            results.set(k, strings.map { tok.encode($0) } == expected)
        }
        #expect(results.all)
    }

    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Bool]
        init(count: Int) { values = Array(repeating: false, count: count) }
        func set(_ i: Int, _ v: Bool) { lock.lock(); values[i] = v; lock.unlock() }
        var all: Bool { lock.lock(); defer { lock.unlock() }; return values.allSatisfy { $0 } }
    }

    /// Both merges forms (["a", "b"] and "a b") read to the same tokenizer.
    @Test func mergesInEitherFormGiveTheSameIDs() throws {
        let cases = try Self.cases.get()
        let doc = try JSONParser.parse(try bpeTokenizerJSON("gpt2"))
        let merges = try #require(doc["model"]?["merges"]?.arrayValue)
        let lines = try merges.map { m -> JSONValue in
            let pair = (m.arrayValue ?? []).compactMap { $0.stringValue }
            try #require(pair.count == 2)
            return .string(pair[0] + " " + pair[1])
        }
        let text = patched(doc, ["model"], "merges", .array(lines)).serialized()
        let legacy = try BPETokenizer(json: Array(text.utf8), file: "legacy.json")
        let modern = try loadBPE("gpt2")
        for s in cases.strings.prefix(cases.handWritten) { #expect(legacy.encode(s) == modern.encode(s)) }
    }

    /// Other pre-tokenizer chains (every Split behaviour, literal and inverted patterns,
    /// contiguous digits, a Split after ByteLevel) give Hugging Face's ids.
    @Test func preTokenizerVariantsMatchHuggingFace() throws {
        let cases = try Self.cases.get()
        let doc = try JSONParser.parse(try bpeTokenizerJSON("gpt2"))
        #expect(cases.variants.count >= 10)
        for (n, variant) in cases.variants.enumerated() {
            let text = patched(doc, [], "pre_tokenizer", variant.preTokenizer).serialized()
            let tok = try BPETokenizer(json: Array(text.utf8), file: "variant\(n).json")
            var mismatches = 0
            for (s, expected) in zip(cases.variantStrings, variant.ids) where tok.encode(s, addSpecialTokens: false) != expected {
                mismatches += 1
                if mismatches <= 3 { Issue.record("variant \(n) \(variant.preTokenizer.serialized()): \(s.debugDescription)") }
            }
            #expect(mismatches == 0, "variant \(n)")
        }
    }
}

/// Hostile tokenizer.json files: each is refused with an `TokenizerError` of one line naming
/// the file (and the field, where one is at fault), never a trap.
@Suite struct BPETokenizerHostileTests {
    /// A small valid byte-level BPE tokenizer.json, with `patch` applied to its top-level
    /// members and `modelPatch` to the model's.
    static func json(_ patch: [String: String] = [:], model modelPatch: [String: String] = [:]) -> [UInt8] {
        var model: [(String, String)] = [
            ("type", #""BPE""#), ("dropout", "null"), ("unk_token", "null"), ("continuing_subword_prefix", "null"),
            ("end_of_word_suffix", "null"), ("fuse_unk", "false"), ("byte_fallback", "false"), ("ignore_merges", "false"),
            ("vocab", #"{"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#), ("merges", #"[["a", "b"], ["Ġ", "ab"]]"#),
        ]
        for (k, v) in modelPatch {
            if let i = model.firstIndex(where: { $0.0 == k }) { model[i].1 = v } else { model.append((k, v)) }
        }
        var top: [(String, String)] = [
            ("version", #""1.0""#), ("truncation", "null"), ("padding", "null"),
            ("added_tokens", #"[{"id": 5, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]"#),
            ("normalizer", "null"),
            ("pre_tokenizer", #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#),
            ("post_processor", #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}}"#),
            ("decoder", #"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#),
            ("model", "{" + model.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"),
        ]
        for (k, v) in patch {
            if let i = top.firstIndex(where: { $0.0 == k }) { top[i].1 = v } else { top.append((k, v)) }
        }
        return Array(("{" + top.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}").utf8)
    }

    @Test func theBaseFileIsAccepted() throws {
        let tok = try BPETokenizer(json: Self.json(), file: "base.json")
        #expect(tok.encode("ab ab") == [5, 2, 4])
        #expect(tok.encode("ab<s>", addSpecialTokens: false) == [2, 5])
        #expect(tok.bosID == 5 && tok.vocabSize == 6)
        #expect(tok.decode([5, 2, 4], skipSpecialTokens: true) == "ab ab")
    }

    /// Characters outside the vocabulary: dropped without an unknown token, else the unknown
    /// token, one per character or fused. The added token's id follows the vocabulary's
    /// count and lands on <unk>'s. Expected ids from tokenizers 0.23.3.
    @Test func unknownCharactersAsTheLibraryHandlesThem() throws {
        let texts = ["xab", "xyab", "axxb", "ab ab", "éa", "ab<s>", ""]
        let vocab = #"{"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "<unk>": 6}"#
        let expected: [(String, String, [[Int32]])] = [
            ("null", "false", [[2], [2], [2], [2, 4], [0], [2, 6], []]),
            (#""<unk>""#, "false", [[6, 2], [6, 6, 2], [0, 6, 6, 1], [2, 4], [6, 6, 0], [2, 6], []]),
            (#""<unk>""#, "true", [[6, 2], [6, 2], [0, 6, 1], [2, 4], [6, 0], [2, 6], []]),
        ]
        for (unk, fuse, ids) in expected {
            let tok = try BPETokenizer(json: Self.json(["post_processor": "null"], model: ["vocab": vocab, "unk_token": unk, "fuse_unk": fuse]), file: "unk.json")
            #expect(texts.map { tok.encode($0) } == ids, "unk_token \(unk), fuse_unk \(fuse)")
        }
    }

    static let refused: [(String, [UInt8], String)] = [
        ("empty file", [], "not valid JSON"),
        ("not an object", Array("[1, 2]".utf8), "not a JSON object"),
        ("model missing", Array(#"{"version": "1.0"}"#.utf8), "'model'"),
        ("WordPiece model", json(model: ["type": #""WordPiece""#]), "WordPiece"),
        ("no vocab", json(model: ["vocab": "null"]), "model.vocab"),
        ("negative id", json(model: ["vocab": #"{"a": -1, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "model.vocab"),
        ("id 2^31", json(model: ["vocab": #"{"a": 2147483647, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "2147483647"),
        ("id beyond 2^64", json(model: ["vocab": #"{"a": 99999999999999999999999, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "model.vocab"),
        ("fractional id", json(model: ["vocab": #"{"a": 0.5, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "model.vocab"),
        ("string id", json(model: ["vocab": #"{"a": "0", "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "model.vocab"),
        ("duplicate ids", json(model: ["vocab": #"{"a": 0, "b": 0, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "both have id 0"),
        ("no merges", json(model: ["merges": "null"]), "model.merges"),
        ("merge without space", json(model: ["merges": #"["ab"]"#]), "model.merges[0]"),
        ("merge of three", json(model: ["merges": #"["a b ab"]"#]), "model.merges[0]"),
        ("merge of numbers", json(model: ["merges": #"[[1, 2]]"#]), "model.merges[0]"),
        ("merge of an unknown token", json(model: ["merges": #"[["a", "b"], ["Ġ", "zz"]]"#]), "model.merges[1]"),
        ("merge to an unknown token", json(model: ["merges": #"[["b", "a"]]"#]), "'ba'"),
        ("dropout", json(model: ["dropout": "0.1"]), "dropout"),
        ("subword prefix", json(model: ["continuing_subword_prefix": "\"##\""]), "continuing_subword_prefix"),
        ("word suffix", json(model: ["end_of_word_suffix": #""</w>""#]), "end_of_word_suffix"),
        ("byte fallback", json(model: ["byte_fallback": "true"]), "byte_fallback"),
        ("unknown unk token", json(model: ["unk_token": #""<unk>""#]), "model.unk_token"),
        ("flag not a bool", json(model: ["ignore_merges": #""yes""#]), "model.ignore_merges"),
        ("lowercase normalizer", json(["normalizer": #"{"type": "Lowercase"}"#]), "'Lowercase'"),
        ("whitespace pre-tokenizer", json(["pre_tokenizer": #"{"type": "Whitespace"}"#]), "'Whitespace'"),
        ("unknown split regex", json(["pre_tokenizer": #"{"type": "Split", "pattern": {"Regex": "\\w+\n|x"}, "behavior": "Isolated", "invert": false}"#]), "\\w+\\n|x"),
        ("unknown split behavior", json(["pre_tokenizer": #"{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": false}"#]), "behavior"),
        ("added tokens not a list", json(["added_tokens": "{}"]), "added_tokens"),
        ("added token without content", json(["added_tokens": #"[{"id": 5}]"#]), "added_tokens[0]"),
        ("added token flag not a bool", json(["added_tokens": #"[{"content": "<s>", "special": 1}]"#]), "added_tokens[0].special"),
        ("added token id beyond Int32", json(["added_tokens": #"[{"content": "a"}, {"content": "<s>"}]"#],
                                            model: ["vocab": #"{"a": 2147483646, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#]), "added_tokens[1]"),
        ("template of an undeclared token", json(["post_processor": #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}], "special_tokens": {}}"#]), "'<x>'"),
        ("template id too large", json(["post_processor": #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {"<s>": {"ids": [4294967296]}}}"#]), "4294967296"),
        ("template of sequence B", json(["post_processor": #"{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B", "type_id": 0}}], "special_tokens": {}}"#]), "Sequence.id"),
        ("Roberta post-processor without its tokens", json(["post_processor": #"{"type": "RobertaProcessing"}"#]), "post_processor.cls"),
        ("unknown post-processor", json(["post_processor": #"{"type": "ByteLevelProcessing"}"#]), "'ByteLevelProcessing'"),
        ("no decoder", json(["decoder": "null"]), "decoder"),
        ("WordPiece decoder", json(["decoder": #"{"type": "WordPiece"}"#]), "'WordPiece'"),
    ]

    @Test(arguments: refused.indices)
    func hostileFileIsRefused(index: Int) {
        let (name, bytes, phrase) = Self.refused[index]
        let e = #expect(throws: TokenizerError.self, "\(name)") { try BPETokenizer(json: bytes, file: "bad.json") }
        let text = e?.description ?? ""
        #expect(text.hasPrefix("bad.json: ") && !text.contains("\n") && text.contains(phrase), "\(name): \(text)")
    }

    @Test func truncatedFilesAreRefused() throws {
        let full = try bpeTokenizerJSON("llama3")
        for cut in [1, 100, full.count / 2, full.count - 2] {
            let e = #expect(throws: TokenizerError.self) { try BPETokenizer(json: Array(full.prefix(cut)), file: "cut.json") }
            #expect(e?.description.contains("not valid JSON") == true)
        }
    }

    /// The unknown-pattern error names the pattern on one line.
    @Test func unknownPatternIsNamed() {
        let e = #expect(throws: TokenizerError.self) {
            try BPETokenizer(json: Self.json(["pre_tokenizer": #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": false}]}"#]), file: "t.json")
        }
        #expect(e?.description == #"t.json: pre_tokenizer.pretokenizers[0] Split regex '\p{L}+' is not one of the GPT-2, Llama 3 or Qwen2 patterns this tokenizer implements"#)
    }

    /// Randomly damaged copies of a real fixture: each is refused or, when accepted, encodes
    /// and decodes without a trap.
    @Test func damagedFilesNeverTrap() throws {
        let base = try bpeTokenizerJSON("qwen2")
        var rng = SplitMix64(seed: 42)
        var accepted = 0
        for _ in 0..<300 {
            var bytes = base
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: i)
                default: bytes.insert(Array("0123456789\"{}[],: -e.\\".utf8)[Int(rng.next() % 22)], at: i)
                }
            }
            if let tok = try? BPETokenizer(json: bytes, file: "damaged.json") {
                accepted += 1
                let ids = tok.encode("Hello <|im_start|> wörld 123 😀\n\n  x")
                _ = tok.decode(ids + [-1, 0, Int32.max])
            }
        }
        #expect(accepted > 0)
    }
}
