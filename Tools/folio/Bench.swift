import ArgumentParser
import Folio
import FolioConvert

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: synthetic embedding tables and their costs.",
        subcommands: [Tables.self, Open.self])

    struct Tables: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a .folio file of synthetic normally distributed embedding tables.")
        @Argument(help: "Output .folio file.") var out: String
        @Option(help: "Number of tables.") var tables: Int
        @Option(help: "Rows per table.") var rows: Int
        @Option(help: "Values per row.") var dim: Int
        @Option(help: "Scheme (f32, f16, bf16, int8, int8/gN, int4, int4/gN, affine8/gN).") var scheme: String
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Option(help: "Page size in bytes.") var pageSize: Int = 4096

        func run() throws {
            let enc = try ConversionOptions.parseScheme(scheme, option: "--scheme")
            let progress = Progress("writing")
            let t0 = FileSystem.monotonicSeconds()
            try SyntheticTables.write(path: out, tables: tables, rows: rows, dim: dim, scheme: enc, seed: seed, pageSize: pageSize,
                                      progress: { progress.update($0, $1) })
            let size = try FileSystem.size(out)
            emit("wrote \(out): \(tables) tables of \(rows) x \(dim) \(enc.name), \(size) bytes in \(fmt(FileSystem.monotonicSeconds() - t0, 2)) s")
        }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Time opening (mapping and validating) a .folio file.")
        @Argument(help: "Files to open.") var files: [String]
        @Option(name: .customLong("repeat"), help: "Opens per file.") var repeatCount: Int = 200
        @Flag(help: "Print one JSON document.") var json = false


        func run() throws {
            var results: [JSONValue] = []
            var lines: [String] = []
            for path in files {
                var times: [Double] = []
                var size = 0
                for _ in 0..<max(1, repeatCount) {
                    let t0 = FileSystem.monotonicSeconds()
                    let f = try FolioFile(path: path)
                    times.append(FileSystem.monotonicSeconds() - t0)
                    size = f.fileSize
                }
                times.sort()
                let median = times[times.count / 2], p99 = times[min(times.count - 1, times.count * 99 / 100)]
                results.append(.object([("file", .string(path)), ("file_size", .int(size)), ("opens", .int(times.count)),
                                        ("median_seconds", .double(median)), ("p99_seconds", .double(p99))]))
                lines.append("\(path): \(size) bytes, median open \(fmt(median * 1e6, 1)) us, p99 \(fmt(p99 * 1e6, 1)) us over \(times.count) opens")
            }
            emit(json ? JSONValue.object([("results", .array(results))]).serialized() : lines.joined(separator: "\n"))
        }
    }
}
