import Foundation
import Testing
import Folio
import FolioConvert
import FolioTokenizers
@testable import FolioInference

/// The tokenizer a GGUF carries, carried by `folio convert` as tokenizer.json and checked
/// against llama.cpp's own ids for the same file (Tools/reference/make_gguf_tokenizer_fixtures.py):
/// byte-level BPE with the GPT-2, Llama 3 and Qwen2 pre-tokenizers, and SentencePiece BPE with
/// and without the space prefix.
@Suite struct GGUFTokenizerTests {
    // Read with Folio's JSON reader: Foundation's drops a leading U+FEFF inside a string.
    static let cases: JSONValue = try! JSONParser.parse(Array(try! Data(contentsOf: URL(fileURLWithPath: inferenceFixture("gguf-tokenizer/cases.json")))))

    func carried(_ name: String) throws -> (tokenizer: any TextTokenizer, config: JSONValue) {
        let c = try Checkpoint.open(inferenceFixture("gguf-tokenizer/\(name).gguf"), carryTokenizer: true)
        #expect(c.notes.isEmpty, "\(c.notes)")
        let tok = try #require(c.files.first { $0.name == "tokenizer.json" }?.bytes)
        let config = try #require(c.files.first { $0.name == "tokenizer_config.json" }?.bytes)
        return (try Tokenizers.load(json: tok, file: name), try JSONParser.parse(config))
    }

    @Test(arguments: ["gpt2", "llama3", "qwen2", "llama-spm", "gemma-spm"])
    func idsEqualLlamaCpp(_ name: String) throws {
        let strings = Self.cases["strings"]!.arrayValue!.map { $0.stringValue! }
        let entry = Self.cases["files"]![name]!
        let ids = entry["ids"]!.arrayValue!.map { $0.arrayValue!.map { Int32($0.intValue!) } }
        let texts = entry["detokenized"]!.arrayValue!.map { $0.stringValue! }
        let hfIDs = entry["hf_ids"]?.arrayValue?.map { $0.arrayValue!.map { Int32($0.intValue!) } }
        let hfDecoded = entry["hf_decoded"]?.arrayValue?.map { $0.stringValue! }
        let (tok, _) = try carried(name)
        // Where llama.cpp and the Hugging Face tokenizer the GGUF was made from disagree, Folio
        // follows the tokenizer.json semantics it writes, in two known cases only:
        // - llama.cpp's Llama 3 regex spells the case-insensitive contractions as '[sS] etc.;
        //   the tokenizer's own (?i:'s|...) also folds U+017F (long s) and U+212A (Kelvin sign);
        // - a non-special added token of a byte-level vocabulary decodes through the ByteLevel
        //   decoder (non-ASCII text is then not itself); llama.cpp writes the text verbatim.
        let folds = { (s: String) in s.unicodeScalars.contains { $0.value == 0x17F || $0.value == 0x212A } }
        let userDefined = Set((try Checkpoint.open(inferenceFixture("gguf-tokenizer/\(name).gguf")).metadata ?? [])
            .first { $0.0 == "gguf.tokenizer.ggml.token_type" }.flatMap { try? JSONParser.parse($0.1).arrayValue }?
            .enumerated().filter { $0.element.intValue == 4 }.map { Int32($0.offset) } ?? [])
        var wrong: [String] = [], decodedWrong: [String] = [], followedHF = 0
        for (i, s) in strings.enumerated() {
            let got = tok.encode(s, addSpecialTokens: true)
            if got != ids[i] {
                if folds(s), let h = hfIDs?[i], got == h { followedHF += 1 } else { wrong.append("\(i) \(s.debugDescription): \(got) vs \(ids[i])") }
            }
            let text = tok.decode(ids[i], skipSpecialTokens: false)
            if text != texts[i] {
                if ids[i].contains(where: userDefined.contains), let h = hfDecoded?[i], text == h { followedHF += 1 } else { decodedWrong.append("\(i) \(s.debugDescription)") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(strings.count) differ from llama.cpp, first: \(wrong.prefix(3))")
        #expect(decodedWrong.isEmpty, "\(decodedWrong.count) decodes differ, first: \(decodedWrong.prefix(3))")
        #expect(followedHF <= 4, "\(followedHF) strings follow the Hugging Face tokenizer instead of llama.cpp")
    }

    @Test func configCarriesSpecialTokensAndTemplate() throws {
        let (tok, config) = try carried("llama3")
        #expect(config["add_bos_token"]?.boolValue == true)
        #expect(config["chat_template"]?.stringValue?.contains("messages") == true)
        #expect(tok.bosID != nil)
        let (spm, spmConfig) = try carried("llama-spm")
        #expect(spm.bosID == 1)
        #expect(spmConfig["bos_token"]?.stringValue == "<s>" && spmConfig["eos_token"]?.stringValue == "</s>")
    }

    /// A pre-tokenizer Folio does not implement, or a tokenizer model it does not read, is not
    /// carried: the conversion says so in a note and the .folio holds no tokenizer.json.
    @Test(arguments: [("tokenizer.ggml.pre", JSONValue.string("deepseek-llm"), "tokenizer.ggml.pre 'deepseek-llm'"),
                      ("tokenizer.ggml.model", JSONValue.string("t5"), "tokenizer.ggml.model 't5'"),
                      ("tokenizer.ggml.pre", JSONValue.null, "tokenizer.ggml.pre is missing")])
    func unknownKindsAreRefusedByName(_ key: String, _ value: JSONValue, _ said: String) throws {
        let c = try Checkpoint.open(inferenceFixture("gguf-tokenizer/gpt2.gguf"))
        var meta: [String: JSONValue] = [:]
        for (k, v) in c.metadata ?? [] where k.hasPrefix("gguf.") { meta[String(k.dropFirst(5))] = try JSONParser.parse(v) }
        if case .null = value { meta[key] = nil } else { meta[key] = value }
        #expect(throws: TokenizerError.self) { _ = try GGUFVocabulary.files(meta, file: "x.gguf") }
        do { _ = try GGUFVocabulary.files(meta, file: "x.gguf") } catch { #expect("\(error)".contains(said), "\(error)") }
    }

    /// A GGUF without tokenizer keys carries no tokenizer and says nothing.
    @Test func noTokenizerNoFiles() throws {
        #expect(try GGUFVocabulary.files(["general.architecture": .string("llama")], file: "x.gguf") == nil)
    }
}
