import Foundation
import Testing
import Folio

/// `folio run` as the contract drives it: JSON fields, logits as .npy, a sharded model
/// giving the same tokens as one file, bad input as one line and exit 1 or 2.
@Suite struct RunCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/runner").path

    @Test func runJSONLogitsAndShards() throws {
        let s = Scratch()
        let one = s.file("m.folio")
        #expect(try folio("convert", Self.fixtures + "/tiny-longcat", one, "--embeddings", "int8").status == 0)
        let r = try folio("run", one, "--prompt", "The quick brown fox", "--max-tokens", "8", "--json", "--logits", s.file("l.npy"))
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let prompt = try #require(doc["prompt_tokens"] as? [Int]), tokens = try #require(doc["tokens"] as? [Int])
        #expect(prompt.first == 1 && tokens.count == 8)
        #expect(doc["text"] is String && doc["prompt_tokens_per_second"] is Double && doc["tokens_per_second"] is Double)
        // float32 .npy of [prompt, vocab]
        let npy = try Data(contentsOf: URL(fileURLWithPath: s.file("l.npy")))
        let header = String(decoding: npy.prefix(128), as: UTF8.self)
        #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (\(prompt.count), 512)"))
        #expect(npy.count == 128 + prompt.count * 512 * 4)

        // Sharded, with the token and n-gram tables split across shards: the same tokens.
        let dir = s.file("sharded")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let c = try folio("convert", Self.fixtures + "/tiny-longcat", dir + "/m.folio", "--embeddings", "int8", "--max-shard-size", "20KB")
        #expect(c.status == 0, "\(c.stderr)")
        let idx = dir + "/m.folio.index.json"
        let index = try String(contentsOfFile: idx, encoding: .utf8)
        #expect(index.contains("model.ngram_embeddings.embedders.0.weight@0-") && index.contains("model.embed_tokens.weight@0-"), "tables are split")
        let r2 = try folio("run", idx, "--tokens", prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--json")
        #expect(r2.status == 0, "\(r2.stderr)")
        let doc2 = try #require(try JSONSerialization.jsonObject(with: Data(r2.stdout.utf8)) as? [String: Any])
        #expect(doc2["tokens"] as? [Int] == tokens)

        // Compressed (zstd with byte planes): the same tokens, read through the chunk cache.
        let packed = s.file("packed.folio")
        let z = try folio("convert", one, packed, "--compress", "zstd", "--byte-planes")
        #expect(z.status == 0, "\(z.stderr)")
        #expect(try folio("inspect", packed, "--json").stdout.contains("\"codec\":\"zstd\""), "tensors are stored compressed")
        let r3 = try folio("run", packed, "--tokens", prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--json")
        #expect(r3.status == 0, "\(r3.stderr)")
        let doc3 = try #require(try JSONSerialization.jsonObject(with: Data(r3.stdout.utf8)) as? [String: Any])
        #expect(doc3["tokens"] as? [Int] == tokens)

        // Compressed shards: the same tokens through the index.
        let zdir = s.file("zsharded")
        try FileManager.default.createDirectory(atPath: zdir, withIntermediateDirectories: true)
        let zc = try folio("convert", Self.fixtures + "/tiny-longcat", zdir + "/m.folio", "--embeddings", "int8", "--max-shard-size", "20KB",
                           "--compress", "zstd", "--byte-planes")
        #expect(zc.status == 0, "\(zc.stderr)")
        #expect(zc.stdout.contains("m.folio.index.json and its shards"), "\(zc.stdout)")
        #expect(try folio("verify", zdir + "/m.folio.index.json").status == 0)
        let r4 = try folio("run", zdir + "/m.folio.index.json", "--tokens", prompt.map(String.init).joined(separator: ","), "--max-tokens", "8", "--json")
        #expect(r4.status == 0, "\(r4.stderr)")
        let doc4 = try #require(try JSONSerialization.jsonObject(with: Data(r4.stdout.utf8)) as? [String: Any])
        #expect(doc4["tokens"] as? [Int] == tokens)
    }

    @Test func tiedEmbeddingsSplitAcrossShardsRunAsOneFile() throws {
        // The int8 token table is both the input table and the (tied) output matrix.
        let s = Scratch()
        let model = Self.fixtures + "/tiny-llama-tied-yarn"
        #expect(try folio("convert", model, s.file("one.folio"), "--embeddings", "int8").status == 0)
        let c = try folio("convert", model, s.file("m.folio"), "--embeddings", "int8", "--max-shard-size", "8KB")
        #expect(c.status == 0, "\(c.stderr)")
        #expect(try String(contentsOfFile: s.file("m.folio.index.json"), encoding: .utf8).contains("model.embed_tokens.weight@0-"))
        let a = try folio("run", s.file("one.folio"), "--tokens", "1,5,9,22", "--max-tokens", "8", "--json")
        let b = try folio("run", s.file("m.folio.index.json"), "--tokens", "1,5,9,22", "--max-tokens", "8", "--json")
        #expect(a.status == 0 && b.status == 0, "\(b.stderr)")
        let ta = try #require(try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any])["tokens"] as? [Int]
        let tb = try #require(try JSONSerialization.jsonObject(with: Data(b.stdout.utf8)) as? [String: Any])["tokens"] as? [Int]
        #expect(ta != nil && ta == tb)
    }

    @Test func badRunInputIsOneLine() throws {
        let s = Scratch()
        let m = s.file("m.folio")
        #expect(try folio("convert", Self.fixtures + "/tiny-llama", m).status == 0)
        for (args, code) in [(["run", m, "--tokens", "1,99999"], Int32(1)), (["run", m, "--tokens", "1,x"], 1), (["run", m], 2),
                             (["run", s.file("missing.folio"), "--prompt", "hi"], 1), (["run", m, "--prompt", "hi", "--top-p", "0"], 2),
                             (["run", m, "--prompt", "hi", "--top-k", "-1"], 2), (["run", m, "--prompt", "hi", "--min-p", "2"], 2),
                             (["run", m, "--prompt", "hi", "--repetition-penalty", "0"], 2), (["run", m, "--prompt", "hi", "--stop", ""], 2),
                             (["run", m, "--prompt", "hi", "--max-tokens", "600"], 1)] {
            let r = try folio(args)
            #expect(r.status == code, "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    /// The sampling flags reach the sampler: --top-k 1 is greedy at any temperature, a stop
    /// string ends the text before it (finish_reason "stop").
    @Test func samplingFlagsAndStopStrings() throws {
        let s = Scratch()
        let m = s.file("m.folio")
        #expect(try folio("convert", Self.fixtures + "/tiny-llama", m).status == 0)
        func run(_ extra: [String]) throws -> [String: Any] {
            let r = try folio(["run", m, "--prompt", "Once upon", "--max-tokens", "40", "--json"] + extra)
            #expect(r.status == 0, "\(extra): \(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let greedy = try run([])
        #expect(greedy["finish_reason"] as? String == "length")
        let k1 = try run(["--temperature", "1.5", "--top-k", "1", "--seed", "3", "--repetition-penalty", "1", "--min-p", "0.1"])
        #expect(k1["tokens"] as? [Int] == greedy["tokens"] as? [Int])
        let text = try #require(greedy["text"] as? String)
        let stop = String(text.dropFirst(12).prefix(5))
        let stopped = try run(["--stop", stop, "--stop", "zzzzzz"])
        #expect(stopped["finish_reason"] as? String == "stop")
        #expect(stopped["text"] as? String == String(text[..<text.range(of: stop)!.lowerBound]))
    }

    /// `folio perplexity` on text and on token ids, as JSON; bad input is one line.
    @Test func perplexityCommand() throws {
        let s = Scratch()
        let m = s.file("m.folio")
        #expect(try folio("convert", Self.fixtures + "/tiny-llama", m).status == 0)
        try "def add(a, b):\n    return a + b\n".write(toFile: s.file("t.txt"), atomically: true, encoding: .utf8)
        let r = try folio("perplexity", m, s.file("t.txt"), "--json", "--window", "16", "--stride", "8")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let ppl = try #require(doc["perplexity"] as? Double), nll = try #require(doc["mean_nll"] as? Double)
        #expect(ppl > 1 && abs(log(ppl) - nll) < 1e-9 && (doc["bits_per_byte"] as? Double ?? 0) > 0)
        try "1, 40, 41, 42 43\n44".write(toFile: s.file("ids.txt"), atomically: true, encoding: .utf8)
        let t = try folio("perplexity", m, s.file("ids.txt"), "--token-ids", "--json")
        #expect(t.status == 0, "\(t.stderr)")
        let d2 = try #require(try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as? [String: Any])
        #expect(d2["scored"] as? Int == 5 && d2["bits_per_byte"] == nil)
        try "1, x".write(toFile: s.file("bad.txt"), atomically: true, encoding: .utf8)
        let b = try folio("perplexity", m, s.file("bad.txt"), "--token-ids")
        #expect(b.status == 1 && b.stderr.split(separator: "\n").count == 1, "\(b.stderr)")
    }

    /// run, embed and perplexity on a checkpoint that is not Folio (or a folder) say to convert
    /// it first, in one line with exit 1.
    @Test func foreignFilesAreToldToConvert() throws {
        let s = Scratch()
        try "1 2".write(toFile: s.file("ids.txt"), atomically: true, encoding: .utf8)
        let st = Self.fixtures + "/tiny-llama/model.safetensors"
        for args in [["run", st, "--tokens", "1"], ["embed", st, "--text", "a"], ["perplexity", st, s.file("ids.txt"), "--token-ids"],
                     ["run", Self.fixtures + "/tiny-llama", "--tokens", "1"]] {
            let r = try folio(args)
            #expect(r.status == 1 && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains("convert it") && r.stderr.contains("folio convert"), "\(args): \(r.stderr)")
        }
        let r = try folio(["run", st, "--tokens", "1"])
        #expect(r.stderr.contains("safetensors file"))
    }

    /// `bench tables --json` is one JSON document; text reports name the error `max_abs_error`
    /// as the JSON does.
    @Test func benchTablesJSONAndOneErrorName() throws {
        let s = Scratch()
        let r = try folio("bench", "tables", s.file("t.folio"), "--tables", "2", "--rows", "100", "--dim", "64", "--scheme", "int8", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["tables"] as? Int == 2 && doc["scheme"] as? String == "int8" && (doc["bytes"] as? Int ?? 0) > 0)
        let c = try folio("convert", s.file("t.folio"), s.file("q.folio"), "--quantize", "*=int4/g32")
        #expect(c.status == 0 && c.stdout.contains("max_abs_error ") && !c.stdout.contains("max_abs "), "\(c.stdout)")
        // A --quantize rule that matches nothing is said on stderr (the conversion still succeeds).
        let u = try folio("convert", s.file("t.folio"), s.file("u.folio"), "--quantize", "no.such.*=int8", "--quantize", "*=bf16")
        #expect(u.status == 0 && u.stderr.contains("--quantize 'no.such.*=int8' matched no tensor"), "\(u.stderr)")
        #expect(!u.stderr.contains("'*=bf16'"))
    }
}
