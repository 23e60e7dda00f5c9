import Foundation
import Testing

/// `folio convert X out.gguf`: the GGUF read back by Folio's own GGUF reader runs to the same
/// logits as the source (the export's names, row permutation, blocks and rope factors are
/// what llama.cpp's converter writes, and Folio reads llama.cpp's layout); bad sources exit 1
/// with one line. (llama.cpp itself: Tools/reference/check_gguf_export.py.)
@Suite struct GGUFExportCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    /// float32 [rows, cols] of a .npy written by `folio run --logits`.
    func logits(_ path: String) throws -> [[Float]] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(d[8]) | Int(d[9]) << 8
        let header = String(decoding: d[10..<(10 + headerLength)], as: UTF8.self)
        let shape = try #require(header.range(of: #"\(\d+, \d+\)"#, options: .regularExpression).map { header[$0] })
        let dims = shape.dropFirst().dropLast().split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
        let body = d[(10 + headerLength)...]
        let values = body.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(values.count == dims[0] * dims[1])
        return (0..<dims[0]).map { Array(values[($0 * dims[1])..<(($0 + 1) * dims[1])]) }
    }

    func expectSameLogits(_ a: [[Float]], _ b: [[Float]], minCosine: Double, _ what: String) {
        #expect(a.count == b.count, "\(what): positions")
        for (x, y) in zip(a, b) {
            var dot = 0.0, nx = 0.0, ny = 0.0
            for (u, v) in zip(x, y) { dot += Double(u) * Double(v); nx += Double(u) * Double(u); ny += Double(v) * Double(v) }
            let cos = dot / (nx.squareRoot() * ny.squareRoot())
            #expect(cos >= minCosine, "\(what): cosine \(cos)")
            #expect(x.indices.max { x[$0] < x[$1] } == y.indices.max { y[$0] < y[$1] }, "\(what): argmax")
        }
    }

    /// The 256 byte symbols of GPT-2's byte-level alphabet as a tokenizer.json with no merges.
    static func byteTokenizer() throws -> Data {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs, n = 0
        for b in 0..<256 where !bs.contains(b) { bs.append(b); cs.append(256 + n); n += 1 }
        var vocab: [String: Int] = [:]
        for (i, c) in cs.enumerated() { vocab[String(Character(Unicode.Scalar(c)!))] = i }
        let doc: [String: Any] = [
            "version": "1.0", "added_tokens": [Any](),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "vocab": vocab, "merges": [Any]()],
        ]
        return try JSONSerialization.data(withJSONObject: doc)
    }

    func run(_ model: String, _ ids: [Int], _ out: String) throws -> [[Float]] {
        let r = try folio("run", model, "--tokens", ids.map(String.init).joined(separator: ","), "--max-tokens", "0", "--logits", out, "--threads", "1")
        #expect(r.status == 0, "\(r.stderr)")
        return try logits(out)
    }

    @Test func trainedTwinRoundTripsThroughGGUF() throws {
        let s = Scratch()
        let twin = Self.fixtures + "/trained/twin.folio"
        let c = try folio("convert", twin, s.file("twin.gguf"), "--json")
        #expect(c.status == 0, "\(c.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(c.stdout.utf8)) as? [String: Any])
        let schemes = (doc["tensors"] as? [[String: Any]] ?? []).compactMap { $0["scheme"] as? String }
        #expect(schemes.contains("blk.0.attn_q.weight Q4_1") && schemes.contains("output.weight Q8_0") && schemes.contains("blk.0.ffn_down.weight BF16"))
        #expect(try folio("inspect", s.file("twin.gguf")).stdout.contains("blk.4.ffn_norm.weight"))
        // Back into Folio, the ggml blocks carried without loss, and run through the GGUF llama path.
        #expect(try folio("convert", s.file("twin.gguf"), s.file("back.folio"), "--keep-quantized").status == 0)
        let ids = (0..<48).map { ($0 * 131 + 7) % 8192 }
        expectSameLogits(try run(twin, ids, s.file("a.npy")), try run(s.file("back.folio"), ids, s.file("b.npy")), minCosine: 0.99999, "twin")
    }

    @Test func llama3RopeAndTransformers5ConfigRoundTrip() throws {
        let s = Scratch()
        let folder = s.file("llama")
        try FileManager.default.copyItem(atPath: Self.fixtures + "/families/llama-rope-parameters", toPath: folder)
        try Self.byteTokenizer().write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
        #expect(try folio("convert", folder, s.file("m.folio")).status == 0)
        let c = try folio("convert", s.file("m.folio"), s.file("m.gguf"))
        #expect(c.status == 0, "\(c.stderr)")
        let inspect = try folio("inspect", s.file("m.gguf"), "--json").stdout
        #expect(inspect.contains("rope_freqs.weight"), "llama3 scaling is stored as rope_freqs")
        #expect(try folio("convert", s.file("m.gguf"), s.file("back.folio")).status == 0)
        let ids = (0..<100).map { ($0 * 37 + 3) % 256 }  // beyond original_max_position_embeddings 32
        expectSameLogits(try run(s.file("m.folio"), ids, s.file("a.npy")), try run(s.file("back.folio"), ids, s.file("b.npy")), minCosine: 0.99999, "llama3")

        // Quantized on the way (--weights int8): Q8_0 blocks, read back without loss.
        let q = try folio("convert", folder, s.file("q.gguf"), "--weights", "int8", "--json")
        #expect(q.status == 0, "\(q.stderr)")
        #expect(q.stdout.contains("blk.1.ffn_up.weight Q8_0") && q.stdout.contains("\"cosine\""))
    }

    @Test func sourcesGGUFCannotHoldAreRefused() throws {
        let s = Scratch()
        // A sliding window shorter than the context: llama.cpp's llama has none.
        var r = try folio("convert", Self.fixtures + "/families/mistral", s.file("a.gguf"))
        #expect(r.status == 1 && r.stderr.contains("'sliding_window'") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        // No tokenizer: llama.cpp cannot load the file.
        r = try folio("convert", Self.fixtures + "/families/llama-rope-parameters", s.file("b.gguf"))
        #expect(r.status == 1 && r.stderr.contains("tokenizer.json"), "\(r.stderr)")
        // An architecture without a GGUF mapping.
        r = try folio("convert", Self.fixtures + "/runner/tiny-longcat", s.file("c.gguf"))
        #expect(r.status == 1 && r.stderr.contains("model_type 'longcat_flash_ngram'"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.file("a.gguf")) && !FileManager.default.fileExists(atPath: s.file("c.gguf")))
    }
}

