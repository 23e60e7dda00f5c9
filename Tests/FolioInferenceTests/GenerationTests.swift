import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference

/// Generation settings against transformers' generate (Tools/reference/make_generation_fixtures.py):
/// the tokens each sampling setting may draw and their probabilities, greedy decoding with a
/// repetition penalty; and stop strings, end-of-sequence lists and the position limit.
@Suite struct GenerationTests {
    static func reference() throws -> [String: Any] {
        try #require(try loadJSON("generation/reference.json") as? [String: Any])
    }

    /// temperature, top-k, top-p, min-p and the repetition penalty in transformers' order: the
    /// same tokens survive, with the same probabilities.
    @Test func distributionsMatchTransformers() throws {
        let ref = try Self.reference()
        #expect(ref["processors"] as? [String] == ["RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper",
                                                    "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper"])
        let logits = (ref["logits"] as! [Double]).map(Float.init)
        let history = (ref["history"] as! [Int]).map(Int32.init)
        let cases = ref["distributions"] as! [[String: Any]]
        #expect(cases.count == 8)
        for c in cases {
            let s = c["settings"] as! [String: Double]
            var sampler = Sampler(temperature: Float(s["temperature"]!), topP: Float(s["top_p"] ?? 1), seed: 1,
                                  topK: Int(s["top_k"] ?? 0), minP: Float(s["min_p"] ?? 0),
                                  repetitionPenalty: Float(s["repetition_penalty"] ?? 1))
            sampler.observe(history)
            let (ids, weights) = logits.withUnsafeBufferPointer { sampler.distribution($0) }
            let want = c["ids"] as! [Int], wantP = c["probs"] as! [Double]
            #expect(ids == want, "\(s): \(ids.count) tokens kept, transformers keeps \(want.count)")
            let total = weights.reduce(0, +)
            let worst = zip(weights, wantP).map { abs($0 / total - $1) }.max() ?? 0
            #expect(worst < 1e-6, "\(s): probabilities differ by \(worst)")
            // Draws come from the kept set only.
            for _ in 0..<200 {
                let t = logits.withUnsafeBufferPointer { sampler.next($0) }
                #expect(want.contains(Int(t)))
            }
        }
    }

    /// A seed fixes the draw; top-k 1 and min-p 1 are greedy whatever the seed.
    @Test func seededDrawsAndDegenerateSettings() throws {
        let logits = (try Self.reference()["logits"] as! [Double]).map(Float.init)
        let best = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        for seed in UInt64(0)..<50 {
            var k1 = Sampler(temperature: 1.5, topP: 1, seed: seed, topK: 1)
            var p1 = Sampler(temperature: 1.5, topP: 1, seed: seed, minP: 1)
            #expect(logits.withUnsafeBufferPointer { k1.next($0) } == Int32(best))
            #expect(logits.withUnsafeBufferPointer { p1.next($0) } == Int32(best))
        }
        var a = Sampler(temperature: 1, topP: 1, seed: 9), b = Sampler(temperature: 1, topP: 1, seed: 9)
        let da = (0..<64).map { _ in logits.withUnsafeBufferPointer { a.next($0) } }
        let db = (0..<64).map { _ in logits.withUnsafeBufferPointer { b.next($0) } }
        #expect(da == db && Set(da).count > 5)
    }

    /// Greedy with repetition_penalty 1.2 and 2.0: the tokens of transformers' generate.
    @Test func penalizedGreedyMatchesTransformers() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: inferenceFixture("families/qwen2"), to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        let runs = try Self.reference()["penalized_greedy"] as! [[String: Any]]
        #expect(runs.count == 2)
        var plain = GenerationOptions()
        plain.maxTokens = 32
        for r in runs {
            let prompt = (r["prompt"] as! [Int]).map(Int32.init)
            var o = plain
            o.repetitionPenalty = Float(r["repetition_penalty"] as! Double)
            let got = try g.generate(prompt: prompt, options: o).tokens.map(Int.init)
            #expect(got == r["tokens"] as! [Int], "repetition penalty \(o.repetitionPenalty)")
            #expect(got != (try g.generate(prompt: prompt, options: plain).tokens.map(Int.init)))
        }
    }

    /// Stop strings: the text ends before the first one, streaming never shows any of it,
    /// and the streamed pieces add up to the text.
    @Test func stopStrings() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: inferenceFixture("runner/tiny-llama"), to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        let prompt = try g.encode("Once upon")
        var o = GenerationOptions()
        o.maxTokens = 48
        var streamed = ""
        let full = try g.generate(prompt: prompt, options: o) { streamed += $0 }
        #expect(streamed == full.text && full.finishReason == "length")
        let bytes = Array(full.text.utf8)
        try #require(bytes.count > 40, "the greedy text is too short for the test: \(full.text.debugDescription)")
        // A stop string from the middle of the text, and one that never occurs.
        let stop = String(decoding: bytes[20..<26], as: UTF8.self)
        try #require(stop.utf8.count == 6, "the cut fell inside a character")
        let cut = try #require(full.text.range(of: stop))
        o.stop = ["never-in-this-text\u{1}", stop]
        var pieces: [String] = []
        let r = try g.generate(prompt: prompt, options: o) { pieces.append($0) }
        #expect(r.text == String(full.text[..<cut.lowerBound]))
        #expect(pieces.joined() == r.text)
        #expect(r.finishReason == "stop")
        #expect(r.tokens.count < full.tokens.count && full.tokens.starts(with: r.tokens))
        o.stop = ["never-in-this-text\u{1}"]
        #expect(try g.generate(prompt: prompt, options: o).text == full.text)
    }

    /// Every id of an eos_token_id list in config.json or generation_config.json ends the text.
    @Test func everyEndOfSequenceIDStops() throws {
        let src = inferenceFixture("families/qwen2")
        let ref = try FamilyTests.reference("qwen2")
        let greedy = ref.greedy[0]
        let prompt = ref.prompts[greedy.prompt].ids
        let stopAt = greedy.tokens[10]
        let first = greedy.tokens.firstIndex(of: stopAt)!
        let dir = TempDir()
        let model = dir.file("src")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: src + "/" + f, toPath: model + "/" + f)
        }
        try #"{"eos_token_id": [2, \#(stopAt)], "bos_token_id": 1}"#.write(toFile: model + "/generation_config.json", atomically: true, encoding: .utf8)
        _ = try Converter(options: ConversionOptions()).convert(from: model, to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        #expect(g.eosIDs == [2, stopAt])
        var o = GenerationOptions()
        o.maxTokens = 32
        let r = try g.generate(prompt: prompt, options: o)
        #expect(r.tokens == Array(greedy.tokens[...first]) && r.finishReason == "eos")
    }

    /// A prompt and token budget past max_position_embeddings is refused before any work.
    @Test func positionLimitIsRefusedUpFront() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: inferenceFixture("families/qwen2"), to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        #expect(g.positionLimit == 256)
        var o = GenerationOptions()
        o.maxTokens = 250
        let e = #expect(throws: InferenceError.self) { try g.generate(prompt: [1, 5, 6, 7, 8, 9, 10], options: o) }
        #expect(e?.description.contains("257 positions") == true && e?.description.contains("allows 256") == true)
        o.maxTokens = 249
        #expect(try g.generate(prompt: [1, 5, 6, 7, 8, 9, 10], options: o).tokens.count > 0)
    }
}
