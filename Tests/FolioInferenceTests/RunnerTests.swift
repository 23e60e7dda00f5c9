import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference

/// The runner against mlx-lm on tiny random models (Tools/reference/make_runner_fixtures.py):
/// logits at every prompt position, greedy continuations, incremental decoding, quantized
/// n-gram tables, the checkpoint's own longcat semantics, and refusals of what it cannot run.
@Suite struct RunnerTests {
    struct Reference {
        let prompts: [(index: Int, name: String, ids: [Int32], logits: String)]
        let greedy: [(prompt: Int, maxTokens: Int, tokens: [Int32])]
        let text: String
        let textIDs: [Int32]
    }

    static func reference(_ model: String) throws -> Reference {
        let json = try loadJSON("runner/\(model)/reference.json") as! [String: Any]
        let prompts = (json["prompts"] as! [[String: Any]]).map {
            ($0["index"] as! Int, $0["name"] as! String, ($0["ids"] as! [Int]).map(Int32.init), $0["logits"] as! String)
        }
        let greedy = (json["greedy"] as! [[String: Any]]).map {
            ($0["prompt_index"] as! Int, $0["max_tokens"] as! Int, ($0["tokens"] as! [Int]).map(Int32.init))
        }
        let text = json["text_prompt"] as! [String: Any]
        return Reference(prompts: prompts, greedy: greedy, text: text["text"] as! String, textIDs: (text["ids"] as! [Int]).map(Int32.init))
    }

    static func convert(_ model: String, in dir: TempDir, rules: [(String, Encoding)] = []) throws -> String {
        let out = dir.file("\(model).folio")
        let options = ConversionOptions(rules: rules.map { (Glob($0.0), $0.1) })
        _ = try Converter(options: options).convert(from: inferenceFixture("runner/\(model)"), to: out)
        return out
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test(arguments: [("tiny-llama", "checkpoint"), ("tiny-llama-tied-yarn", "checkpoint"), ("tiny-longcat", "mlx-lm")])
    func logitsAndGreedyMatchMLXLM(_ model: String, _ semantics: String) throws {
        let dir = TempDir()
        let g = try TextGenerator(path: try Self.convert(model, in: dir), semantics: semantics)
        let ref = try Self.reference(model)
        #expect(ref.prompts.contains { $0.ids.count >= 64 })
        var worst: Float = 0, worstStep: Float = 0
        defer { print("\(model) vs mlx-lm: max |Δlogit| \(worst), incremental vs full \(worstStep) over \(ref.prompts.count) prompts") }
        for p in ref.prompts {
            let want = try npyRows(inferenceFixture("runner/\(model)/\(p.logits)")).flatMap { $0 }
            let got = try g.logits(p.ids)
            #expect(got.count == want.count)
            let d = Self.maxAbsDiff(got, want)
            #expect(d <= 1e-4, "\(model) prompt \(p.index) (\(p.name)): max |Δlogit| \(d)")
            worst = max(worst, d)
            // Incremental decoding through the caches gives the full pass's logits.
            let step = try g.logitsIncrementally(p.ids)
            let ds = Self.maxAbsDiff(step, got)
            #expect(ds <= 1e-4, "\(model) prompt \(p.index): incremental vs full max |Δ| \(ds)")
            worstStep = max(worstStep, ds)
        }
        for r in ref.greedy {
            var o = GenerationOptions()
            o.maxTokens = r.maxTokens
            let out = try g.generate(prompt: ref.prompts[r.prompt].ids, options: o)
            #expect(out.tokens == r.tokens, "\(model) greedy from prompt \(r.prompt)")
        }
        #expect(try g.encode(ref.text) == ref.textIDs)
    }

    static func sliceCosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / max(1e-300, (aa * bb).squareRoot())
    }

