import Dispatch
import Foundation
import Folio

/// The embedding-lookup workload of LongCat-Flash-Lite's n-gram tables: per token, one row
/// of every table, dequantized and summed into one float32 vector. Row ids come from the
/// n-gram hash (`NgramHasher`) of random token sequences, uniform or Zipf-distributed.
public enum LookupWorkload {
    /// Tokens of the paper's vocabulary size (LongCat-Flash-Lite: 131072).
    public static let paperVocabulary = 131_072
    /// Tokens per generated sequence; the n-gram history starts empty in each.
    public static let sequenceLength = 1024

    /// `count` random tokens below `vocab`: uniform, or token r-1 with probability ∝ r^-s.
    public static func tokens(count: Int, vocab: Int, zipf s: Double?, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        guard let s else { return (0..<count).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(vocab)) } }
        var cdf = [Double](repeating: 0, count: vocab)
        var total = 0.0
        for r in 0..<vocab { total += pow(Double(r + 1), -s); cdf[r] = total }
        return (0..<count).map { _ in
            let u = rng.nextUnit() * total
            var lo = 0, hi = vocab - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cdf[mid] > u { hi = mid } else { lo = mid + 1 }
            }
            return Int32(lo)
        }
    }

    /// The hasher for `rows` of each table: the tables are split into consecutive groups of
    /// n-gram lengths 2, 3, ..., `neighbors` (as the paper's k tables per length), each
    /// table's modulus its row count.
    public static func hasher(tableRows: [Int], vocab: Int, neighbors: Int = 4) throws -> NgramHasher {
        let t = tableRows.count, lengths = neighbors - 1
        return try NgramHasher(vocabSize: vocab, tables: tableRows.enumerated().map { i, r in
            (length: 2 + min(lengths - 1, i * lengths / max(t, 1)), modulus: Int64(r))
        })
    }

    /// Row ids [tokens.count, tables] of a token stream cut into sequences.
    public static func rowIDs(tokens: [Int32], hasher: NgramHasher) -> [Int64] {
        let t = hasher.tables.count
        var ids = [Int64](repeating: 0, count: tokens.count * t)
        tokens.withUnsafeBufferPointer { all in
            ids.withUnsafeMutableBufferPointer { out in
                var start = 0
                while start < tokens.count {
                    let end = min(tokens.count, start + sequenceLength)
                    let seq = UnsafeBufferPointer(rebasing: all[start..<end])
                    for i in 0..<seq.count { hasher.ids(seq, at: i, into: out.baseAddress! + (start + i) * t) }
                    start = end
                }
            }
        }
        return ids
    }
}

/// Runs lookups of given row ids over the tables of a file and measures them.
public struct LookupBench: Sendable {
    public struct Result: Sendable {
        public var tokens: Int
        public var rows: Int
        public var seconds: Double
        public var batchSeconds: [Double]
        public var bytes: Int
        public var minorFaults: Int
        public var majorFaults: Int
        public var peakRSSBytes: Int
        public var checksum: Double
        /// Row-cache hits and misses (zero without a cache).
        public var cacheHits = 0
        public var cacheMisses = 0

        public func percentile(_ p: Double) -> Double {
            guard !batchSeconds.isEmpty else { return 0 }
            let s = batchSeconds.sorted()
            return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
        }
    }

    public enum Mode: Sendable { case decode, touch }

    public let file: FolioFile
    public let tables: [TensorInfo]

    /// The file's paged 2-D tables (all of them must have the same row width).
    public init(file: FolioFile) throws {
        let tables = file.tensors.filter { $0.paged != nil && $0.shape.count == 2 && $0.rowCount > 0 }
        guard let first = tables.first else { throw InferenceError.badInput("\(file.path): no paged 2-D tables to look up") }
        guard tables.allSatisfy({ $0.rowWidth == first.rowWidth }) else {
            throw InferenceError.badInput("\(file.path): tables have different row widths")
        }
        self.file = file
        self.tables = tables
    }

