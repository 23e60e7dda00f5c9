import Foundation
import Testing
import Folio
@testable import FolioConvert

@Suite struct ShardingTests {
    /// A sharded Hugging Face folder: two safetensors shards, an index and config.json.
    func makeShardedFolder(_ dir: TempDir) throws -> String {
        let root = dir.file("in")
        try FileManagerShim.mkdir(root)
        var rng = RNG(seed: 12)
        let emb = (0..<(3000 * 64)).map { _ in rng.gaussian() }
        let w = (0..<(128 * 64)).map { _ in rng.gaussian() }
        writeBytes(safetensorsBytes([("model.embed_tokens.weight", "F32", [3000, 64], emb.withUnsafeBytes { Array($0) })], metadata: [("format", "pt")]),
                   to: root + "/model-00001-of-00002.safetensors")
        writeBytes(safetensorsBytes([("model.layers.0.w", "BF16", [128, 64], w.withUnsafeBytes { Array($0.prefix(128 * 64 * 2)) }),
                                     ("pos", "I64", [4], [UInt8](repeating: 3, count: 32))], metadata: [("format", "pt")]),
                   to: root + "/model-00002-of-00002.safetensors")
        writeBytes(Array(#"{"metadata":{"total_size":784416},"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","model.layers.0.w":"model-00002-of-00002.safetensors","pos":"model-00002-of-00002.safetensors"}}"#.utf8),
                   to: root + "/model.safetensors.index.json")
        writeBytes(Array("{\"model_type\":\"llama\"}".utf8), to: root + "/config.json")
        return root
    }

    @Test func shardedSafetensorsToShardedFolioAndBackIsBitExact() throws {
        let dir = TempDir()
        let root = try makeShardedFolder(dir)
        try FileManagerShim.mkdir(dir.file("f"))
        try FileManagerShim.mkdir(dir.file("out"))
        var options = ConversionOptions()
        options.maxShardSize = 700_000
        _ = try Converter(options: options).convert(from: root, to: dir.file("f/model.folio"))
        #expect(FileSystem.exists(dir.file("f/model.folio.index.json")))
        #expect(FileSystem.exists(dir.file("f/model-00001-of-00002.folio")) && FileSystem.exists(dir.file("f/model-00002-of-00002.folio")))
        _ = try Converter(options: options).convert(from: dir.file("f/model.folio.index.json"), to: dir.file("out/model.safetensors"))
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            #expect(readBytes(root + "/" + name) == readBytes(dir.file("out/" + name)), "\(name) differs")
        }
        #expect(readBytes(dir.file("out/config.json")) == readBytes(root + "/config.json"))
        // The exported folder is itself a valid sharded Hugging Face folder.
        let back = try Checkpoint.open(dir.file("out"))
        #expect(back.tensors.map(\.name).sorted() == ["model.embed_tokens.weight", "model.layers.0.w", "pos"])
    }

    @Test func largeEmbeddingTablesAreSplitByRowsAndReadBackWhole() throws {
        let dir = TempDir()
        let root = try makeShardedFolder(dir)
        var options = ConversionOptions(embeddings: .int8(group: nil))
        options.maxShardSize = 64 * 1024
        _ = try Converter(options: options).convert(from: root, to: dir.file("m.folio"))
        let index = try FolioIndex(path: dir.file("m.folio.index.json"))
        let emb = try #require(index.entries.first { $0.name == "model.embed_tokens.weight" })
        #expect(emb.parts.count > 2)
        #expect(emb.parts.allSatisfy { $0.tensor.nbytes <= 64 * 1024 && $0.file.absoluteOffset(of: $0.tensor) % 4096 == 0 })
        // Rows read through the index equal rows of a single-file conversion.
        _ = try Converter(options: ConversionOptions(embeddings: .int8(group: nil))).convert(from: root, to: dir.file("one.folio"))
        let rows = [0, 1, 999, 1500, 2999]
        let a = try Inspector.rows(dir.file("m.folio.index.json"), tensor: "model.embed_tokens.weight", rows: rows)
        let b = try Inspector.rows(dir.file("one.folio"), tensor: "model.embed_tokens.weight", rows: rows)
        #expect(a == b)
        // Converting the index back to one file gives the same bytes as converting directly.
        _ = try Converter(options: ConversionOptions()).convert(from: dir.file("m.folio.index.json"), to: dir.file("joined.folio"))
        #expect(readBytes(dir.file("joined.folio")) == readBytes(dir.file("one.folio")))
    }

