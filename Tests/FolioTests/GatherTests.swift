import Testing
@testable import Folio

/// The lookup kernel (C, prefetching, store or accumulate) against the row codec, bit for bit.
@Suite struct GatherTests {
    static let encodings: [Encoding] = [.plain(.f32), .plain(.f16), .plain(.bf16), .int8(group: nil), .int8(group: 32), .int8(group: 64),
                                        .int4(group: 32), .int4(group: 128), .affine8(group: 32), .plain(.f64)]

    @Test(arguments: encodings) func gatherAndAccumulateEqualTheCodec(_ enc: Encoding) throws {
        let dir = TempDir()
        let p = dir.file("t.folio")
        let rows = 300, width = 256
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
}
