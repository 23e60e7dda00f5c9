import Testing
import CFolioKernels
@testable import Folio

/// The lookup kernel (C, prefetching, store or accumulate) against the row codec, bit for bit.
@Suite struct GatherTests {
    static let encodings: [Encoding] = [.plain(.f32), .plain(.f16), .plain(.bf16), .int8(group: nil), .int8(group: 32), .int8(group: 64),
                                        .int4(group: 32), .int4(group: 128), .affine8(group: 32), .int3(group: 32), .int2(group: 16), .plain(.f64)]

    /// Widths that exercise the kernels' 128-column blocks and their tails (32 columns for
    /// int4, 16 and a masked rest for int8), valid for the encoding's group.
    static func widths(_ enc: Encoding) -> [Int] {
        switch enc {
        case let .int4(g), let .affine8(g), let .int8(g?), let .int3(g), let .int2(g): return g == 32 ? [256, 160, 32] : [256, 3 * g]
        default: return [256, 200, 7]
        }
    }
    static let cases: [(Encoding, Int)] = encodings.flatMap { e in widths(e).map { (e, $0) } }

    @Test(arguments: cases) func gatherAndAccumulateEqualTheCodec(_ enc: Encoding, _ width: Int) throws {
        let dir = TempDir()
        let p = dir.file("t.folio")
        let rows = 300
        let w = try FolioWriter(path: p, tensors: [
            TensorPlan(name: "a", encoding: enc, shape: [rows, width], paged: true, sourceDType: .f32),
            TensorPlan(name: "b", encoding: enc, shape: [rows, width], paged: true, sourceDType: .f32),
        ], files: [], metadata: nil, pageSize: 4096)
        var g = Gaussian(seed: 11)
        try g.values(rows * width).withUnsafeBufferPointer { try w.appendRows($0) }
        try g.values(rows * width).withUnsafeBufferPointer { try w.appendRows($0) }
        try w.finish()
        let f = try FolioFile(path: p)
        let a = try f.requireTensor("a"), b = try f.requireTensor("b")
        var rng = Gaussian(seed: 3)
        let ids = (0..<97).map { _ in Int64(rng.nextUInt() % UInt64(rows)) }
        var got = [Float](repeating: 0, count: ids.count * width)
        try ids.withUnsafeBufferPointer { try f.gatherRows(a, rows: $0, into: &got, stride: width, accumulate: false) }
        try ids.reversed().withUnsafeBufferPointer { try f.gatherRows(b, rows: $0, into: &got, stride: width, accumulate: true) }
        var one = [Float](repeating: 0, count: width), two = one
        for (i, r) in ids.enumerated() {
            try one.withUnsafeMutableBufferPointer { try f.readRow(a, Int(r), into: $0) }
            try two.withUnsafeMutableBufferPointer { try f.readRow(b, Int(ids[ids.count - 1 - i]), into: $0) }
            for j in 0..<width {
                let want = one[j] + two[j]
                #expect(got[i * width + j].bitPattern == want.bitPattern, "row \(r) value \(j)")
                if got[i * width + j].bitPattern != want.bitPattern { return }
            }
        }
        // An index out of range is refused before anything is written.
        var untouched = [Float](repeating: 7, count: 2 * width)
        #expect(throws: FolioError.self) {
            try [Int64(0), Int64(rows)].withUnsafeBufferPointer { try f.gatherRows(a, rows: $0, into: &untouched, stride: width, accumulate: false) }
        }
        #expect(untouched.allSatisfy { $0 == 7 })
    }

    /// gatherSum (one row of each table per token, summed) equals the rows decoded one by one
    /// and added in table order, bit for bit, and the unsummed multi-table gatherRows equals
    /// each row: paged tables (offsets computed by the workers)
    /// and tables of different layouts (offsets computed by the caller), 1 and 2 threads.
    @Test(arguments: [Encoding.int8(group: nil), .int4(group: 32), .int4(group: 64), .int8(group: 32), .plain(.f16)])
    func gatherSumEqualsRowByRow(_ enc: Encoding) throws {
        try Self.checkGatherSum(enc)
    }

    /// The same with the AVX-512 kernels switched off: the portable paths that machines
    /// without AVX-512 take. (Tests running meanwhile may take either path; both give the
    /// same bits.)
    @Test func gatherSumWithoutAVX512() throws {
        folio_kernels_use_avx512(0)
        defer { folio_kernels_use_avx512(1) }
        for enc in [Encoding.int8(group: nil), .int4(group: 32), .int4(group: 64)] { try Self.checkGatherSum(enc) }
    }

    static func checkGatherSum(_ enc: Encoding) throws {
        for width in Self.widths(enc) where width >= 32 {
            let dir = TempDir()
            let p = dir.file("t.folio")
            let rows = 500, tables = 12
            var plans = (0..<tables).map { TensorPlan(name: "t\($0)", encoding: enc, shape: [rows, width], paged: true, sourceDType: .f32) }
            // A plain table of the same width stored dense: no common paged layout (quantized
            // tables are always paged, and all of one width share a layout).
            let plain: Bool
            if case .plain = enc { plain = true } else { plain = false }
            if plain { plans.append(TensorPlan(name: "dense", encoding: enc, shape: [rows, width], paged: false, sourceDType: .f32)) }
            let f = try Self.writeTables(plans, to: p, seed: 5)
            let paged = try (0..<tables).map { try f.requireTensor("t\($0)") }
            let mixed = plain ? Array(paged.dropLast()) + [try f.requireTensor("dense")] : []
            var rng = Gaussian(seed: 9)
            let tokens = 203
            let ids = (0..<tokens * tables).map { _ in Int64(rng.nextUInt() % UInt64(rows)) }
            for set in [paged, mixed] where !set.isEmpty {
                var row = [Float](repeating: 0, count: width)
                for threads in [1, 2] {
                    try Self.expectGatherSumMatches(f, set, ids: ids, width: width, threads: threads,
                                                    "\(enc.name) width \(width) threads \(threads) \(set.last!.name)")
                    // The same rows side by side, unsummed (the runner's n-gram layout).
                    var each = [Float](repeating: .nan, count: tokens * tables * width)
                    try ids.withUnsafeBufferPointer { try f.gatherRows(set, rows: $0, into: &each, stride: width, threads: threads) }
                    var mismatch: Int? = nil
                    for i in 0..<tokens where mismatch == nil {
                        for (k, t) in set.enumerated() where mismatch == nil {
                            try row.withUnsafeMutableBufferPointer { try f.readRow(t, Int(ids[i * tables + k]), into: $0) }
                            let at = (i * tables + k) * width
                            if let j = (0..<width).first(where: { each[at + $0].bitPattern != row[$0].bitPattern }) { mismatch = at + j }
                        }
                    }
                    #expect(mismatch == nil, "\(enc.name) width \(width) threads \(threads) \(set.last!.name): rows differ at \(mismatch ?? -1)")
                }
            }
        }
    }

    /// Writes `plans` (4 KiB pages), each filled with Gaussian values, and opens the file.
    static func writeTables(_ plans: [TensorPlan], to p: String, seed: UInt64) throws -> FolioFile {
        let w = try FolioWriter(path: p, tensors: plans, files: [], metadata: nil, pageSize: 4096)
        var g = Gaussian(seed: seed)
        for plan in plans { try g.values(plan.shape.reduce(1, *)).withUnsafeBufferPointer { try w.appendRows($0) } }
        try w.finish()
        return try FolioFile(path: p)
    }

    /// More tables than one lookahead chunk holds (one token a chunk) and more than the
    /// kernel's record ring holds (no lookahead): still every row, summed in table order.
    @Test(arguments: [100, 300]) func manyTables(_ tables: Int) throws {
        let dir = TempDir()
        let p = dir.file("t.folio")
        let rows = 20, width = 32
        let plans = (0..<tables).map { TensorPlan(name: "t\($0)", encoding: .int4(group: 32), shape: [rows, width], paged: true, sourceDType: .f32) }
        let f = try Self.writeTables(plans, to: p, seed: 21)
        let set = try (0..<tables).map { try f.requireTensor("t\($0)") }
        var rng = Gaussian(seed: 22)
        let tokens = 5
        let ids = (0..<tokens * tables).map { _ in Int64(rng.nextUInt() % UInt64(rows)) }
        for threads in [1, 2] {
            try Self.expectGatherSumMatches(f, set, ids: ids, width: width, threads: threads, "\(tables) tables, \(threads) threads")
        }
    }

    /// gatherSum of `ids` ([tokens, set.count]) against the rows read one by one and added in
    /// table order, bit for bit.
    static func expectGatherSumMatches(_ f: FolioFile, _ set: [TensorInfo], ids: [Int64], width: Int, threads: Int,
                                       _ what: String) throws {
        let tables = set.count, tokens = ids.count / tables
        var want = [Float](repeating: 0, count: tokens * width), row = [Float](repeating: 0, count: width)
        for i in 0..<tokens {
            for (k, t) in set.enumerated() {
                try row.withUnsafeMutableBufferPointer { try f.readRow(t, Int(ids[i * tables + k]), into: $0) }
                for j in 0..<width { want[i * width + j] = k == 0 ? row[j] : want[i * width + j] + row[j] }
            }
        }
        var got = [Float](repeating: .nan, count: tokens * width)
        try ids.withUnsafeBufferPointer { try f.gatherSum(set, rows: $0, into: &got, stride: width, threads: threads) }
        let bad = (0..<got.count).first { got[$0].bitPattern != want[$0].bitPattern }
        #expect(bad == nil, "\(what): first difference at \(bad ?? -1)")
    }
}