    public var width: Int { tables[0].rowWidth }
    public var recordBytes: [Int] { tables.map { file.rowByteRange($0, 0).count } }

    /// Looks up `ids` ([tokens, tables]) in batches of `batch` tokens with `threads` threads
    /// splitting each batch. `willNeedAhead` > 0: before each batch, ask the kernel to read
    /// the pages of the batch that many batches ahead (madvise WILLNEED; over a remote file,
    /// a background fetch of its records).
    /// `cacheRows` > 0: a hot-row cache of that many dequantized rows (split over the threads).
    /// `readers` > 0: read the records with pread from that many threads (`RecordReader`)
    /// instead of through the mapping.
    public func run(ids: [Int64], batch: Int, threads: Int, mode: Mode = .decode, willNeedAhead: Int = 0, cacheRows: Int = 0,
                    readers: Int = 0) throws -> Result {
        let reader = readers > 0 ? try RecordReader(file: file) : nil
        let parts = max(1, threads)
        let caches = CacheBox(cacheRows > 0 && mode == .decode ? (0..<parts).map { _ in RowCache(capacity: cacheRows / parts, width: width) } : [])
        let t = tables.count, w = width
        let n = ids.count / t
        let before = FileSystem.resourceUsage()
        var out = [Float](repeating: 0, count: batch * w)
        var checksum = 0.0
        var times: [Double] = []
        var touched: UInt64 = 0
        var excluded = 0.0
        let start = FileSystem.monotonicSeconds()
        try ids.withUnsafeBufferPointer { idb in
            var b = 0
            while b < n {
                let count = min(batch, n - b)
                if willNeedAhead > 0 {
                    let ahead = b + willNeedAhead * batch
                    if ahead < n, file.remoteCounters != nil {
                        // A remote file: one background fetch of all the batch's records.
                        file.prefetchRows(tables, rows: UnsafeBufferPointer(rebasing: idb[(ahead * t)..<(min(n, ahead + batch) * t)]))
                    } else if ahead < n {
                        for (k, table) in tables.enumerated() {
                            file.willNeed(table, rows: (ahead..<min(n, ahead + batch)).map { Int(idb[$0 * t + k]) })
                        }
                    }
                }
                let t0 = FileSystem.monotonicSeconds()
                let sum: UInt64
                if let reader {
                    let mine = UnsafeBufferPointer(rebasing: idb[(b * tables.count)..<((b + count) * tables.count)])
                    try out.withUnsafeMutableBufferPointer { try reader.gatherSum(tables, rows: mine, into: $0.baseAddress!, stride: width, readers: readers) }
                    sum = 0
                } else {
                    sum = try lookup(idb, from: b, count: count, threads: threads, mode: mode, caches: caches, out: &out)
                }
                let t1 = FileSystem.monotonicSeconds()
                times.append(t1 - t0)
                if mode == .decode {
                    for i in 0..<(count * w) { checksum += Double(out[i]) }
                } else {
                    touched &+= sum
                }
                b += count
                // The checksum is not part of the lookup's time.
                excluded += FileSystem.monotonicSeconds() - t1
            }
        }
        let seconds = FileSystem.monotonicSeconds() - start - excluded
        let after = FileSystem.resourceUsage()
        let perToken = recordBytes.reduce(0, +)
        return Result(tokens: n, rows: n * t, seconds: seconds, batchSeconds: times, bytes: n * perToken,
                      minorFaults: after.minorFaults - before.minorFaults, majorFaults: after.majorFaults - before.majorFaults,
                      peakRSSBytes: after.peakRSSBytes, checksum: mode == .decode ? checksum : Double(touched),
                      cacheHits: caches.caches.reduce(0) { $0 + $1.hits }, cacheMisses: caches.caches.reduce(0) { $0 + $1.misses })
    }

