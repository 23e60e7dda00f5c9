import Testing
@testable import Folio

/// The records layout (FOLIO.md 7.5, format version 3): quantized matrices stored as records
/// back to back at a 64-byte stride, written, read, compressed and refused when crafted wrong.
@Suite struct RecordsLayoutTests {
    /// The worked numbers of FOLIO.md 7.5 (R = 2048): RS, row_stride, records nbytes, paged nbytes.
    static let table: [(Encoding, Int, Int, Int, Int, Int)] = [
        (.int8(group: 32), 2048, 2176, 2176, 4_456_448, 8_386_688),
        (.int4(group: 32), 2048, 1280, 1280, 2_621_440, 2_796_032),
        (.int8(group: nil), 2048, 2052, 2112, 4_325_316, 8_386_564),
        (.int4(group: 32), 8192, 5120, 5120, 10_485_760, 16_774_144),
    ]

    @Test(arguments: 0..<RecordsLayoutTests.table.count)
    func specNumbers(_ i: Int) throws {
        let (e, w, rs, stride, nbytes, pagedBytes) = Self.table[i]
        #expect(e.recordSize(width: w) == rs)
        let rec = try #require(PagedLayout(recordsOf: rs))
        #expect(rec.rowStride == stride && rec.byteCount(rows: 2048) == nbytes && rec.byteCount(rows: 0) == 0)
        let paged = try #require(PagedLayout(recordSize: rs, alignment: e.recordAlignment, pageSize: 4096))
        #expect(paged.byteCount(rows: 2048) == pagedBytes)
    }

    /// Writes the same values as records and as pages next to a dense tensor.
    func write(_ dir: TempDir, _ enc: Encoding, rows: Int, width: Int, records: Bool = true) throws -> (String, [Float]) {
        let p = dir.file("r.folio")
        var m = TensorPlan(name: "m", encoding: enc, shape: [rows, width], paged: true)
        m.records = records
        let w = try FolioWriter(path: p, tensors: [
            TensorPlan(name: "bias", encoding: .plain(.f32), shape: [3]), m,
            TensorPlan(name: "table", encoding: enc, shape: [rows, width], paged: true),
        ])
        var g = Gaussian(seed: 11)
        let values = g.values(rows * width)
        try [Float](repeating: 1, count: 3).withUnsafeBufferPointer { try w.appendRows($0) }
        try values.withUnsafeBufferPointer { try w.appendRows($0) }
        try values.withUnsafeBufferPointer { try w.appendRows($0) }
        try w.finish()
        return (p, values)
    }

    @Test(arguments: [(Encoding.int8(group: nil), 100), (.int8(group: 32), 96), (.int4(group: 32), 160), (.int4(group: 64), 64), (.affine8(group: 32), 32)])
    func writtenRecordsReadLikePages(_ enc: Encoding, _ width: Int) throws {
        let dir = TempDir()
        let (p, _) = try write(dir, enc, rows: 37, width: width)
        let f = try FolioFile(path: p)
        #expect(f.header.version == FolioFormat.recordsVersion)
        let m = try f.requireTensor("m"), t = try f.requireTensor("table")
        let l = try #require(m.paged)
        #expect(l.isRecords && l.rowStride % 64 == 0 && l.rowStride - l.recordSize < 64)
        #expect(t.paged?.isRecords == false)
        #expect(f.absoluteOffset(of: m) % 64 == 0)
        #expect(m.nbytes == 36 * l.rowStride + l.recordSize)
        var a = [Float](repeating: 0, count: width), b = a
        for r in 0..<37 {
            try a.withUnsafeMutableBufferPointer { try f.readRow(m, r, into: $0) }
            try b.withUnsafeMutableBufferPointer { try f.readRow(t, r, into: $0) }
            #expect(a == b, "row \(r)")
            #expect(f.rowByteRange(m, r).lowerBound == f.absoluteOffset(of: m) + r * l.rowStride)
        }
        #expect(f.verify().isIntact)
        // Reopened by the header parser: the written header is what the reader computes.
        let again = try FolioFile(path: p)
        #expect(again.header.tensors.map(\.paged) == f.header.tensors.map(\.paged))
    }

