import ArgumentParser
import Folio
import FolioConvert
import FolioInference

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: synthetic embedding tables and their costs.",
        subcommands: [Tables.self, Lookups.self, Open.self])

    struct Tables: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a .folio file of synthetic normally distributed embedding tables.")
        @Argument(help: "Output .folio file.") var out: String
        @Option(help: "Number of tables.") var tables: Int
        @Option(help: "Rows per table.") var rows: Int
        @Option(help: "Values per row.") var dim: Int
        @Option(help: "Scheme (f32, f16, bf16, int8, int8/gN, int4, int4/gN, affine8/gN).") var scheme: String
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Option(help: "Page size in bytes.") var pageSize: Int = 4096
        @Option(help: "Checksum chunk size in bytes (4096 to 1 MiB; the page size suits tables read over HTTP).") var chunkSize: Int = 1 << 20
        @Flag(help: "Print one JSON document: the file, its tables, scheme, bytes and seconds.") var json = false

        func run() throws {
            let enc = try ConversionOptions.parseScheme(scheme, option: "--scheme")
            let progress = Progress("writing")
            let t0 = FileSystem.monotonicSeconds()
            try SyntheticTables.write(path: out, tables: tables, rows: rows, dim: dim, scheme: enc, seed: seed, pageSize: pageSize, chunkSize: chunkSize,
                                      progress: { progress.update($0, $1) })
            let size = try FileSystem.size(out)
            let seconds = FileSystem.monotonicSeconds() - t0
            if json {
                emit(JSONValue.object([("file", .string(out)), ("tables", .int(tables)), ("rows", .int(rows)), ("dim", .int(dim)),
                                       ("scheme", .string(enc.name)), ("page_size", .int(pageSize)), ("seed", .int(seed)),
                                       ("bytes", .int(size)), ("seconds", .double(seconds))]).serialized())
            } else {
                emit("wrote \(out): \(tables) tables of \(rows) x \(dim) \(enc.name), \(size) bytes in \(fmt(seconds, 2)) s")
            }
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

    struct Lookups: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Look up one row of every table per token (n-gram ids of random tokens), dequantized and summed.",
            discussion: """
            Tokens are random (uniform, or Zipf-distributed with exponent --zipf) in sequences of 1024; each table's row is \
            the n-gram hash of the token and its predecessors (tables split into groups of n-gram lengths 2, 3, 4), modulo \
            the table's rows. Reports tokens/s, rows/s, bytes of row records per second, batch latency, page faults and \
            peak RSS; the checksum is the sum of every output value.
            """)
        @Argument(help: "A .folio file of paged tables (e.g. from `folio bench tables`).") var file: String
        @Option(help: "Tokens to look up.") var tokens: Int = 100_000
        @Option(help: "Threads splitting each batch.") var threads: Int = 1
        @Option(help: "Tokens per batch.") var batch: Int = 256
        @Option(help: "Zipf exponent of the token distribution (default: uniform).") var zipf: Double?
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Option(help: "Vocabulary size of the token stream.") var vocab: Int = LookupWorkload.paperVocabulary
        @Flag(help: "Only touch the cache lines of each row record (no decoding): the random-access ceiling.") var touchOnly = false
        @Flag(help: "Drop the file's pages from the page cache first (cold run).") var cold = false
        @Flag(help: "Read the file into private memory backed by 2 MiB pages instead of mapping it (tables that fit in RAM).") var resident = false
        @Flag(help: "Do not map the tables in before the run (measure first-touch page-table faults too).") var noPopulate = false
        @Option(help: "Ask the kernel to read the rows of the batch this many batches ahead (madvise WILLNEED; for an http(s) file, fetch them in the background); 0 = off.") var willneedAhead: Int = 0
        @Option(help: "Write the row ids used as an int64 .npy array [tokens, tables].") var idsOut: String?
        @Option(help: "Rows of a hot-row cache of dequantized rows (0: none).") var cacheRows: Int = 0
        @Option(help: "Read the row records with pread from this many threads instead of through the mapping (0: mapping).") var readers: Int = 0
        @Flag(help: "Print one JSON document.") var json = false

        func validate() throws {
            guard tokens > 0 else { throw ValidationError("--tokens must be positive") }
            guard threads > 0, threads <= 256 else { throw ValidationError("--threads must be in 1...256") }
            guard batch > 0 else { throw ValidationError("--batch must be positive") }
            guard vocab > 0, vocab <= 1 << 31 else { throw ValidationError("--vocab must be in 1...2^31") }
            guard !(resident && cold) else { throw ValidationError("--resident and --cold exclude each other") }
            guard readers >= 0, readers <= 256 else { throw ValidationError("--readers must be in 0...256") }
            guard readers == 0 || (cacheRows == 0 && !touchOnly) else { throw ValidationError("--readers works without --cache-rows and --touch-only") }
            guard cacheRows >= 0, cacheRows <= 1 << 30 else { throw ValidationError("--cache-rows must be in 0...2^30") }
            guard willneedAhead >= 0 else { throw ValidationError("--willneed-ahead must not be negative") }
            if let zipf { guard zipf > 0, zipf.isFinite else { throw ValidationError("--zipf must be a positive number") } }
        }

        func run() throws {
            if cold { try FileSystem.dropCachedPages(file) }
            let f = try FolioFile(path: file, resident: resident)
            let bench = try LookupBench(file: f)
            // Warm runs map the tables in first, with 2 MiB pages where the page cache has
            // them; cold runs do neither (a huge-page fault would read 2 MiB for one row), nor
            // do tables larger than half the RAM (they cannot all be resident).
            let tableBytes = bench.tables.reduce(0) { $0 + $1.nbytes }
            let populate = !noPopulate && !cold && readers == 0 && tableBytes <= FileSystem.physicalMemoryBytes / 2
            for t in bench.tables {
                f.advise(t, .random)
                if populate {
                    f.advise(t, .hugePages)
                    f.advise(t, .populate)
                }
            }
            let hasher = try LookupWorkload.hasher(tableRows: bench.tables.map(\.rowCount), vocab: vocab)
            let stream = LookupWorkload.tokens(count: tokens, vocab: vocab, zipf: zipf, seed: seed)
            let ids = LookupWorkload.rowIDs(tokens: stream, hasher: hasher)
            if let idsOut { try NumPyWriter.writeInt64(ids, shape: [tokens, bench.tables.count], to: idsOut) }
            let r = try bench.run(ids: ids, batch: batch, threads: threads, mode: touchOnly ? .touch : .decode, willNeedAhead: willneedAhead,
                                  cacheRows: cacheRows, readers: readers)
            let huge = FileSystem.anonHugePageBytes() ?? -1
            let segments = FolioFile.gatherSegments()
            let hitRate = r.cacheHits + r.cacheMisses > 0 ? Double(r.cacheHits) / Double(r.cacheHits + r.cacheMisses) : 0
            let tps = Double(r.tokens) / r.seconds, rps = Double(r.rows) / r.seconds, bps = Double(r.bytes) / r.seconds
            if json {
                emit(JSONValue.object([
                    ("tokens_per_second", .double(tps)), ("rows_per_second", .double(rps)), ("bytes_per_second", .double(bps)),
                    ("p50_batch_seconds", .double(r.percentile(0.5))), ("p99_batch_seconds", .double(r.percentile(0.99))),
                    ("major_faults", .int(r.majorFaults)), ("minor_faults", .int(r.minorFaults)), ("peak_rss_bytes", .int(r.peakRSSBytes)),
                    ("checksum", .double(r.checksum)),
                    ("tables", .int(bench.tables.count)), ("tokens", .int(r.tokens)), ("threads", .int(threads)), ("batch", .int(batch)),
                    ("seconds", .double(r.seconds)), ("mode", .string(touchOnly ? "touch" : "decode")),
                    ("cache_rows", .int(cacheRows)), ("cache_hit_rate", .double(hitRate)), ("anon_huge_bytes", .int(huge)),
                    ("http_requests", f.remoteCounters.map { .int($0.requests) } ?? .null),
                    ("http_bytes", f.remoteCounters.map { .int($0.bytes) } ?? .null),
                    ("gather_segments_prefetched", .int(segments.prefetched)), ("gather_segments_loaded", .int(segments.loaded)),
                ]).serialized())
            } else {
                emit("""
                \(r.tokens) tokens x \(bench.tables.count) tables (\(bench.tables[0].encoding.name), \(bench.width) values), \(threads) thread(s), batch \(batch)\(touchOnly ? ", touch only" : ""):
                  \(fmt(tps, 0)) tokens/s, \(fmt(rps / 1e6, 2)) M rows/s, \(fmt(bps / 1e9, 3)) GB/s of records
                  batch p50 \(fmt(r.percentile(0.5) * 1e3, 3)) ms, p99 \(fmt(r.percentile(0.99) * 1e3, 3)) ms
                  faults: \(r.majorFaults) major, \(r.minorFaults) minor; peak RSS \(fmt(Double(r.peakRSSBytes) / 1e6, 1)) MB\(resident ? "; 2 MiB pages \(fmt(Double(huge) / 1e6, 1)) MB" : ""); checksum \(r.checksum)\(cacheRows > 0 ? "\n  row cache: \(cacheRows) rows, hit rate \(fmt(hitRate * 100, 1)) %" : "")\(f.remoteCounters.map { "\n  http: \($0.requests) requests, \(fmt(Double($0.bytes) / 1e6, 1)) MB" } ?? "")
                """)
            }
        }
    }
}