    /// One batch: tokens [from, from+count), each thread a contiguous part of them, every
    /// table accumulated into the thread's output rows.
    private func lookup(_ ids: UnsafeBufferPointer<Int64>, from: Int, count: Int, threads: Int, mode: Mode, caches: CacheBox,
                        out: inout [Float]) throws -> UInt64 {
        let t = tables.count, w = width
        if mode == .decode && caches.caches.isEmpty {
            // The storage layer splits the batch over its own spinning pool.
            let mine = UnsafeBufferPointer(rebasing: ids[(from * t)..<((from + count) * t)])
            try out.withUnsafeMutableBufferPointer { try file.gatherSum(tables, rows: mine, into: $0.baseAddress!, stride: w, threads: threads) }
            return 0
        }
        let parts = max(1, min(threads, count))
        let shared = LookupShared(ids: ids, out: out.withUnsafeMutableBufferPointer { $0.baseAddress! })
        let errors = ErrorBox()
        let sums = SumBox(parts)
        let body: @Sendable (Int) -> Void = { p in
            let lo = count * p / parts, hi = count * (p + 1) / parts
            guard hi > lo else { return }
            let mine = UnsafeBufferPointer(rebasing: shared.ids[((from + lo) * t)..<((from + hi) * t)])
            do {
                // Plain decoding returned above: here a row cache or touching only.
                if mode == .decode {
                    try cachedLookup(mine, tokens: hi - lo, cache: caches.caches[p], into: shared.out + lo * w)
                } else {
                    sums.add(p, try file.touchRows(tables, rows: mine))
                }
            } catch { errors.set(error) }
        }
        if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
        if let e = errors.error { throw e }
        return sums.total
    }
}

extension LookupBench {
    /// Lookups through a hot-row cache: hits are added from the cache; misses are gathered
    /// per table with the lookup kernel, added, and inserted.
    func cachedLookup(_ ids: UnsafeBufferPointer<Int64>, tokens n: Int, cache: RowCache, into out: UnsafeMutablePointer<Float>) throws {
        let t = tables.count, w = width
        out.update(repeating: 0, count: n * w)
        // Misses grouped by table: token index and row, in flat buffers of n per table.
        let missToken = UnsafeMutablePointer<Int>.allocate(capacity: n * t)
        let missRow = UnsafeMutablePointer<Int64>.allocate(capacity: n * t)
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * w))
        defer { missToken.deallocate(); missRow.deallocate(); tmp.deallocate() }
        var missCount = [Int](repeating: 0, count: t)
        for i in 0..<n {
            for k in 0..<t {
                let r = ids[i * t + k]
                if !cache.addIfPresent(RowCache.key(table: k, row: r), into: out + i * w) {
                    let m = missCount[k]
                    missToken[k * n + m] = i
                    missRow[k * n + m] = r
                    missCount[k] = m + 1
                }
            }
        }
        for k in 0..<t where missCount[k] > 0 {
            let m = missCount[k]
            try file.gatherRows(tables[k], rows: UnsafeBufferPointer(start: missRow + k * n, count: m), into: tmp, stride: w, accumulate: false)
            for j in 0..<m {
                let row = tmp + j * w
                let o = out + missToken[k * n + j] * w
                for v in 0..<w { o[v] += row[v] }
                cache.insert(RowCache.key(table: k, row: missRow[k * n + j]), row)
            }
        }
    }
}

/// One hot-row cache per worker.
final class CacheBox: @unchecked Sendable {
    let caches: [RowCache]
    init(_ c: [RowCache]) { caches = c }
}

private struct LookupShared: @unchecked Sendable {
    let ids: UnsafeBufferPointer<Int64>
    let out: UnsafeMutablePointer<Float>
}

private final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var error: Error?
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
}

/// One sum per worker, each written by its own worker only.
private final class SumBox: @unchecked Sendable {
    private let sums: UnsafeMutablePointer<UInt64>
    private let count: Int
    init(_ n: Int) { count = n; sums = .allocate(capacity: n); sums.initialize(repeating: 0, count: n) }
    deinit { sums.deallocate() }
    func add(_ i: Int, _ v: UInt64) { sums[i] &+= v }
    var total: UInt64 { (0..<count).reduce(0) { $0 &+ sums[$1] } }
}
