import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference

/// The models trained on the GPU machine (Tools/train; logs in Tools/train/runs): the n-gram
/// embedding model (int8/g32 backbone, int4/g16 n-gram tables, zstd) and its Llama twin
/// (int4/g32, zstd), as committed. Held-out code (Tests/Fixtures/trained/heldout_ids.txt: 20
/// prompts and their continuations from packages never trained on) is predicted far better
/// than chance (perplexity 8192), at the perplexities `folio perplexity` reports for these files,
/// and speculative decoding with the twin as draft, or by prompt lookup, gives the plain greedy text.
@Suite struct TrainedModelTests {
    static func ids() throws -> [Int32] {
        try String(contentsOfFile: inferenceFixture("trained/heldout_ids.txt"), encoding: .utf8)
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map { Int32($0)! }
    }

    @Test func heldOutPerplexity() throws {
        let ids = try Self.ids()
        #expect(ids.count == 3860)
        for (name, bound) in [("ngram", 11.5), ("twin", 10.5)] {
            let g = try TextGenerator(path: inferenceFixture("trained/\(name).folio"))
            let r = try g.perplexity(ids, window: 256, stride: 128)
            #expect(r.perplexity < bound, "\(name): perplexity \(r.perplexity)")
            print("trained \(name): held-out perplexity \(r.perplexity)")
        }
    }

    @Test func codeCompletionAndSpeculativeDecoding() throws {
        let ngram = try TextGenerator(path: inferenceFixture("trained/ngram.folio"))
        let twin = try TextGenerator(path: inferenceFixture("trained/twin.folio"))
        var o = GenerationOptions()
        o.maxTokens = 48
        let prompt = try ngram.encode("def fibonacci(n):")
        let plain = try ngram.generate(prompt: prompt, options: o)
        // Real code: mostly printable ASCII with newlines and indentation.
        #expect(plain.text.contains("\n    ") && plain.text.unicodeScalars.allSatisfy { $0.isASCII })
        for d in [Drafter.model(twin, tokens: 4), .lookup(tokens: 8)] {
            var s = o
            s.draft = d
            let r = try ngram.generate(prompt: prompt, options: s)
            #expect(r.tokens == plain.tokens && r.draftAccepted > 0)
        }
    }
}

/// Groups of 16 are for looked-up tables: a matrix stored so is refused by name, not
/// multiplied wrongly (the product kernels quantize inputs in blocks of 32).
@Suite struct SmallGroupTests {
    @Test func matricesWithGroupsUnder32AreRefused() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions(rules: [(Glob("model.layers.0.mlp.down_proj.weight"), .int8(group: 16))]))
            .convert(from: inferenceFixture("families/qwen2"), to: dir.file("m.folio"))
        let e = #expect(throws: InferenceError.self) { try TextGenerator(path: dir.file("m.folio")) }
        #expect(e?.description.contains("model.layers.0.mlp.down_proj.weight") == true && e?.description.contains("groups of 32") == true)
    }
}

/// `convert X.folio out/`: a Hugging Face folder with the tensors and every carried file;
/// it converts back to the same model (transformers loads it too: qwen2's logits within
/// 1.5e-5 of the fixture's, checked by hand with AutoModelForCausalLM.from_pretrained).
@Suite struct FolderExportTests {
    @Test func folioToHuggingFaceFolderAndBack() throws {
        let dir = TempDir()
        for (fixture, check) in [("families/qwen2", "config.json"), ("tiny-bert", "1_Pooling/config.json")] {
            let folio = dir.file(fixture.replacingOccurrences(of: "/", with: "_") + ".folio")
            _ = try Converter(options: ConversionOptions()).convert(from: inferenceFixture(fixture), to: folio)
            let out = dir.file(fixture.replacingOccurrences(of: "/", with: "_") + "-hf/")
            _ = try Converter(options: ConversionOptions()).convert(from: folio, to: out)
            // Weights of an earlier export in the folder are removed, not left to be loaded instead.
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: out + "model-00001-of-00002.safetensors"))
            _ = try Converter(options: ConversionOptions()).convert(from: folio, to: out)
            #expect(!FileManager.default.fileExists(atPath: out + "model-00001-of-00002.safetensors"))
            for f in ["model.safetensors", check] { #expect(FileManager.default.fileExists(atPath: out + f), "\(fixture): \(f)") }
            let back = dir.file("back-" + fixture.replacingOccurrences(of: "/", with: "_") + ".folio")
            _ = try Converter(options: ConversionOptions()).convert(from: out, to: back)
            if fixture == "tiny-bert" {
                let a = try SentenceEmbedder(path: folio).embed(["a sentence"]), b = try SentenceEmbedder(path: back).embed(["a sentence"])
                #expect(a == b)
            } else {
                #expect(try TextGenerator(path: folio).logits([1, 5, 9]) == TextGenerator(path: back).logits([1, 5, 9]))
            }
        }
    }
}
