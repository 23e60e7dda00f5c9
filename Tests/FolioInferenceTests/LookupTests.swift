import Testing
import Folio
import FolioConvert
@testable import FolioInference

/// The lookup workload: n-gram ids in range, gather-sum against row-by-row decoding, the
/// hot-row cache against no cache, the cache's index under eviction.
@Suite struct LookupTests {
    @Test func lookupsMatchRowByRowDecoding() throws {
        let dir = TempDir()
        let path = dir.file("t.folio")
        try SyntheticTables.write(path: path, tables: 3, rows: 5000, dim: 64, scheme: .int8(group: nil), seed: 1, pageSize: 4096, progress: { _, _ in })
        let f = try FolioFile(path: path)
        let bench = try LookupBench(file: f)
        let hasher = try LookupWorkload.hasher(tableRows: bench.tables.map(\.rowCount), vocab: 1000)
        #expect(hasher.tables.map(\.length) == [2, 3, 4])
        let tokens = LookupWorkload.tokens(count: 3000, vocab: 1000, zipf: 1.1, seed: 2)
        #expect(tokens.allSatisfy { $0 >= 0 && $0 < 1000 })
        let ids = LookupWorkload.rowIDs(tokens: tokens, hasher: hasher)
        #expect(ids.allSatisfy { $0 >= 0 && $0 < 5000 })
        // The expected checksum, one row at a time through the codec.
        var want = 0.0
        var row = [Float](repeating: 0, count: 64)
        for i in 0..<tokens.count {
            var sum = [Float](repeating: 0, count: 64)
            for (k, t) in bench.tables.enumerated() {
                try row.withUnsafeMutableBufferPointer { try f.readRow(t, Int(ids[i * 3 + k]), into: $0) }
                for j in 0..<64 { sum[j] += row[j] }
            }
            want += sum.reduce(0.0) { $0 + Double($1) }
        }
        for threads in [1, 2] {
            let plain = try bench.run(ids: ids, batch: 100, threads: threads)
            #expect(plain.checksum == want, "threads \(threads)")
            #expect(plain.tokens == 3000 && plain.rows == 9000 && plain.batchSeconds.count == 30)
            let cached = try bench.run(ids: ids, batch: 100, threads: threads, cacheRows: 1000)
            #expect(abs(cached.checksum - want) <= 1e-3 * max(1, abs(want)), "threads \(threads): \(cached.checksum) vs \(want)")
            #expect(cached.cacheHits > 0 && cached.cacheHits + cached.cacheMisses == 9000)
            let direct = try bench.run(ids: ids, batch: 100, threads: threads, readers: 3)
            #expect(direct.checksum == want, "pread, threads \(threads)")
            let touched = try bench.run(ids: ids, batch: 100, threads: threads, mode: .touch)
            #expect(touched.rows == 9000)
        }
    }

    @Test func rowCacheKeepsItsIndexUnderEviction() {
        let cache = RowCache(capacity: 64, width: 4)
        var live: [Int64: Float] = [:]
        var rng = SplitMix64(seed: 9)
        var out = [Float](repeating: 0, count: 4)
        for step in 0..<20_000 {
            let key = RowCache.key(table: Int(rng.next() % 3), row: Int64(rng.next() % 200))
            out = [0, 0, 0, 0]
            if cache.addIfPresent(key, into: &out) {
                #expect(out[0] == live[key], "step \(step)")
            } else {
                let v = Float(step)
                cache.insert(key, [v, v, v, v])
                live[key] = v
                // A second insert of a present key changes nothing.
                cache.insert(key, [-1, -1, -1, -1])
            }
        }
        #expect(cache.hits > 0 && cache.misses > 0)
    }
}
