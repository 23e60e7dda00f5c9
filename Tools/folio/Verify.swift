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
}