/// `folio run --chat`: the prompt goes through the carried chat template.
@Suite struct ChatCLITests {
    @Test func chatPromptIsTheTemplatesTextEncoded() throws {
        let s = Scratch()
        let fixtures = GGUFExportCLITests.fixtures
        let folder = s.file("mistral")
        try FileManager.default.copyItem(atPath: fixtures + "/families/mistral", toPath: folder)
        try GGUFExportCLITests.byteTokenizer().write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
        // Room for the long prompt of the features template.
        var cfg = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))) as? [String: Any])
        cfg["max_position_embeddings"] = 2048
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: folder + "/config.json"))
        let template = try String(contentsOfFile: fixtures + "/chat-templates/features.jinja", encoding: .utf8)
        let config: [String: Any] = ["bos_token": "<s>", "eos_token": "</s>", "chat_template": template]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"))
        #expect(try folio("convert", folder, s.file("m.folio")).status == 0)
        // The rendered text transformers gives (cases.json) for one user message with a generation prompt.
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixtures + "/chat-templates/cases.json"))) as? [String: Any])
        let cases = try #require(doc["cases"] as? [[String: Any]])
        let c = try #require(cases.first { $0["template"] as? String == "features" && $0["conversation"] as? String == "user" && $0["add_generation_prompt"] as? Bool == true })
        let expected = try #require(c["expected"] as? String)
        let user = try #require((c["messages"] as? [[String: Any]])?.first?["content"] as? String)
        func promptTokens(_ args: [String]) throws -> [Int] {
            let r = try folio(["run", s.file("m.folio"), "--max-tokens", "0", "--json"] + args)
            #expect(r.status == 0, "\(r.stderr)")
            let d = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return try #require(d["prompt_tokens"] as? [Int])
        }
        let chat = try promptTokens(["--chat", "--prompt", user])
        #expect(chat == (try promptTokens(["--prompt", expected])))
        // The same conversation from a messages file.
        try JSONSerialization.data(withJSONObject: [["role": "user", "content": user]]).write(to: URL(fileURLWithPath: s.file("m.json")))
        #expect(try promptTokens(["--chat", "--messages", s.file("m.json")]) == chat)
        // A model without a template says so.
        let r = try folio("run", fixtures + "/trained/twin.folio", "--chat", "--prompt", "hi", "--max-tokens", "1")
        #expect(r.status == 1 && r.stderr.contains("has no chat template"), "\(r.stderr)")
    }
}
