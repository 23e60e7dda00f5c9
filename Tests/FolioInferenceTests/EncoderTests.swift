import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference
@testable import FolioTokenizers

/// The encoder families against sentence-transformers 6.3 on tiny random models that
/// transformers 5.25 saved (Tools/reference/make_encoder_fixtures.py): token ids of 14 texts
/// (one truncated at max_seq_length), sentence embeddings with cosine >= 0.99999 in float32,
/// >= 0.9999 with stored bf16 weights, and with `--weights int8` >= 0.9999 against a float32
/// run of the stored values (the int8 rounding itself is printed); Pooling configs of the 6.x style and of the older
/// boolean styles.
@Suite struct EncoderTests {
    static let families = ["roberta", "xlm-roberta", "distilbert", "mpnet", "modernbert"]

    struct Reference {
        let texts: [String]
        let ids: [[Int32]]
        let pooling: String
        let normalize: Bool
        let maxSeqLength: Int
    }

    static func reference(_ family: String) throws -> Reference {
        // Folio's JSON parser: Foundation's drops a U+FEFF that starts a string.
        let doc = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("encoders/\(family)/reference.json")))))
        let sentences = doc["sentences"]?.arrayValue ?? []
        return Reference(texts: sentences.compactMap { $0["text"]?.stringValue },
                         ids: sentences.map { ($0["ids"]?.arrayValue ?? []).compactMap { $0.intValue.map(Int32.init) } },
                         pooling: doc["pooling"]?.stringValue ?? "", normalize: doc["normalize"]?.boolValue ?? false,
                         maxSeqLength: doc["max_seq_length"]?.intValue ?? 0)
    }

    @Test(arguments: families)
    func embeddingsMatchSentenceTransformers(_ family: String) throws {
        let dir = TempDir()
        let ref = try Self.reference(family)
        let want = try npyRows(inferenceFixture("encoders/\(family)/embeddings.npy"))
        #expect(ref.texts.count == 14 && want.count == 14)
        for variant in ["f32", "bf16", "int8"] {
            var options = ConversionOptions()
            if variant == "bf16" { options.rules = [(Glob("*"), .plain(.bf16))] }
            if variant == "int8" { options.weights = try WeightsPreset.parse("int8") }
            _ = try Converter(options: options).convert(from: inferenceFixture("encoders/\(family)"), to: dir.file("\(variant).folio"))
            let e = try SentenceEmbedder(path: dir.file("\(variant).folio"))
            #expect(e.pooling.rawValue == ref.pooling && e.normalize == ref.normalize && e.maxSeqLength == ref.maxSeqLength,
                    "\(family): pooling \(e.pooling) normalize \(e.normalize) max_seq_length \(e.maxSeqLength)")
            if variant == "f32" {
                for (i, t) in ref.texts.enumerated() {
                    #expect(e.tokenize(t) == ref.ids[i], "\(family) text \(i) \(t.debugDescription): \(e.tokenize(t)) want \(ref.ids[i])")
                }
            }
            let got = try e.embed(ref.texts, batchSize: 5)
            let worst = zip(got, want).map { cosine($0, $1) }.min() ?? 0
            if variant == "int8" {
                // Against a float32 run of the very values stored (what the int8 kernels add);
                // the rounding of 8-bit weights itself is printed against sentence-transformers.
                _ = try Converter(options: ConversionOptions(rules: [(Glob("*"), .plain(.f32))])).convert(from: dir.file("int8.folio"), to: dir.file("int8-f32.folio"))
                let stored = try SentenceEmbedder(path: dir.file("int8-f32.folio")).embed(ref.texts, batchSize: 5)
                let kernels = zip(got, stored).map { cosine($0, $1) }.min() ?? 0
                #expect(kernels >= 0.9999, "\(family) int8: min cosine \(kernels) against float32 of the stored values")
                print("\(family) int8: min cosine \(kernels) against float32 of the stored values; against sentence-transformers \(worst)")
            } else {
                #expect(worst >= (variant == "f32" ? 0.99999 : 0.9999), "\(family) \(variant): min cosine \(worst)")
                print("\(family) \(variant): min cosine \(worst) against sentence-transformers")
            }
            if variant == "f32" {
                let single = try e.embed([ref.texts[7]], batchSize: 1)[0]
                #expect(cosine(single, got[7]) >= 0.9999999, "\(family): batching changes the result")
                let d = zip(got, want).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
                print("\(family) f32: max abs difference \(d)")
            }
        }
    }

    /// Pooling configs: 6.x `pooling_mode` names and lists, the older booleans, and what is
    /// refused (an unknown mode, a width that is not the encoder's).
    @Test func poolingConfigs() throws {
        func modes(_ json: String) throws -> [SentenceEmbedder.Pooling] {
            try SentenceEmbedder.poolingModes(try JSONParser.parse(Array(json.utf8)), file: "m.folio", field: "1_Pooling/config.json", hidden: 8)
        }
        #expect(try modes(#"{"embedding_dimension": 8, "pooling_mode": "mean", "include_prompt": true}"#) == [.mean])
        #expect(try modes(#"{"embedding_dimension": 8, "pooling_mode": ["max", "cls"]}"#) == [.max, .cls])
        #expect(try modes(#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#) == [.max, .mean])
        #expect(try modes(#"{"word_embedding_dimension": 8, "pooling_mode_lasttoken": true}"#) == [.lastToken])
        let e = #expect(throws: InferenceError.self) { try modes(#"{"embedding_dimension": 8, "pooling_mode": "median"}"#) }
        #expect(e?.description.contains("median") == true)
        let w = #expect(throws: InferenceError.self) { try modes(#"{"embedding_dimension": 16, "pooling_mode": "mean"}"#) }
        #expect(w?.description.contains("hidden size is 8") == true)
    }

    /// The relative position buckets of MPNet, against transformers' table for offsets -129...129.
    @Test func mpnetBuckets() throws {
        let doc = try #require(try loadJSON("encoders/mpnet/reference.json") as? [String: Any])
        let table = try #require((doc["checks"] as? [String: Any])?["relative_position_buckets"] as? [String: Any])
        let from = table["key_minus_query_from"] as! Int
        let buckets = table["buckets"] as! [Int]
        #expect(buckets.count == 259)
        for (i, b) in buckets.enumerated() { #expect(MPNet.bucket(from + i) == b, "offset \(from + i)") }
    }

    /// Config keys that change an encoder's math and are not implemented are refused by name.
    @Test func unimplementedEncoderKeysAreRefused() throws {
        func refusal(_ family: String, _ edit: (inout [String: Any]) -> Void) throws -> String? {
            let dir = TempDir()
            let folder = dir.file("m")
            try FileManager.default.copyItem(atPath: inferenceFixture("encoders/\(family)"), toPath: folder)
            var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))) as? [String: Any])
            edit(&config)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: folder + "/config.json"))
            _ = try Converter(options: ConversionOptions()).convert(from: folder, to: dir.file("m.folio"))
            do { _ = try SentenceEmbedder(path: dir.file("m.folio")); return nil } catch { return "\(error)" }
        }
        let relative = try refusal("roberta") { $0["position_embedding_type"] = "relative_key" }
        #expect(relative?.contains("position_embedding_type 'relative_key'") == true, "\(relative ?? "accepted")")
        let unknown = try refusal("modernbert") { $0["attention_sink_size"] = 4 }
        #expect(unknown?.contains("config key 'attention_sink_size'") == true, "\(unknown ?? "accepted")")
        let layer = try refusal("modernbert") { $0["layer_types"] = ["full_attention", "chunked_attention", "full_attention"] }
        #expect(layer?.contains("chunked_attention") == true, "\(layer ?? "accepted")")
        let act = try refusal("distilbert") { $0["activation"] = "swiglu" }
        #expect(act?.contains("swiglu") == true, "\(act ?? "accepted")")
    }
}