    /// The same fixtures stored in bf16 and with `--weights int8` / `--weights int4`, run from
    /// their stored encodings (by the prompt pass: integer matrix products for int8/int4,
    /// weight tiles for bf16; and one token at a time through the matrix-vector kernels;
    /// both with quantized inputs), against float32 runs of the
    /// very values stored (the file dequantized to float32): what the kernels add. What the
    /// schemes themselves lose against the original float32 weights is printed (these tiny
    /// random models, hidden 64, with logits of deviation 4.5, exaggerate it).
    @Test(arguments: [("tiny-llama", "checkpoint"), ("tiny-llama-tied-yarn", "checkpoint"), ("tiny-longcat", "mlx-lm")])
    func storedEncodingsAgainstFloat32(_ model: String, _ semantics: String) throws {
        let dir = TempDir()
        let ref = try Self.reference(model)
        for variant in ["bf16", "int8", "int4"] {
            var options = ConversionOptions()
            if variant == "bf16" { options.rules = [(Glob("*"), .plain(.bf16))] } else { options.weights = try WeightsPreset.parse(variant) }
            let path = dir.file("\(model)-\(variant).folio"), plain = dir.file("\(model)-\(variant)-f32.folio")
            _ = try Converter(options: options).convert(from: inferenceFixture("runner/\(model)"), to: path)
            _ = try Converter(options: ConversionOptions(rules: [(Glob("*"), .plain(.f32))])).convert(from: path, to: plain)
            let file = try FolioFile(path: path)
            if variant != "bf16" {
                // Every linear weight is stored quantized as records (format version 3).
                #expect(file.header.version == FolioFormat.recordsVersion)
                let q = file.header.tensors.filter { $0.name.contains("q_proj") || $0.name.contains("gate_proj") }
                #expect(!q.isEmpty && q.allSatisfy { $0.paged?.isRecords == true && $0.encoding.isQuantized }, "\(model) \(variant): linear weights not quantized records")
            }
            let g = try TextGenerator(path: path, semantics: semantics), f = try TextGenerator(path: plain, semantics: semantics)
            var worst = Double.infinity, worstAbs: Float = 0, lossCos = Double.infinity, lossAbs: Float = 0
            for p in ref.prompts {
                let want = try f.logits(p.ids)
                let original = try npyRows(inferenceFixture("runner/\(model)/\(p.logits)")).flatMap { $0 }
                let v = want.count / p.ids.count
                for (which, got) in [("prompt pass", try g.logits(p.ids)), ("one token at a time", try g.logitsIncrementally(p.ids))] {
                    #expect(got.count == want.count)
                    for i in 0..<p.ids.count {
                        let a = got[(i * v)..<((i + 1) * v)], b = want[(i * v)..<((i + 1) * v)]
                        let c = Self.sliceCosine(a, b), d = Self.maxAbsDiff(Array(a), Array(b))
                        worst = min(worst, c)
                        worstAbs = max(worstAbs, d)
                        lossCos = min(lossCos, Self.sliceCosine(a, original[(i * v)..<((i + 1) * v)]))
                        lossAbs = max(lossAbs, Self.maxAbsDiff(Array(a), Array(original[(i * v)..<((i + 1) * v)])))
                        switch variant {
                        case "bf16": #expect(d <= 1e-2, "\(model) bf16 \(which) prompt \(p.index) position \(i): max |Δlogit| \(d)")
                        case "int8": #expect(c >= 0.9999, "\(model) int8 \(which) prompt \(p.index) position \(i): cosine \(c)")
                        default: #expect(c >= 0.99, "\(model) int4 \(which) prompt \(p.index) position \(i): cosine \(c)")
                        }
                    }
                }
            }
            print("\(model) \(variant): vs float32 of the stored values min cosine \(worst), max |Δlogit| \(worstAbs); vs the original float32 weights min cosine \(lossCos), max |Δlogit| \(lossAbs)")
        }
    }

    /// The checkpoint's own code: n-gram history reset after an end token, eps 1e-6 in the
    /// LoRA norms (references made by the fixture script with those two changes).
    @Test func longcatCheckpointSemantics() throws {
        let dir = TempDir()
        let g = try TextGenerator(path: try Self.convert("tiny-longcat", in: dir))
        let ref = try Self.reference("tiny-longcat")
        var checked = 0
        var worst: Float = 0
        for p in ref.prompts {
            let path = inferenceFixture("runner/tiny-longcat/checkpoint_\(p.logits)")
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let d = Self.maxAbsDiff(try g.logits(p.ids), try npyRows(path).flatMap { $0 })
            #expect(d <= 1e-4, "prompt \(p.index) (\(p.name)): max |Δlogit| \(d)")
            worst = max(worst, d)
            checked += 1
        }
        print("tiny-longcat, checkpoint semantics: max |Δlogit| \(worst) over \(checked) prompts")
        #expect(checked >= 5)
    }