    @Test func compressedShardsReadBackLikeOneFile() throws {
        let dir = TempDir()
        let root = try makeShardedFolder(dir)
        var options = ConversionOptions(embeddings: .int8(group: nil))
        options.maxShardSize = 64 * 1024
        let (tensors, compressed) = try Converter(options: options).convert(from: root, to: dir.file("z.folio"), compression: CompressionOptions(codec: .zstd))
        let index = try FolioIndex(path: dir.file("z.folio.index.json"))
        #expect(index.shardOrder.count > 2)
        // Every shard is a version-2 file whose tensors store no more than the limit (counted,
        // as transformers counts, in tensor bytes), and the reports add up to what they store.
        var stored = 0
        for name in index.shardOrder {
            let f = try #require(index.shards[name])
            #expect(f.header.version == 2, "\(name)")
            let bytes = f.tensors.reduce(0) { $0 + $1.storedBytes }
            #expect(bytes <= 64 * 1024, "\(name)")
            stored += bytes
        }
        #expect(compressed.reduce(0) { $0 + $1.storedBytes } == stored)
        #expect(tensors.reduce(0) { $0 + $1.bytesOut } == stored)
        #expect(compressed.contains { $0.codec == .zstd })
        _ = try Converter(options: ConversionOptions(embeddings: .int8(group: nil))).convert(from: root, to: dir.file("one.folio"))
        let rows = [0, 1, 999, 1500, 2999]
        #expect(try Inspector.rows(dir.file("z.folio.index.json"), tensor: "model.embed_tokens.weight", rows: rows)
            == Inspector.rows(dir.file("one.folio"), tensor: "model.embed_tokens.weight", rows: rows))
        // Joined back into one plain file, the bytes equal a direct conversion's.
        _ = try Converter(options: ConversionOptions()).convert(from: dir.file("z.folio.index.json"), to: dir.file("joined.folio"))
        #expect(readBytes(dir.file("joined.folio")) == readBytes(dir.file("one.folio")))
        // No scratch file is left beside the shards.
        #expect(try FileSystem.list(dir.path).allSatisfy { !$0.hasPrefix(".") })
    }

    @Test func brokenIndexesAreRejected() throws {
        let dir = TempDir()
        let root = try makeShardedFolder(dir)
        var options = ConversionOptions(embeddings: .int8(group: nil))
        options.maxShardSize = 64 * 1024
        _ = try Converter(options: options).convert(from: root, to: dir.file("m.folio"))
        let good = String(decoding: readBytes(dir.file("m.folio.index.json")), as: UTF8.self)
        let cases: [(String, String, String)] = [
            ("missing part", good.replacingOccurrences(of: "\"model.embed_tokens.weight@0-", with: "\"nope@0-"), "has no tensor"),
            ("bad format", good.replacingOccurrences(of: "folio-index", with: "folio-indx"), "format"),
            ("escaping shard", good.replacingOccurrences(of: "\"m-00002-of-", with: "\"../m-00002-of-"), "shard"),
            ("not json", "{", "JSON"),
        ]
        for (label, text, expected) in cases {
            writeBytes(Array(text.utf8), to: dir.file("bad.folio.index.json"))
            let e = #expect(throws: FolioError.self, "\(label)") { try Checkpoint.open(dir.file("bad.folio.index.json")) }
            #expect(e?.description.contains(expected) == true, "\(label): \(e?.description ?? "")")
        }
    }

    @Test func sizesParse() {
        #expect(FolioSharding.parseSize("5GB") == 5_000_000_000)
        #expect(FolioSharding.parseSize("2GiB") == 2 << 30)
        #expect(FolioSharding.parseSize("500mb") == 500_000_000)
        #expect(FolioSharding.parseSize("4096") == 4096)
        #expect(FolioSharding.parseSize("x") == nil && FolioSharding.parseSize("-1GB") == nil && FolioSharding.parseSize("0") == nil)
    }
}