/// Each encoder fixture's tokenizer against Hugging Face `tokenizers` on the 189 strings of
/// the SentencePiece cases (Tools/reference/make_encoder_tokenizer_cases.py).
@Suite struct EncoderTokenizerTests {
    @Test(arguments: EncoderTests.families)
    func idsMatchTokenizers(_ family: String) throws {
        let load = { (rel: String) throws -> JSONValue in
            try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture(rel)))))
        }
        let strings = (try load("sentencepiece/cases.json")["strings"]?.arrayValue ?? []).compactMap(\.stringValue)
        let want = try load("encoders/tokenizer_cases.json")["families"]?[family]?["ids"]?.arrayValue ?? []
        #expect(strings.count >= 50 && want.count == strings.count)
        let tok = try Tokenizers.load(json: [UInt8](try Data(contentsOf: URL(fileURLWithPath: inferenceFixture("encoders/\(family)/tokenizer.json")))),
                                      file: "\(family)/tokenizer.json")
        var wrong = 0
        for (s, w) in zip(strings, want) {
            let got = tok.encode(s, addSpecialTokens: true).map(Int.init)
            let expected = (w.arrayValue ?? []).compactMap(\.intValue)
            if got != expected {
                wrong += 1
                if wrong <= 5 { Issue.record("\(family) \(s.debugDescription): \(got) want \(expected)") }
            }
        }
        #expect(wrong == 0, "\(family): \(wrong) of \(strings.count) differ")
    }
}
