import Foundation
import Testing
import Folio
@testable import FolioConvert

/// `--weights int8` / `--weights int4`: which tensor gets which scheme and layout, on the
/// runner's fixture checkpoints (untied llama, tied llama, LongCat with MoE routers and
/// n-gram tables), and what sharding and re-conversion keep.
@Suite struct WeightsPresetTests {
    func convert(_ model: String, _ preset: WeightsPreset, in dir: TempDir, rules: [(Glob, Encoding)] = [], shard: Int? = nil) throws -> String {
        var o = ConversionOptions(rules: rules)
        o.weights = preset
        o.maxShardSize = shard
        let out = dir.file("\(model)-\(preset.rawValue).folio")
        _ = try Converter(options: o).convert(from: fixture("runner/\(model)"), to: out)
        return out
    }

    func layout(_ t: TensorInfo) -> String { t.paged == nil ? "dense" : t.paged!.isRecords ? "records" : "paged" }

    @Test(arguments: WeightsPreset.allCases)
    func untiedLlama(_ p: WeightsPreset) throws {
        let dir = TempDir()
        let f = try FolioFile(path: try convert("tiny-llama", p, in: dir))
        #expect(f.header.version == FolioFormat.recordsVersion)
        for t in f.tensors {
            let n = t.name
            if n == "lm_head.weight" {
                #expect(t.encoding == .int8(group: 32) && layout(t) == "records", "\(n)")
            } else if n.hasSuffix("embed_tokens.weight") {
                #expect(t.encoding == p.linear && layout(t) == "paged", "\(n): \(t.encoding.name) \(layout(t))")
            } else if n.contains("norm") || t.shape.count < 2 {
                #expect(t.encoding == .plain(.f32) && layout(t) == "dense", "\(n)")
            } else {
                #expect(t.encoding == p.linear && layout(t) == "records", "\(n): \(t.encoding.name) \(layout(t))")
            }
        }
    }

    @Test func tiedEmbeddingsAreTheOutputLayer() throws {
        let dir = TempDir()
        let f = try FolioFile(path: try convert("tiny-llama-tied-yarn", .int4, in: dir))
        #expect(f.tensor(named: "lm_head.weight") == nil)
        let e = try f.requireTensor("model.embed_tokens.weight")
        #expect(e.encoding == .int8(group: 32) && layout(e) == "records")
        #expect(try f.requireTensor("model.layers.0.self_attn.q_proj.weight").encoding == .int4(group: 32))
    }

    @Test func routersAndTablesOfLongcat() throws {
        let dir = TempDir()
        let f = try FolioFile(path: try convert("tiny-longcat-wide", .int4, in: dir))
        let routers = f.tensors.filter { $0.name.contains(".router.") }
        #expect(!routers.isEmpty && routers.allSatisfy { $0.encoding == .plain(.f32) && layout($0) == "dense" })
        let tables = f.tensors.filter { $0.name.contains("ngram_embeddings.embedders.") }
        #expect(!tables.isEmpty && tables.allSatisfy { $0.encoding == .int4(group: 32) && layout($0) == "paged" })
        let projs = f.tensors.filter { $0.name.contains("post_projs") || $0.name.contains("experts.") }
        #expect(!projs.isEmpty && projs.allSatisfy { $0.encoding == .int4(group: 32) && layout($0) == "records" })
        // In the narrow fixture (tables of 16 columns) groups of 32 do not fit: kept as stored.
        let narrow = try FolioFile(path: try convert("tiny-longcat", .int4, in: dir))
        #expect(try narrow.requireTensor("model.ngram_embeddings.embedders.0.weight").encoding == .plain(.f32))
    }

    @Test func aRuleChoosesTheSchemeAndTheLinearKeepsRecords() throws {
        let dir = TempDir()
        let f = try FolioFile(path: try convert("tiny-llama", .int8, in: dir, rules: [(Glob("*.down_proj.weight"), .int4(group: 32))]))
        let d = try f.requireTensor("model.layers.0.mlp.down_proj.weight")
        #expect(d.encoding == .int4(group: 32) && layout(d) == "records")
        #expect(try f.requireTensor("model.layers.0.mlp.up_proj.weight").encoding == .int8(group: 32))
    }

    @Test func reconversionKeepsRecordsAndShardsReadTheSame() throws {
        let dir = TempDir()
        let one = try convert("tiny-llama", .int8, in: dir)
        // Folio to Folio without options copies every tensor as it is.
        let again = dir.file("again.folio")
        _ = try Converter(options: ConversionOptions()).convert(from: one, to: again)
        let a = try FolioFile(path: one), b = try FolioFile(path: again)
        #expect(a.header.tensors.map(\.paged) == b.header.tensors.map(\.paged))
        #expect(a.header.tensors.map(\.encoding) == b.header.tensors.map(\.encoding))
        try FileManagerShim.mkdir(dir.file("s"))
        var o = ConversionOptions()
        o.weights = .int8
        o.maxShardSize = 48 * 1024
        _ = try Converter(options: o).convert(from: fixture("runner/tiny-llama"), to: dir.file("s/m.folio"))
        let index = try FolioIndex(path: dir.file("s/m.folio.index.json"))
        #expect(index.entries.count == a.tensors.count)
        for t in a.tensors where t.rowCount > 0 {
            let rows = Array(Set([0, t.rowCount / 2, t.rowCount - 1])).sorted()
            #expect(try Inspector.rows(dir.file("s/m.folio.index.json"), tensor: t.name, rows: rows) == Inspector.rows(one, tensor: t.name, rows: rows), "\(t.name)")
        }
    }

    @Test func unknownPresetIsRefused() {
        #expect(throws: ConvertError.self) { try WeightsPreset.parse("int3") }
    }
}
