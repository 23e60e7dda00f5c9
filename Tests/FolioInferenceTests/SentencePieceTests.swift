import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference
@testable import FolioTokenizers

/// SentencePiece-style tokenizer.json files as transformers 5.25 writes them (Llama 2 legacy
/// and Metaspace, Gemma, XLM-R Unigram with the nmt_nfkc Precompiled normalizer, Unigram with
/// byte fallback; Tools/reference/make_sentencepiece_fixtures.py): ids and decodes identical
/// to Hugging Face `tokenizers` 0.23 on 189 strings per flavor.
@Suite struct SentencePieceTests {
    static let flavors = ["llama2", "llama2-metaspace", "gemma", "unigram", "unigram-v5", "unigram-bytefallback"]

    static func cases() throws -> [String: Any] {
        try #require(try loadJSON("sentencepiece/cases.json") as? [String: Any])
    }

    static func tokenizer(_ flavor: String) throws -> any TextTokenizer {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("sentencepiece/\(flavor)/tokenizer.json"))))
        return try Tokenizers.load(json: bytes, file: "\(flavor)/tokenizer.json")
    }

    @Test(arguments: flavors)
    func idsAndDecodesMatchTokenizers(_ flavor: String) throws {
        // Read with Folio's JSON parser: Foundation's drops a U+FEFF that starts a string.
        let all = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("sentencepiece/cases.json")))))
        let strings = (all["strings"]?.arrayValue ?? []).compactMap(\.stringValue)
        let f = try #require(all["flavors"]?[flavor])
        func ints(_ v: JSONValue?) -> [Int]? { v?.arrayValue?.compactMap(\.intValue) }
        let tok = try Self.tokenizer(flavor)
        #expect(tok is SentencePieceTokenizer)
        #expect(tok.vocabSize == f["vocab_size"]?.intValue)
        let ids = f["ids"]?.arrayValue ?? [], withSpecial = f["ids_with_special"]?.arrayValue ?? []
        let decodes = f["decode"]?.arrayValue ?? [], skips = f["decode_skip_special"]?.arrayValue ?? []
        #expect(strings.count >= 50 && ids.count == strings.count && decodes.count == strings.count)
        var wrong = 0
        for (i, s) in strings.enumerated() {
            let plain = tok.encode(s, addSpecialTokens: false).map(Int.init)
            let special = tok.encode(s, addSpecialTokens: true).map(Int.init)
            let want = ints(ids[i]) ?? []
            let wantSpecial = ints(withSpecial[i]) ?? want
            let decoded = tok.decode(special.map(Int32.init), skipSpecialTokens: false)
            let wantDecode = decodes[i].stringValue ?? s
            let skipped = tok.decode(special.map(Int32.init), skipSpecialTokens: true)
            let wantSkip = skips[i].stringValue ?? wantDecode
            if plain != want || special != wantSpecial || decoded != wantDecode || skipped != wantSkip {
                wrong += 1
                if wrong <= 8 {
                    Issue.record("\(flavor) \(i) \(s.debugDescription): ids \(plain) want \(want); special \(special == wantSpecial); decode \(decoded.debugDescription) want \(wantDecode.debugDescription); skip \(skipped.debugDescription) want \(wantSkip.debugDescription)")
                }
            }
        }
        #expect(wrong == 0, "\(flavor): \(wrong) of \(strings.count) strings differ")
        // Random id lists (byte tokens in runs, ids past the end) decode as the library does.
        let random = f["random_ids"]?.arrayValue ?? []
        #expect(random.count >= 20)
        for r in random {
            let list = (ints(r["ids"]) ?? []).map(Int32.init)
            #expect(tok.decode(list, skipSpecialTokens: false) == r["text"]?.stringValue, "\(flavor) \(list)")
            #expect(tok.decode(list, skipSpecialTokens: true) == r["text_skip_special"]?.stringValue, "\(flavor) \(list)")
        }
    }

    /// The Precompiled trie: every rule of the small hand-made charsmap, walked as the
    /// library walks it (shortest matching prefix).
    @Test func charsmapRules() throws {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: inferenceFixture("sentencepiece/unigram-bytefallback/tokenizer.json")))) as? [String: Any])
        let seq = try #require((doc["normalizer"] as? [String: Any])?["normalizers"] as? [[String: Any]])
        let b64 = try #require(seq.first?["precompiled_charsmap"] as? String)
        let map = try #require(Charsmap([UInt8](Data(base64Encoded: b64)!)))
        let rules = try #require(try Self.cases()["charsmap_rules"] as? [[String: String]])
        #expect(rules.count >= 10)
        for rule in rules {
            let key = Array(rule["from"]!.utf8)
            // A key that extends a shorter key is reached through the shorter one first.
            let shorter = rules.filter { r in let k = Array(r["from"]!.utf8); return k.count < key.count && key.starts(with: k) }
                .max { $0["from"]!.utf8.count < $1["from"]!.utf8.count }
            let want = shorter?["to"] ?? rule["to"]!
            #expect(map.lookup(key).map { String(decoding: $0, as: UTF8.self) } == want, "\(rule["from"]!.debugDescription)")
        }
        #expect(map.lookup(Array("z".utf8)) == nil)
        // A charsmap whose trie size does not fit is refused.
        #expect(Charsmap([8, 0, 0, 0, 1, 2]) == nil)
    }

    /// A hostile Strip decoder (a huge start) decodes at once, and a Strip normalizer over a
    /// long run of leading spaces is linear (both were loops over the count).
    @Test func hostileStripCountsAreCheap() throws {
        let base = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("sentencepiece/llama2/tokenizer.json"))))
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(base)) as? [String: Any])
        doc["decoder"] = ["type": "Strip", "content": " ", "start": 4_000_000_000_000_000_000, "stop": 4_000_000_000_000_000_000]
        doc["normalizer"] = ["type": "Sequence", "normalizers": [["type": "Strip", "strip_left": true, "strip_right": true],
                                                                   ["type": "Replace", "pattern": ["String": " "], "content": "\u{2581}"]]]
        let tok = try Tokenizers.load(json: [UInt8](try JSONSerialization.data(withJSONObject: doc)), file: "t.json")
        let ids = tok.encode(String(repeating: " ", count: 200_000) + "hello", addSpecialTokens: false)
        #expect(!ids.isEmpty)
        #expect(tok.decode(ids, skipSpecialTokens: true).hasSuffix("hello"))
    }

    /// What this reader does not implement is refused by name.
    @Test func unsupportedComponentsAreRefused() throws {
        let base = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("sentencepiece/gemma/tokenizer.json"))))
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(base)) as? [String: Any])
        doc["normalizer"] = ["type": "Replace", "pattern": ["Regex": "[0-9]+"], "content": "#"]
        let e = #expect(throws: TokenizerError.self) {
            try Tokenizers.load(json: [UInt8](try JSONSerialization.data(withJSONObject: doc)), file: "t.json")
        }
        #expect(e?.description.contains("Replace regex") == true)
        doc["normalizer"] = ["type": "Lowercase"]
        let e2 = #expect(throws: TokenizerError.self) {
            try Tokenizers.load(json: [UInt8](try JSONSerialization.data(withJSONObject: doc)), file: "t.json")
        }
        #expect(e2?.description.contains("'Lowercase'") == true || e2?.description.contains("Lowercase") == true)
    }
}

/// A decoder checkpoint with a SentencePiece tokenizer (the Mistral fixture with the Llama 2
/// tokenizer.json beside it) loads and runs: the text is the tokenizer's decode of the ids.
@Suite struct SentencePieceRunnerTests {
    @Test func decoderWithSentencePieceTokenizerRuns() throws {
        let dir = TempDir()
        let folder = dir.file("m")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for f in ["config.json", "generation_config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: inferenceFixture("families/mistral/" + f), toPath: folder + "/" + f)
        }
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: inferenceFixture("sentencepiece/llama2/" + f), toPath: folder + "/" + f)
        }
        _ = try Converter(options: ConversionOptions()).convert(from: folder, to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        let tok = try #require(g.tokenizer)
        #expect(tok is SentencePieceTokenizer && tok.bosID == 1)
        #expect(try g.encode("Hello").first == 1)
        var o = GenerationOptions()
        o.maxTokens = 12
        var streamed = ""
        let r = try g.generate(prompt: [1, 40, 41], options: o) { streamed += $0 }
        #expect(r.tokens.count == 12)
        #expect(r.text == tok.decode(r.tokens, skipSpecialTokens: false))
        #expect(streamed == r.text)
    }
}