    /// The n-gram hash: the fixture's ids for both semantics, and 64-bit exactness at the
    /// paper's sizes.
    @Test func ngramIDs() throws {
        let json = try loadJSON("runner/tiny-longcat/reference.json") as! [String: Any]
        let ex = (json["checks"] as! [String: Any])["ngram_ids_example"] as! [String: Any]
        let tokens = (ex["ids"] as! [Int]).map(Int32.init)
        let h = try NgramHasher(vocabSize: 512, ratio: 3, splits: 2, neighbors: 3)
        for (key, reset) in [("mlx_lm", false), ("checkpoint_eos_reset", true)] {
            let want = ex[key] as! [[Int]]
            var got = [[Int]](repeating: [], count: h.tables.count)
            var floor = 0
            var out = [Int64](repeating: 0, count: h.tables.count)
            tokens.withUnsafeBufferPointer { b in
                for t in 0..<tokens.count {
                    h.ids(b, at: t, floor: floor, into: &out)
                    for i in 0..<out.count { got[i].append(Int(out[i])) }
                    if reset && tokens[t] == 2 { floor = t + 1 }
                }
            }
            #expect(got == want, "\(key)")
        }
        // LongCat-Flash-Lite: V = 131072, ratio 78, k = 4, n = 4. V^d is reduced mod M first; a
        // sum of the largest tokens must equal the 128-bit reference.
        let big = try NgramHasher(vocabSize: 131_072, ratio: 78, splits: 4, neighbors: 4)
        #expect(big.tables.count == 12 && big.tables[0].modulus == 10_223_617 && big.tables[11].modulus == 10_223_617 + 22)
        let toks: [Int32] = [131_071, 131_070, 131_069, 131_071]
        var out = [Int64](repeating: 0, count: 12)
        toks.withUnsafeBufferPointer { big.ids($0, at: 3, into: &out) }
        for (i, t) in big.tables.enumerated() {
            var want: UInt64 = 0
            let m = UInt64(t.modulus)
            var p: UInt64 = 1
            want = UInt64(toks[3]) % m
            for d in 1..<t.length {
                p = (p * 131_072) % m
                want = (want + UInt64(toks[3 - d]) * p % m) % m
            }
            #expect(out[i] == Int64(want), "table \(i)")
        }
    }

    /// Quantized n-gram tables (tiny-longcat-wide: rows of 32 values, so int4/g32 applies;
    /// see make_runner_fixtures.py for its conditioning): logits cosine against float at every
    /// position of every prompt. The figures are printed for the closing note.
    @Test func quantizedNgramTables() throws {
        let dir = TempDir()
        let ref = try Self.reference("tiny-longcat-wide")
        let float = try TextGenerator(path: try Self.convert("tiny-longcat-wide", in: dir))
        // (scheme, bound on the minimum, bound on the mean)
        for (scheme, minBound, meanBound) in [(Encoding.int8(group: nil), 0.999, 0.9999), (.int4(group: 32), 0.99, 0.995)] {
            let sub = TempDir()
            let q = try TextGenerator(path: try Self.convert("tiny-longcat-wide", in: sub, rules: [("model.ngram_embeddings.embedders.*", scheme)]))
            #expect(q.source.tensorNames.filter { $0.contains(".embedders.") }.allSatisfy { q.source.parts(of: $0)![0].tensor.encoding == scheme })
            var worst = 1.0, sum = 0.0, rows = 0
            for p in ref.prompts {
                let a = try float.logits(p.ids), b = try q.logits(p.ids)
                let v = float.vocabSize
                for r in 0..<p.ids.count {
                    let c = cosine(Array(a[(r * v)..<((r + 1) * v)]), Array(b[(r * v)..<((r + 1) * v)]))
                    worst = min(worst, c); sum += c; rows += 1
                }
            }
            print("tiny-longcat-wide \(scheme.name) n-gram tables: logits cosine min \(worst), mean \(sum / Double(rows)) over \(rows) positions")
            #expect(worst >= minBound, "\(scheme.name): min cosine \(worst)")
            #expect(sum / Double(rows) >= meanBound, "\(scheme.name): mean cosine \(sum / Double(rows))")
        }
    }

