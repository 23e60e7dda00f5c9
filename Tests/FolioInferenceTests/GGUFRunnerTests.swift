import Foundation
import Testing
import Folio
import FolioConvert
@testable import FolioInference

/// Llamas converted from GGUF and run (Tools/reference/make_gguf_runner_fixtures.py: tiny
/// llamas written as llama.cpp's converter writes them, quantized by llama.cpp's own
/// quantizer, with llama.cpp's logits): the config from the GGUF keys, llama.cpp's names,
/// the permuted q/k rows, `rope_freqs.weight`, and Q8_0 / Q4_0 carried without loss.
@Suite struct GGUFRunnerTests {
    static let ids: [Int32] = {
        let j = try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: inferenceFixture("gguf-llama/prompt.json")))) as! [String: Any]
        return (j["ids"] as! [Int]).map(Int32.init)
    }()

    func convert(_ name: String, keep: Bool, in dir: TempDir) throws -> String {
        let out = dir.file("\(name)-\(keep).folio")
        _ = try Converter(options: ConversionOptions(keepQuantized: keep)).convert(from: inferenceFixture("gguf-llama/\(name).gguf"), to: out)
        return out
    }

    func worst(_ a: [Float], _ b: [Float], vocab: Int) -> (cos: Double, abs: Float) {
        var c = Double.infinity
        for i in 0..<(a.count / vocab) { c = min(c, RunnerTests.sliceCosine(a[(i * vocab)..<((i + 1) * vocab)], b[(i * vocab)..<((i + 1) * vocab)])) }
        return (c, RunnerTests.maxAbsDiff(a, b))
    }

    /// Float32 weights: the same math as llama.cpp, in the prompt pass and one token at a time.
    @Test(arguments: ["f32", "f32-rope-freqs"])
    func float32EqualsLlamaCpp(_ name: String) throws {
        let dir = TempDir()
        let g = try TextGenerator(path: try convert(name, keep: false, in: dir))
        let want = try npyRows(inferenceFixture("gguf-llama/logits_\(name).npy")).flatMap { $0 }
        #expect(g.vocabSize == 320 && g.eosIDs.contains(2))
        for (which, got) in [("prompt pass", try g.logits(Self.ids)), ("one token at a time", try g.logitsIncrementally(Self.ids))] {
            let (c, d) = worst(got, want, vocab: g.vocabSize)
            #expect(c >= 0.99999 && d <= 5e-3, "\(name) \(which): min cosine \(c), max |Δ| \(d)")
        }
    }

    /// Q8_0 / Q4_0 kept as int8/g32 / int4/g32 records: the logits of the float32 conversion
    /// of the same file (the blocks are carried exactly) up to the 16-bit rounding of the
    /// inputs, which the prompt pass (integer matrix products) and one token at a time
    /// (matrix-vector kernels) share, so the two agree more closely than either does with
    /// float32; llama.cpp's own logits differ by its rounding of the inputs to int8 (Q8_0).
    @Test(arguments: [("q8_0", Encoding.int8(group: 32)), ("q4_0", .int4(group: 32))])
    func quantizedBlocksRunAsStored(_ name: String, _ enc: Encoding) throws {
        let dir = TempDir()
        let path = try convert(name, keep: true, in: dir)
        let file = try FolioFile(path: path)
        let q = try file.requireTensor("blk.0.attn_q.weight")
        #expect(q.encoding == enc && q.paged?.isRecords == true)
        let g = try TextGenerator(path: path), f = try TextGenerator(path: try convert(name, keep: false, in: dir))
        let exact = try f.logits(Self.ids)
        let prompt = try g.logits(Self.ids), single = try g.logitsIncrementally(Self.ids)
        let (c0, d0) = worst(prompt, exact, vocab: 320)
        #expect(c0 >= 0.99999, "\(name) prompt pass vs float32 of the same blocks: cosine \(c0), max |Δ| \(d0)")
        let (c1, d1) = worst(single, exact, vocab: 320)
        #expect(c1 >= 0.99999, "\(name) one token at a time vs float32 of the same blocks: cosine \(c1)")
        let (_, d01) = worst(prompt, single, vocab: 320)
        print("\(name): max |Δ| prompt pass vs float32 \(d0), one token at a time vs float32 \(d1), between them \(d01)")
        #expect(d01 < min(d0, d1), "\(name) prompt pass vs one token at a time: max |Δ| \(d01) (vs float32 \(d0), \(d1))")
        let peer = try npyRows(inferenceFixture("gguf-llama/logits_\(name).npy")).flatMap { $0 }
        let (c2, d2) = worst(exact, peer, vocab: 320)
        print("\(name): Folio vs llama.cpp on the same file: min cosine \(c2), max |Δ| \(d2)")
        #expect(c2 >= 0.9995, "\(name) vs llama.cpp: cosine \(c2)")
    }

    /// A GGUF key that changes the math and is not honoured is refused by name.
    @Test func unknownLlamaKeyIsRefused() throws {
        let dir = TempDir()
        struct Patched: ModelSource {
            let base: FolioFile
            let extra: (String, String)
            var path: String { base.path }
            var tensorNames: [String] { base.tensorNames }
            var metadataPairs: [(String, String)] { base.metadataPairs + [extra] }
            func fileBytes(named name: String) -> [UInt8]? { base.fileBytes(named: name) }
            func parts(of name: String) -> [TensorPart]? { base.parts(of: name) }
        }
        let base = try FolioFile(path: try convert("f32", keep: false, in: dir))
        for (key, value, message) in [("gguf.llama.attention.sliding_window", "4096", "llama.attention.sliding_window"),
                                      ("gguf.llama.rope.scaling.type", "\"yarn\"", "yarn"),
                                      ("gguf.llama.expert_count", "8", "mixture-of-experts")] {
            let e = #expect(throws: InferenceError.self) { try TextGenerator(source: Patched(base: base, extra: (key, value))) }
            #expect(e?.description.contains(message) == true, "\(key): \(e?.description ?? "")")
        }
    }
}