    @Test func withoutRecordsTheFileStaysVersion1() throws {
        let dir = TempDir()
        let (p, _) = try write(dir, .int8(group: 32), rows: 4, width: 64, records: false)
        #expect(try FolioFile(path: p).header.version == FolioFormat.version)
    }

    @Test(arguments: [false, true])
    func compressedRecordsRoundTrip(_ planes: Bool) throws {
        let dir = TempDir()
        let (p, _) = try write(dir, .int8(group: 32), rows: 300, width: 256)
        let out = dir.file("c.folio")
        _ = try FolioCompressor.write(try FolioFile(path: p), to: out, options: CompressionOptions(codec: .zstd, planes: planes ? .on : .off, chunkBytes: 8192, minSaving: 0))
        let f = try FolioFile(path: p), c = try FolioFile(path: out)
        #expect(c.header.version == FolioFormat.recordsVersion)
        let m = try c.requireTensor("m")
        #expect(m.paged?.isRecords == true && m.compression != nil)
        #expect(c.verify().isIntact)
        var a = [Float](repeating: 0, count: 256), b = a
        for r in [0, 1, 150, 299] {
            try a.withUnsafeMutableBufferPointer { try f.readRow(f.requireTensor("m"), r, into: $0) }
            try b.withUnsafeMutableBufferPointer { try c.readRow(m, r, into: $0) }
            #expect(a == b, "row \(r)")
        }
    }

    static let base = #"{"page_size":4096,"chunk_size":4096,"data_size":%SIZE%,"tensors":[%T%]}"#
    // int8/g32 W = 32: RS = 34, row_stride 64; two rows: nbytes 98.
    static let good = #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":0,"nbytes":98,"layout":"records","row_stride":64}"#

    func craft(_ t: String, size: Int, version: UInt32) -> [UInt8] {
        craftFolio(header: Self.base.replacingOccurrences(of: "%SIZE%", with: String(size)).replacingOccurrences(of: "%T%", with: t),
                   data: [UInt8](repeating: 0, count: size), version: version)
    }

    @Test func craftedRecordsOpen() throws {
        let dir = TempDir()
        let f = try openFolio(craft(Self.good, size: 98, version: 3), in: dir)
        #expect(f.tensors.first?.paged?.isRecords == true)
    }

    @Test(arguments: [
        ("inVersion1", Self.good, 98, UInt32(1), "unknown layout"),
        ("inVersion2", Self.good, 98, 2, "unknown layout"),
        ("plainDtype", #"{"name":"a","dtype":"F32","shape":[2,32],"offset":0,"nbytes":256,"layout":"records","row_stride":128}"#, 256, 3, "quantized"),
        ("wrongStride", #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":0,"nbytes":68,"layout":"records","row_stride":34}"#, 68, 3, "row_stride"),
        ("noStride", #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":0,"nbytes":98,"layout":"records"}"#, 98, 3, "row_stride"),
        ("rowsPerPage", #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":0,"nbytes":98,"layout":"records","row_stride":64,"rows_per_page":1}"#, 98, 3, "rows_per_page"),
        ("wrongNbytes", #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":0,"nbytes":128,"layout":"records","row_stride":64}"#, 128, 3, "nbytes"),
        ("misaligned", #"{"name":"a","dtype":"int8/g32","shape":[2,32],"offset":32,"nbytes":98,"layout":"records","row_stride":64}"#, 130, 3, "multiple of 64"),
        ("groupMismatch", #"{"name":"a","dtype":"int4/g32","shape":[2,48],"offset":0,"nbytes":96,"layout":"records","row_stride":64}"#, 96, 3, "group size"),
        ("rank0", #"{"name":"a","dtype":"int8","shape":[],"offset":0,"nbytes":5,"layout":"records","row_stride":64}"#, 5, 3, "dimension"),
        ("version4", Self.good, 98, 4, "unsupported format version 4"),
    ])
    func craftedRecordsAreRefused(_ c: (String, String, Int, UInt32, String)) throws {
        let dir = TempDir()
        let e = #expect(throws: FolioError.self, "\(c.0)") { try openFolio(craft(c.1, size: c.2, version: c.3), in: dir) }
        #expect(e?.description.contains(c.4) == true, "\(c.0): \(e?.description ?? "no error")")
        #expect(e?.description.contains("x.folio") == true)
    }
}
