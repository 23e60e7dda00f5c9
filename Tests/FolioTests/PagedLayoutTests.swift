import Testing
@testable import Folio

@Suite struct PagedLayoutTests {
    static let encodings: [Encoding] = [.int8(group: nil), .int8(group: 32), .int4(group: 32), .int4(group: 128), .affine8(group: 64), .int3(group: 32), .int2(group: 64), .plain(.f32), .plain(.bf16)]
    static let pageSizes = [4096, 16384, 2 << 20]

    @Test(arguments: PagedLayoutTests.encodings, PagedLayoutTests.pageSizes)
    func noRowCrossesAPage(_ e: Encoding, _ page: Int) throws {
        for width in stride(from: 64, through: 4096, by: 64) {
            let record = try #require(e.recordSize(width: width))
            let l = try #require(PagedLayout(recordSize: record, alignment: e.recordAlignment, pageSize: page))
            let rows = 3 * max(1, l.rowsPerPage) + 1
            for r in 0..<rows {
                let start = l.rowOffset(r), end = start + record
                if record <= page {
                    #expect(start / page == (end - 1) / page, "row \(r) of \(width) \(e) crosses a page of \(page)")
                    #expect(l.rowStride * l.rowsPerPage <= page)
                } else {
                    #expect(start % page == 0, "oversized row \(r) does not start on a page boundary")
                }
                if r > 0 { #expect(start >= l.rowOffset(r - 1) + record, "rows overlap") }
            }
            #expect(l.byteCount(rows: rows) == l.rowOffset(rows - 1) + record)
        }
    }

    @Test func writtenTablesStartOnPageBoundaries() throws {
        let dir = TempDir()
        for page in PagedLayoutTests.pageSizes {
            let p = dir.file("t\(page).folio")
            let w = try FolioWriter(path: p, tensors: [
                TensorPlan(name: "bias", encoding: .plain(.f32), shape: [3]),
                TensorPlan(name: "emb", encoding: .int8(group: nil), shape: [100, 1024]),
                TensorPlan(name: "emb4", encoding: .int4(group: 32), shape: [7, 4096]),
            ], pageSize: page)
            try [Float](repeating: 1, count: 3).withUnsafeBufferPointer { try w.appendRows($0) }
            var g = Gaussian(seed: 3)
            try g.values(100 * 1024).withUnsafeBufferPointer { try w.appendRows($0) }
            try g.values(7 * 4096).withUnsafeBufferPointer { try w.appendRows($0) }
            try w.finish()
            let f = try FolioFile(path: p)
            for t in f.tensors where t.paged != nil {
                #expect(f.absoluteOffset(of: t) % page == 0)
                for r in 0..<t.rowCount {
                    let range = f.rowByteRange(t, r)
                    #expect(range.lowerBound / page == (range.upperBound - 1) / page || range.count > page)
                }
            }
        }
    }
}
