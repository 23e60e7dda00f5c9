import Foundation
import Testing
import Folio
@testable import FolioTokenizers
@testable import FolioInference

func inferenceFixture(_ rel: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(rel).path
}

func loadJSON(_ rel: String) throws -> Any {
    try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: inferenceFixture(rel))))
}

@Suite struct WordPieceTests {
    /// Ids identical to the Hugging Face tokenizer (through sentence-transformers, truncated
    /// to max_seq_length 256) on 58 varied sentences (Tools/reference/make_minilm_reference.py).
    @Test func idsMatchHuggingFaceOnEverySentence() throws {
        let json = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("minilm/tokenizer.json"))))
        let tok = try WordPieceTokenizer(json: json, file: "tokenizer.json")
        let sentences = try #require(try loadJSON("minilm/sentences.json") as? [String])
        let expected = try #require(try loadJSON("minilm/token_ids.json") as? [[Int]])
        #expect(sentences.count >= 50 && sentences.count == expected.count)
        var mismatches = 0
        for (s, e) in zip(sentences, expected) {
            let got = tok.encode(s, maxLength: 256).map(Int.init)
            if got != e {
                mismatches += 1
                Issue.record("\(s.prefix(60).debugDescription): got \(got.prefix(40)), expected \(e.prefix(40))")
            }
        }
        #expect(mismatches == 0)
    }

    /// The WordPiece decoder joins continuation pieces from the second token on, as the
    /// library's does (a leading "##ing" stays as written).
    @Test func decodeJoinsContinuationsAfterTheFirstToken() throws {
        let json = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("minilm/tokenizer.json"))))
        let tok = try WordPieceTokenizer(json: json, file: "tokenizer.json")
        let ing = try #require(tok.id(of: "##ing")), play = try #require(tok.id(of: "play"))
        #expect(tok.decode([ing], skipSpecialTokens: false) == "##ing")
        #expect(tok.decode([play, ing], skipSpecialTokens: false) == "playing")
    }

    @Test func nonWordPieceTokenizersAreRefused() {
        let e = #expect(throws: TokenizerError.self) {
            try WordPieceTokenizer(json: Array(#"{"model": {"type": "BPE", "vocab": {}}}"#.utf8), file: "t.json")
        }
        #expect(e?.description.contains("BPE") == true)
    }
}

final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "folio-itest-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

@Suite struct TokenizerCorpusTests {
    /// Malformed tokenizer.json files (Tools/reference/make_safetensors_tokenizer_corrupt.py):
    /// each refused with one line containing the expected phrase.
    @Test func everyMalformedTokenizerIsRefused() throws {
        let dir = inferenceFixture("tokenizer/corrupt")
        let map = try #require(try loadJSON("tokenizer/corrupt/expected.json") as? [String: String])
        #expect(map.count >= 9)
        for (name, phrase) in map.sorted(by: { $0.key < $1.key }) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            let e = #expect(throws: TokenizerError.self, "\(name)") { try WordPieceTokenizer(json: bytes, file: name) }
            #expect(e?.description.contains(phrase) == true && e?.description.contains("\n") == false, "\(name): \(e?.description ?? "")")
        }
    }
}

/// The tokenizer.json inputs the fuzzer (Tools/fuzz, FuzzTokenizer) crashed on, and its
/// minimized corpus: each is parsed (and, when accepted, used) without a trap.
@Suite struct TokenizerFuzzRegressionTests {
    func inputs(_ sub: String) -> [[UInt8]] {
        let d = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/FuzzTokenizer/\(sub)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted().compactMap {
            FileManager.default.contents(atPath: d + "/" + $0).map { [UInt8]($0) }
        }
    }

    @Test func tokenizerCrashesAreFixed() throws {
        let crashes = inputs("crashes")
        #expect(!crashes.isEmpty)
        for bytes in crashes + inputs("corpus") {
            if let t = try? WordPieceTokenizer(json: bytes, file: "fuzz.json") {
                _ = t.encode("Héllo, wörld! 你好 [CLS] tokens ##x", maxLength: 64)
            }
        }
    }
}
