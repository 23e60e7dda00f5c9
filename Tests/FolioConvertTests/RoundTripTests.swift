import Testing
import Folio
@testable import FolioConvert

@Suite struct RoundTripTests {
    /// Every plain dtype, 0-d and empty tensors, random shapes; metadata present, empty or absent.
    @Test(arguments: 0..<12)
    func safetensorsToFolioAndBackIsBitExact(_ seed: Int) throws {
        let dir = TempDir()
        var rng = RNG(seed: UInt64(seed) + 1)
        var tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])] = []
        let dtypes = DType.allCases
        let n = seed == 0 ? dtypes.count : 1 + rng.below(8)
        for i in 0..<n {
            let d = seed == 0 ? dtypes[i] : dtypes[rng.below(dtypes.count)]
            let rank = rng.below(4)
            var shape = (0..<rank).map { _ in rng.below(6) }
            if i == 0 { shape = [] }  // 0-d
            if i == 1 { shape = [0, 3] }  // empty
            let count = shape.reduce(1, *)
            tensors.append(("model.t\(i).\(d.rawValue)", d.rawValue, shape, (0..<(count * d.size)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        }
        let metadata: [(String, String)]? = seed % 3 == 0 ? nil : (seed % 3 == 1 ? [] : [("format", "pt"), ("note", "ü \"quoted\"")])
        let src = dir.file("in.safetensors")
        writeBytes(safetensorsBytes(tensors, metadata: metadata), to: src)
        let mid = dir.file("mid.folio"), back = dir.file("back.safetensors")
        _ = try Converter(options: ConversionOptions()).convert(from: src, to: mid)
        _ = try Converter(options: ConversionOptions()).convert(from: mid, to: back)
        let a = try SafetensorsFile(path: src), b = try SafetensorsFile(path: back)
        #expect(a.header.entries.map(\.name) == b.header.entries.map(\.name))
        #expect(a.header.entries.map(\.dtype) == b.header.entries.map(\.dtype))
        #expect(a.header.entries.map(\.shape) == b.header.entries.map(\.shape))
        for (ea, eb) in zip(a.header.entries, b.header.entries) {
            #expect(try a.withBytes(of: ea) { Array($0) } == b.withBytes(of: eb) { Array($0) })
        }
        #expect(a.header.metadata?.map(\.0) == b.header.metadata?.map(\.0))
        #expect(a.header.metadata?.map(\.1) == b.header.metadata?.map(\.1))
        #expect(try FolioFile(path: mid).verify().isIntact)
    }

    @Test func embeddingsAreQuantizedAndPaged() throws {
        let dir = TempDir()
        var rng = RNG(seed: 5)
        let emb = (0..<(64 * 256)).map { _ in rng.gaussian() }
        let other = (0..<(8 * 256)).map { _ in rng.gaussian() }
        writeBytes(safetensorsBytes([
            ("model.embed_tokens.weight", "F32", [64, 256], emb.withUnsafeBytes { Array($0) }),
            ("model.layers.0.mlp.weight", "F32", [8, 256], other.withUnsafeBytes { Array($0) }),
            ("model.norm.weight", "F32", [256], other[..<256].withUnsafeBytes { Array($0) }),
        ]), to: dir.file("m.safetensors"))
        let options = ConversionOptions(embeddings: .int8(group: nil), rules: [(Glob("*.mlp.*"), .int4(group: 64))], pageSize: 16384)
        let reports = try Converter(options: options).convert(from: dir.file("m.safetensors"), to: dir.file("m.folio"))
        let f = try FolioFile(path: dir.file("m.folio"))
        #expect(f.header.pageSize == 16384)
        let e = try f.requireTensor("model.embed_tokens.weight")
        #expect(e.encoding == .int8(group: nil) && e.paged != nil && f.absoluteOffset(of: e) % 16384 == 0)
        #expect(try f.requireTensor("model.layers.0.mlp.weight").encoding == .int4(group: 64))
        #expect(try f.requireTensor("model.norm.weight").encoding == .plain(.f32))
        let r = try #require(reports.first { $0.name == "model.embed_tokens.weight" }?.error)
        #expect(r.relativeRMSE < 0.008 && r.cosine > 0.9999)
        #expect(reports.first { $0.name == "model.norm.weight" }?.error == nil)
    }

    @Test func keptQuantizedSafetensorsRoundTripToTheSameFolioBytes() throws {
        let dir = TempDir()
        var rng = RNG(seed: 9)
        let emb = (0..<(50 * 128)).map { _ in rng.gaussian() }
        writeBytes(safetensorsBytes([("tok_embeddings.weight", "F32", [50, 128], emb.withUnsafeBytes { Array($0) }),
                                     ("bias", "F16", [3], [0, 60, 0, 61, 0, 62])], metadata: [("format", "pt")]), to: dir.file("m.safetensors"))
        _ = try Converter(options: ConversionOptions(embeddings: .int4(group: 64))).convert(from: dir.file("m.safetensors"), to: dir.file("a.folio"))
        _ = try Converter(options: ConversionOptions(keepQuantized: true)).convert(from: dir.file("a.folio"), to: dir.file("k.safetensors"))
        let k = try SafetensorsFile(path: dir.file("k.safetensors"))
        let e = try #require(k.header.entries.first { $0.name == "tok_embeddings.weight" })
        #expect(e.dtype == .u8 && e.shape == [50, 64 / 2 * 2 + 2 * 4])
        _ = try Converter(options: ConversionOptions()).convert(from: dir.file("k.safetensors"), to: dir.file("b.folio"))
        #expect(readBytes(dir.file("a.folio")) == readBytes(dir.file("b.folio")))
    }

    @Test func integerTensorsCannotBeQuantizedByName() throws {
        let dir = TempDir()
        writeBytes(safetensorsBytes([("ids", "I64", [4, 32], [UInt8](repeating: 0, count: 4 * 32 * 8))]), to: dir.file("i.safetensors"))
        let options = ConversionOptions(rules: [(Glob("ids"), .int8(group: nil))])
        let e = #expect(throws: ConvertError.self) { try Converter(options: options).convert(from: dir.file("i.safetensors"), to: dir.file("i.folio")) }
        #expect(e?.description.contains("'ids'") == true)
        #expect(!FileSystem.exists(dir.file("i.folio")))
    }

    @Test func wildcardCastsFloatsAndLeavesIntegersAndVectorsAlone() throws {
        let dir = TempDir()
        var rng = RNG(seed: 2)
        let w = (0..<(4 * 64)).map { _ in rng.gaussian() }
        writeBytes(safetensorsBytes([
            ("embeddings.position_ids", "I64", [1, 8], [UInt8](repeating: 0, count: 64)),
            ("layer.weight", "F32", [4, 64], w.withUnsafeBytes { Array($0) }),
            ("layer.bias", "F32", [64], w[..<64].withUnsafeBytes { Array($0) }),
        ]), to: dir.file("m.safetensors"))
        let cast = try Converter(options: ConversionOptions(rules: [(Glob("*"), .plain(.bf16))])).convert(from: dir.file("m.safetensors"), to: dir.file("c.folio"))
        let f = try FolioFile(path: dir.file("c.folio"))
        #expect(try f.requireTensor("embeddings.position_ids").encoding == .plain(.i64))
        #expect(try f.requireTensor("layer.weight").encoding == .plain(.bf16))
        #expect(try f.requireTensor("layer.bias").encoding == .plain(.bf16))
        #expect(cast.first { $0.name == "embeddings.position_ids" }?.note != nil)
        _ = try Converter(options: ConversionOptions(rules: [(Glob("*"), .int4(group: 32))])).convert(from: dir.file("m.safetensors"), to: dir.file("q.folio"))
        let q = try FolioFile(path: dir.file("q.folio"))
        #expect(try q.requireTensor("layer.weight").encoding == .int4(group: 32))
        #expect(try q.requireTensor("layer.bias").encoding == .plain(.f32))
        #expect(try q.requireTensor("embeddings.position_ids").encoding == .plain(.i64))
    }

    @Test func embeddingTablesAreRecognizedByRole() throws {
        let names = ["model.embed_tokens.weight", "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                     "embeddings.token_type_embeddings.weight", "model.ngram_embeddings.embedders.3.weight", "transformer.wte.weight",
                     "token_embd.weight"]
        for n in names { #expect(EmbeddingTables.isEmbedding(n, shape: [8, 4]), "\(n)") }
        for n in ["embeddings.LayerNorm.weight", "model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.ngram_embeddings.post_projs.3.weight"] {
            #expect(!EmbeddingTables.isEmbedding(n, shape: [8, 4]), "\(n)")
        }
        #expect(!EmbeddingTables.isEmbedding("model.embed_tokens.weight", shape: [8]))
        // A tied lm_head is an embedding table too.
        let dir = TempDir()
        try FileManagerShim.mkdir(dir.file("m"))
        writeBytes(Array("{\"tie_word_embeddings\": true}".utf8), to: dir.file("m/config.json"))
        writeBytes(safetensorsBytes([("lm_head.weight", "F32", [2, 32], [UInt8](repeating: 0, count: 256)),
                                     ("model.embed_tokens.weight", "F32", [2, 32], [UInt8](repeating: 0, count: 256))]), to: dir.file("m/model.safetensors"))
        let c = try Checkpoint.open(dir.file("m"))
        #expect(EmbeddingTables.tables(in: c) == ["lm_head.weight", "model.embed_tokens.weight"])
    }

    @Test func globsMatchLikeAShell() {
        #expect(Glob("*.embed_tokens.*").matches("model.embed_tokens.weight"))
        #expect(Glob("model.layers.?.mlp*").matches("model.layers.3.mlp.up.weight"))
        #expect(!Glob("model.layers.?.mlp*").matches("model.layers.12.mlp.up.weight"))
        #expect(Glob("layer[0-2].w").matches("layer1.w") && !Glob("layer[!0-2].w").matches("layer1.w"))
        #expect(Glob("*").matches("") && !Glob("a").matches("ab"))
        #expect(Glob("a*").hasWildcards && !Glob("model.norm.weight").hasWildcards)
    }
}

@Suite struct HuggingFaceFolderTests {
    func makeFolder(_ dir: TempDir, sharded: Bool) throws -> String {
        let root = dir.file("model")
        try FileSystem.list(dir.path).forEach { _ in }
        _ = try? FileManagerShim.mkdir(root)
        _ = try? FileManagerShim.mkdir(root + "/1_Pooling")
        writeBytes(Array("{\"model_type\":\"llama\"}".utf8), to: root + "/config.json")
        writeBytes(Array("{\"version\":\"1.0\"}".utf8), to: root + "/tokenizer.json")
        writeBytes(Array("{\"pooling_mode_mean_tokens\":true}".utf8), to: root + "/1_Pooling/config.json")
        let a: (String, String, [Int], [UInt8]) = ("model.embed_tokens.weight", "F32", [4, 32], [UInt8](repeating: 0, count: 512))
        let b: (String, String, [Int], [UInt8]) = ("lm_head.weight", "BF16", [4, 32], [UInt8](repeating: 1, count: 256))
        if sharded {
            writeBytes(safetensorsBytes([a], metadata: [("format", "pt")]), to: root + "/model-00001-of-00002.safetensors")
            writeBytes(safetensorsBytes([b], metadata: [("format", "pt")]), to: root + "/model-00002-of-00002.safetensors")
            writeBytes(Array(#"{"metadata":{"total_size":768},"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}}"#.utf8),
                       to: root + "/model.safetensors.index.json")
        } else {
            writeBytes(safetensorsBytes([a, b], metadata: [("format", "pt")]), to: root + "/model.safetensors")
        }
        return root
    }

    @Test(arguments: [false, true])
    func folderConvertsWithItsFiles(_ sharded: Bool) throws {
        let dir = TempDir()
        let root = try makeFolder(dir, sharded: sharded)
        _ = try Converter(options: ConversionOptions(embeddings: .int4(group: 32))).convert(from: root, to: dir.file("m.folio"))
        let f = try FolioFile(path: dir.file("m.folio"))
        #expect(Set(f.tensors.map(\.name)) == ["model.embed_tokens.weight", "lm_head.weight"])
        #expect(f.header.files.map(\.name).sorted() == ["1_Pooling/config.json", "config.json", "tokenizer.json"])
        #expect(f.fileBytes(named: "config.json") == Array("{\"model_type\":\"llama\"}".utf8))
        #expect(try f.requireTensor("model.embed_tokens.weight").encoding == .int4(group: 32))
        #expect(try f.requireTensor("lm_head.weight").encoding == .plain(.bf16))
    }

    @Test func indexThatNamesAMissingTensorIsRejected() throws {
        let dir = TempDir()
        let root = try makeFolder(dir, sharded: true)
        writeBytes(Array(#"{"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","lm_head.weight":"model-00001-of-00002.safetensors"}}"#.utf8),
                   to: root + "/model.safetensors.index.json")
        let e = #expect(throws: ConvertError.self) { try Converter(options: ConversionOptions()).convert(from: root, to: dir.file("m.folio")) }
        #expect(e?.description.contains("lm_head.weight") == true)
    }

    @Test func folderWithoutConfigIsRejected() throws {
        let dir = TempDir()
        let e = #expect(throws: ConvertError.self) { try Converter(options: ConversionOptions()).convert(from: dir.path, to: dir.file("m.folio")) }
        #expect(e?.description.contains("config.json") == true)
    }
}

import Foundation
enum FileManagerShim {
    static func mkdir(_ p: String) throws { try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) }
}
