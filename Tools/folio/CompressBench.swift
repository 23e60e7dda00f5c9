import ArgumentParser
import Dispatch
import Folio

/// Throughput of compressed tensors against the same tensors uncompressed, in one run.
struct CompressBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress-bench",
        abstract: "Measure decompression and random row lookups of a compressed file against its plain twin.",
        discussion: "Decompression: every compressed chunk of COMPRESSED, decompressed and checked, on 1 and 2 threads (GB/s of output). Lookups: uniform random rows of one table, gathered from PLAIN (mapped) and from COMPRESSED (through the chunk cache), as rows per second and their ratio.")

    @Argument(help: "A compressed .folio file.") var compressed: String
    @Argument(help: "The same tensors uncompressed (.folio).") var plain: String
    @Option(help: "Table for the lookups (default: the largest compressed tensor).") var tensor: String?
    @Option(help: "Random rows looked up.") var lookups: Int = 200_000
    @Option(help: "Rows per gather call.") var batch: Int = 64
    @Option(help: "Chunk cache of the compressed file in bytes.") var cacheBytes: Int = FolioFile.defaultCacheBytes
    @Option(help: "Repeat each measurement and keep the best.") var repeats: Int = 3
    @Flag(help: "Print one JSON document.") var json = false

    func run() throws {
        let c = try FolioFile(path: compressed, cacheBytes: cacheBytes)
        let p = try FolioFile(path: plain)
        var work: [(TensorInfo, Int, Int)] = []  // tensor, chunk, logical bytes
        for t in c.tensors where t.isCompressed {
            let index = try c.chunkIndex(t)
            for (i, e) in index.entries.enumerated() where e.storedSize < t.compression!.rawSize(of: i, nbytes: t.nbytes) {
                work.append((t, i, t.compression!.rawSize(of: i, nbytes: t.nbytes)))
            }
        }
        let jobs = work
        guard !work.isEmpty else { throw ValidationError("\(compressed) has no compressed chunk") }
        let total = work.reduce(0) { $0 + $1.2 }
        var gbps: [Int: Double] = [:]
        for threads in [1, 2] {
            var best = Double.infinity
            for _ in 0..<repeats {
                let failed = Failure()
                let t0 = FileSystem.monotonicSeconds()
                DispatchQueue.concurrentPerform(iterations: threads) { k in
                    for j in stride(from: k, to: jobs.count, by: threads) {
                        do { _ = try c.decompressChunkUncached(jobs[j].0, jobs[j].1) } catch { failed.set("\(error)") }
                    }
                }
                best = min(best, FileSystem.monotonicSeconds() - t0)
                if let e = failed.message { throw ValidationError(e) }
            }
            gbps[threads] = Double(total) / best / 1e9
        }
        let ct = try tensor.map { try c.requireTensor($0) } ?? c.tensors.filter(\.isCompressed).max { $0.nbytes < $1.nbytes }!
        let pt = try p.requireTensor(ct.name)
        guard pt.rowCount == ct.rowCount, pt.rowWidth == ct.rowWidth, !pt.isCompressed else {
            throw ValidationError("'\(ct.name)' differs between the files or is compressed in \(plain)")
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let ids: [Int64] = (0..<lookups).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int64(state % UInt64(ct.rowCount))
        }
        var out = [Float](repeating: 0, count: batch * ct.rowWidth)
        func rate(_ f: FolioFile, _ t: TensorInfo) throws -> (Double, Float) {
            var best = Double.infinity
            var sum: Float = 0
            for _ in 0..<repeats {
                sum = 0
                let t0 = FileSystem.monotonicSeconds()
                var i = 0
                while i < ids.count {
                    let n = min(batch, ids.count - i)
                    try ids[i..<(i + n)].withUnsafeBufferPointer { try f.gatherRows(t, rows: $0, into: &out, stride: t.rowWidth, accumulate: false) }
                    sum += out[0]
                    i += n
                }
                best = min(best, FileSystem.monotonicSeconds() - t0)
            }
            return (Double(ids.count) / best, sum)
        }
        let (plainRate, s1) = try rate(p, pt)
        c.chunkCache.removeAll()
        let (compressedRate, s2) = try rate(c, ct)
        let (hits, misses) = c.chunkCache.hitsAndMisses
        guard s1.bitPattern == s2.bitPattern else { throw ValidationError("lookups differ between the files (checksums \(s1) and \(s2))") }
        if json {
            emit(JSONValue.object([
                ("decompressed_bytes", .int(total)), ("chunks", .int(work.count)),
                ("decompress_gb_per_s_1_thread", .double(gbps[1]!)), ("decompress_gb_per_s_2_threads", .double(gbps[2]!)),
                ("tensor", .string(ct.name)), ("lookups", .int(lookups)), ("cache_bytes", .int(cacheBytes)),
                ("plain_rows_per_second", .double(plainRate)), ("compressed_rows_per_second", .double(compressedRate)),
                ("compressed_over_plain", .double(compressedRate / plainRate)), ("cache_hits", .int(hits)), ("cache_misses", .int(misses)),
            ]).serialized())
        } else {
            emit("decompression: \(work.count) chunks, \(total) bytes: \(fmt(gbps[1]!, 3)) GB/s on 1 thread, \(fmt(gbps[2]!, 3)) GB/s on 2 threads")
            emit("lookups of '\(ct.name)' (\(lookups) uniform rows, batches of \(batch), cache \(cacheBytes) bytes): plain \(fmt(plainRate / 1e6, 3)) M rows/s, compressed \(fmt(compressedRate / 1e6, 3)) M rows/s, ratio \(fmt(compressedRate / plainRate, 4)) (cache hits \(hits), misses \(misses))")
        }
    }
}

/// The first error of concurrent workers.
private final class Failure: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private var first: String?
    func set(_ m: String) { lock.wait(); if first == nil { first = m }; lock.signal() }
    var message: String? { lock.wait(); defer { lock.signal() }; return first }
}
