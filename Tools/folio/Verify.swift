import ArgumentParser
import Folio
import FolioConvert

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a file's structure and every checksum.")

    @Argument(help: "File to verify (.folio; .safetensors gets a structural check, it has no checksums).") var file: String
    @Flag(help: "Print one JSON document.") var json = false

    func run() throws {
        if file.hasSuffix(".safetensors") {
            _ = try SafetensorsFile(path: file)
            if json { emit(JSONValue.object([("file", .string(file)), ("ok", .bool(true)), ("checksums", .bool(false)), ("damaged", .array([]))]).serialized()) } else {
                emit("\(file): structure OK (safetensors has no checksums)")
            }
            return
        }
        if file.hasSuffix(FolioSharding.indexSuffix) {
            try verifyIndex()
            return
        }
        let f = try FolioFile(path: file)
        let progress = Progress("verifying")
        let report = f.verify(progress: { progress.update($0, $1) })
        if json {
            emit(JSONValue.object([
                ("file", .string(file)), ("ok", .bool(report.isIntact)), ("chunks", .int(f.header.chunkCount)),
                ("table_damage", report.tableDamage.map { .string($0) } ?? .null),
                ("damaged", .array(report.damagedChunks.map { d in .object([
                    ("chunk", .int(d.chunk)), ("offset", .int(d.byteRange.lowerBound)), ("nbytes", .int(d.byteRange.count)),
                    ("culprits", .array(d.culprits.map { .string($0) })),
                ]) })),
            ]).serialized())
        } else if report.isIntact {
            emit("\(file): OK (\(f.tensors.count) tensors, \(f.header.chunkCount) chunks checked)")
        }
        if !report.isIntact {
            for p in report.problems { FileSystem.writeStderr("folio: error: \(file): \(p)\n") }
            throw ExitCode(1)
        }
    }

    /// Verifies every shard of a sharded model.
    func verifyIndex() throws {
        let index = try FolioIndex(path: file)
        let progress = Progress("verifying")
        let total = index.shardOrder.reduce(0) { $0 + index.shards[$1]!.header.chunkCount }
        var done = 0
        var problems: [String] = []
        var shards: [JSONValue] = []
        for name in index.shardOrder {
            let f = index.shards[name]!
            let report = f.verify(progress: { c, _ in progress.update(done + c, total) })
            done += f.header.chunkCount
            problems += report.problems.map { "\(f.path): \($0)" }
            shards.append(.object([("file", .string(f.path)), ("ok", .bool(report.isIntact)),
                                   ("problems", .array(report.problems.map { .string($0) }))]))
        }
        if json {
            emit(JSONValue.object([("file", .string(file)), ("ok", .bool(problems.isEmpty)), ("shards", .array(shards))]).serialized())
        } else if problems.isEmpty {
            emit("\(file): OK (\(index.shardOrder.count) shards, \(index.entries.count) tensors, \(total) chunks checked)")
        }
        if !problems.isEmpty {
            for p in problems { FileSystem.writeStderr("folio: error: \(p)\n") }
            throw ExitCode(1)
        }
    }
}
