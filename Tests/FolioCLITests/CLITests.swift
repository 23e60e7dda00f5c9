import Foundation
import Testing
import Folio

/// Runs the built `folio` binary, as the command-line contract's outside checks do.
struct Run {
    let status: Int32
    let stdout: String
    let stderr: String
}

func folioBinary() -> String {
    // The test bundle runs from the build products folder, beside the folio executable.
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("folio").path,
        Bundle.main.bundleURL.appendingPathComponent("folio").path,
        Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("folio").path,
    ]
    for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/folio").path
}

func folio(_ args: String...) throws -> Run { try folio(args) }

/// Runs folio with `args`, from `directory` when given (else the test's own).
func folio(_ args: [String], in directory: URL? = nil) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: folioBinary())
    p.arguments = args
    if let directory { p.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

final class Scratch {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "folio-cli-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ n: String) -> String { path + "/" + n }
}

/// A small safetensors file with an embedding table, a dense matrix and a 0-d tensor.
func sampleSafetensors(_ path: String) {
    var h = #"{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"F32","shape":[40,64],"data_offsets":[0,10240]},"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[10240,10496]},"step":{"dtype":"I64","shape":[],"data_offsets":[10496,10504]}}"#
    while h.utf8.count % 8 != 0 { h += " " }
    var data = Data(withUnsafeBytes(of: UInt64(h.utf8.count).littleEndian) { Array($0) })
    data.append(contentsOf: Array(h.utf8))
    var values: [Float] = []
    for i in 0..<(40 * 64 + 64) { values.append(Float(sin(Double(i) * 0.37)) * 2) }
    values.withUnsafeBytes { data.append(contentsOf: Array($0)) }
    withUnsafeBytes(of: Int64(7).littleEndian) { data.append(contentsOf: Array($0)) }
    FileManager.default.createFile(atPath: path, contents: data)
}

func jsonDocument(_ text: String) throws -> JSONValue {
    try JSONParser.parse(text)
}

@Suite struct CLITests {
    @Test func convertInspectVerifyRowsAndBack() throws {
        let s = Scratch()
        sampleSafetensors(s.file("m.safetensors"))
        let c = try folio("convert", s.file("m.safetensors"), s.file("m.folio"), "--embeddings", "int8", "--json")
        #expect(c.status == 0, "\(c.stderr)")
        let summary = try jsonDocument(c.stdout)
        let emb = try #require(summary["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "model.embed_tokens.weight" })
        #expect(emb["scheme"]?.stringValue == "int8")
        #expect(emb["source_dtype"]?.stringValue == "F32")
        #expect((emb["cosine"]?.doubleValue ?? 0) > 0.9999)
        #expect(emb["rmse"] != nil && emb["max_abs_error"] != nil && emb["bytes_in"]?.intValue == 10240)

        let i = try folio("inspect", s.file("m.folio"), "--json", "--stats")
        #expect(i.status == 0)
        let doc = try jsonDocument(i.stdout)
        #expect(doc["format"]?.stringValue == "folio" && doc["version"]?.intValue == 1 && doc["page_size"]?.intValue == 4096)
        #expect(doc["metadata"]?["format"]?.stringValue == "pt")
        let t = try #require(doc["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "model.embed_tokens.weight" })
        let offset = try #require(t["offset"]?.intValue), stride = try #require(t["row_stride"]?.intValue), rpp = try #require(t["rows_per_page"]?.intValue)
        #expect(offset % 4096 == 0 && stride * rpp <= 4096)
        #expect(t["dtype"]?.stringValue == "int8")
        #expect(t["stats"]?["nan"]?.intValue == 0)

        let v = try folio("verify", s.file("m.folio"))
        #expect(v.status == 0)

        let r = try folio("rows", s.file("m.folio"), "model.embed_tokens.weight", "0,39", "--json")
        #expect(r.status == 0)
        let rows = try #require(try jsonDocument(r.stdout)["rows"]?.arrayValue)
        #expect(rows.count == 2 && rows[0].arrayValue?.count == 64)
        let first = rows[0].arrayValue!.compactMap(\.doubleValue)
        let expected = (0..<64).map { Double(Float(sin(Double($0) * 0.37)) * 2) }
        #expect(zip(first, expected).allSatisfy { abs($0 - $1) < 0.02 })

        let back = try folio("convert", s.file("m.folio"), s.file("back.safetensors"))
        #expect(back.status == 0)
        let d = try folio("diff", s.file("m.safetensors"), s.file("back.safetensors"), "--json")
        #expect(d.status == 0)
        let norm = try #require(try jsonDocument(d.stdout)["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "model.norm.weight" })
        #expect(norm["rmse"]?.doubleValue == 0)
    }

    @Test func plainRoundTripIsByteIdentical() throws {
        let s = Scratch()
        sampleSafetensors(s.file("m.safetensors"))
        #expect(try folio("convert", s.file("m.safetensors"), s.file("m.folio")).status == 0)
        #expect(try folio("convert", s.file("m.folio"), s.file("b.safetensors")).status == 0)
        #expect(FileManager.default.contents(atPath: s.file("m.safetensors")) == FileManager.default.contents(atPath: s.file("b.safetensors")))
    }

    @Test func damagedDataMakesVerifyNameTheTensorAndChunk() throws {
        let s = Scratch()
        sampleSafetensors(s.file("m.safetensors"))
        #expect(try folio("convert", s.file("m.safetensors"), s.file("m.folio"), "--embeddings", "int4").status == 0)
        let doc = try jsonDocument(try folio("inspect", s.file("m.folio"), "--json").stdout)
        let t = try #require(doc["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "model.embed_tokens.weight" })
        var bytes = try #require(FileManager.default.contents(atPath: s.file("m.folio")))
        bytes[t["offset"]!.intValue! + 100] ^= 0x40
        FileManager.default.createFile(atPath: s.file("m.folio"), contents: bytes)
        let v = try folio("verify", s.file("m.folio"))
        #expect(v.status == 1)
        #expect(v.stderr.contains("model.embed_tokens.weight") && v.stderr.contains("chunk 0"))
        #expect(!v.stderr.contains("Fatal") && !v.stderr.contains("Stack"))
    }

    @Test func badInputExitsOneWithOneLine() throws {
        let s = Scratch()
        FileManager.default.createFile(atPath: s.file("junk.folio"), contents: Data("hello world, not a file".utf8))
        FileManager.default.createFile(atPath: s.file("junk.safetensors"), contents: Data([255, 255, 255, 255, 255, 255, 255, 255, 1]))
        sampleSafetensors(s.file("m.safetensors"))
        #expect(try folio("convert", s.file("m.safetensors"), s.file("m.folio")).status == 0)
        let good = FileManager.default.contents(atPath: s.file("m.folio"))!
        FileManager.default.createFile(atPath: s.file("cut.folio"), contents: good.prefix(good.count - 3))
        let cases: [[String]] = [
            ["inspect", s.file("junk.folio")], ["verify", s.file("junk.folio")], ["inspect", s.file("junk.safetensors")],
            ["inspect", s.file("cut.folio")], ["verify", s.file("cut.folio")], ["inspect", s.file("missing.folio")],
            ["convert", s.file("junk.safetensors"), s.file("out.folio")], ["rows", s.file("m.folio"), "nope", "0"],
            ["rows", s.file("m.folio"), "model.norm.weight", "5"], ["convert", s.file("m.safetensors"), s.file("o.folio"), "--quantize", "step=int8"],
            ["convert", s.file("m.safetensors"), s.file("o.folio"), "--embeddings", "int4/g48"],
        ]
        for args in cases {
            let r = try folio(args)
            #expect(r.status == 1, "\(args): status \(r.status), \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("folio: error: "), "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("out.folio")))
        #expect(!FileManager.default.fileExists(atPath: s.file("o.folio")))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: s.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test func badUsageExitsTwo() throws {
        #expect(try folio("convert").status == 2)
        #expect(try folio("rows", "a.folio", "t", "x,y").status == 2)
        #expect(try folio("convert", "a.safetensors", "b.txt").status == 2)
        #expect(try folio("--help").status == 0)
        // One line, as for every other failure.
        for args in [["convert"], ["rows", "a.folio", "t", "x,y"], ["inspect", "--no-such-option", "x"], ["nonsense"]] {
            let r = try folio(args)
            #expect(r.status == 2 && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    @Test func pageSizesAreHonoured() throws {
        let s = Scratch()
        sampleSafetensors(s.file("m.safetensors"))
        for page in [4096, 16384, 2 << 20] {
            let out = s.file("p\(page).folio")
            #expect(try folio("convert", s.file("m.safetensors"), out, "--embeddings", "int4/g64", "--page-size", String(page)).status == 0)
            let doc = try jsonDocument(try folio("inspect", out, "--json").stdout)
            #expect(doc["page_size"]?.intValue == page)
            let t = try #require(doc["tensors"]?.arrayValue?.first { $0["row_stride"] != nil })
            #expect(t["offset"]!.intValue! % page == 0)
            #expect(t["row_stride"]!.intValue! * t["rows_per_page"]!.intValue! <= page)
            #expect(try folio("verify", out).status == 0)
        }
    }
}

@Suite struct EmbedCLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test func embedPrintsOneJSONDocument() throws {
        let s = Scratch()
        #expect(try folio("convert", Self.root.appendingPathComponent("tiny-bert").path, s.file("t.folio")).status == 0)
        let r = try folio("embed", s.file("t.folio"), "--text", "Hello world", "--text", "Second text", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try jsonDocument(r.stdout)
        let e = try #require(doc["embeddings"]?.arrayValue)
        #expect(e.count == 2 && e[0].arrayValue?.count == 32)
        let norm = (e[0].arrayValue ?? []).compactMap(\.doubleValue).reduce(0) { $0 + $1 * $1 }
        #expect(abs(norm - 1) < 1e-5)  // the Normalize module

        // Through compressed shards, with the int8 tables split by rows: the same output as
        // one file with the same tables.
        let bert = Self.root.appendingPathComponent("tiny-bert").path
        #expect(try folio("convert", bert, s.file("q.folio"), "--embeddings", "int8").status == 0)
        let z = try folio("convert", bert, s.file("z.folio"), "--embeddings", "int8", "--max-shard-size", "4KB", "--compress", "zstd")
        #expect(z.status == 0, "\(z.stderr)")
        let index = try String(contentsOfFile: s.file("z.folio.index.json"), encoding: .utf8)
        #expect(index.contains("embeddings.word_embeddings.weight@0-") && index.contains("embeddings.position_embeddings.weight@0-"), "tables are split")
        let one = try folio("embed", s.file("q.folio"), "--text", "Hello world", "--text", "Second text", "--json")
        let sharded = try folio("embed", s.file("z.folio.index.json"), "--text", "Hello world", "--text", "Second text", "--json")
        #expect(one.status == 0 && sharded.status == 0, "\(sharded.stderr)")
        #expect(one.stdout == sharded.stdout)
    }

    @Test func badModelsAndTextsGiveOneLine() throws {
        let s = Scratch()
        #expect(try folio("convert", Self.root.appendingPathComponent("tiny-llama").path, s.file("llama.folio")).status == 0)
        #expect(try folio("convert", Self.root.appendingPathComponent("tiny-bert").path, s.file("t.folio")).status == 0)
        FileManager.default.createFile(atPath: s.file("bad.txt"), contents: Data([0x68, 0x69, 0xC3, 0x28, 0x0A]))
        for args in [["embed", s.file("llama.folio"), "--text", "x"], ["embed", s.file("t.folio"), "--file", s.file("bad.txt")],
                     ["embed", s.file("missing.folio"), "--text", "x"]] {
            let r = try folio(args)
            #expect(r.status == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("folio: error: "), "\(args): \(r.stderr)")
        }
        #expect(try folio("embed", s.file("t.folio")).status == 2)
    }
}