    /// A prompt longer than a prefill chunk gives the logits of one full pass (the model's
    /// max_position_embeddings raised to 1024 for it; YaRN's frequencies depend only on the
    /// original context).
    @Test func longPromptsArePrefilledInChunks() throws {
        let dir = TempDir()
        let src = dir.file("src")
        try FileManager.default.copyItem(atPath: inferenceFixture("runner/tiny-longcat"), toPath: src)
        let config = try String(contentsOfFile: src + "/config.json", encoding: .utf8)
        try #require(config.contains("\"max_position_embeddings\": 256"))
        try config.replacingOccurrences(of: "\"max_position_embeddings\": 256", with: "\"max_position_embeddings\": 1024")
            .write(toFile: src + "/config.json", atomically: true, encoding: .utf8)
        _ = try Converter(options: ConversionOptions()).convert(from: src, to: dir.file("m.folio"))
        let g = try TextGenerator(path: dir.file("m.folio"))
        #expect(g.positionLimit == 1024)
        var rng = SplitMix64(seed: 4)
        let prompt = (0..<(TextGenerator.prefillChunk + 77)).map { _ in Int32(4 + rng.next() % 500) }
        var o = GenerationOptions()
        o.maxTokens = 0
        o.promptLogits = true
        let chunked = try g.generate(prompt: prompt, options: o).promptLogits
        let whole = try g.logits(prompt)
        #expect(chunked.count == whole.count)
        #expect(Self.maxAbsDiff(chunked, whole) <= 1e-4)
    }

    /// Sampling: a seed fixes the draw; top-p near 0 is greedy; temperature 0 is argmax.
    @Test func sampling() throws {
        let dir = TempDir()
        let g = try TextGenerator(path: try Self.convert("tiny-llama", in: dir))
        var o = GenerationOptions()
        o.maxTokens = 24; o.temperature = 1; o.seed = 7
        let a = try g.generate(prompt: [510, 329], options: o), b = try g.generate(prompt: [510, 329], options: o)
        #expect(a.tokens == b.tokens)
        o.seed = 8
        let c = try g.generate(prompt: [510, 329], options: o)
        #expect(c.tokens != a.tokens)
        o.topP = 1e-6
        var greedy = GenerationOptions()
        greedy.maxTokens = 24
        #expect(try g.generate(prompt: [510, 329], options: o).tokens == g.generate(prompt: [510, 329], options: greedy).tokens)
    }

    /// What the runner cannot run gives one clear error, never a crash.
    @Test func unsupportedModelsAndConfigs() throws {
        let src = inferenceFixture("runner/tiny-llama")
        let config = try String(contentsOfFile: src + "/config.json", encoding: .utf8)
        let cases: [(String, String, String)] = [
            ("\"model_type\": \"llama\"", "\"model_type\": \"mamba\"", "model_type 'mamba' is not supported"),
            ("\"hidden_act\": \"silu\"", "\"hidden_act\": \"swiglu_v7\"", "hidden_act 'swiglu_v7' is not implemented"),
            ("\"rope_type\": \"llama3\"", "\"rope_type\": \"longrope\"", "rope_scaling type 'longrope'"),
            ("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "num_key_value_heads"),
            ("\"hidden_size\": 64", "\"hidden_size\": 48", "shape"),
            ("\"vocab_size\": 512", "\"vocab_size\": \"512\"", "vocab_size"),
        ]
        for (from, to, message) in cases {
            let dir = TempDir()
            let folder = dir.file("m")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for f in ["model.safetensors", "tokenizer.json"] { try FileManager.default.copyItem(atPath: src + "/" + f, toPath: folder + "/" + f) }
            #expect(config.contains(from))
            try config.replacingOccurrences(of: from, with: to).write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
            _ = try Converter(options: ConversionOptions()).convert(from: folder, to: dir.file("m.folio"))
            do {
                _ = try TextGenerator(path: dir.file("m.folio"))
                Issue.record("\(to) was accepted")
            } catch let e as InferenceError {
                #expect(e.description.contains(message), "\(e.description)")
                #expect(!e.description.contains("\n"))
            }
        }
        // A lone weights file has no config.
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: src + "/model.safetensors", to: dir.file("bare.folio"))
        #expect(throws: InferenceError.self) { try TextGenerator(path: dir.file("bare.folio")) }
        // Token ids outside the vocabulary.
        _ = try Converter(options: ConversionOptions()).convert(from: src, to: dir.file("ok.folio"))
        let g = try TextGenerator(path: dir.file("ok.folio"))
        #expect(throws: InferenceError.self) { try g.logits([0, 512]) }
    }
}
