import Testing
@testable import Folio

/// A small file with a dense tensor, a quantized table, a paged plain table and an embedded file.
func sampleFile(in dir: TempDir, pageSize: Int = 4096, chunkSize: Int = 4096) throws -> (path: String, table: [Float]) {
    let p = dir.file("sample.folio")
    let w = try FolioWriter(path: p, tensors: [
        TensorPlan(name: "norm", encoding: .plain(.f32), shape: [16]),
        TensorPlan(name: "emb", encoding: .int8(group: nil), shape: [200, 256], sourceDType: .f32),
        TensorPlan(name: "plain", encoding: .plain(.f16), shape: [50, 64], paged: true),
        TensorPlan(name: "ids", encoding: .plain(.i64), shape: [4]),
    ], files: [("config.json", 12)], metadata: [("format", "pt")], pageSize: pageSize, chunkSize: chunkSize)
    try Array("{\"a\": \"b c\"}".utf8).withUnsafeBytes { try w.writeFile("config.json", $0) }
    try (0..<16).map { Float($0) }.withUnsafeBufferPointer { try w.appendRows($0) }
    var g = Gaussian(seed: 5)
    let table = g.values(200 * 256)
    try table.withUnsafeBufferPointer { try w.appendRows($0) }
    try g.values(50 * 64).withUnsafeBufferPointer { try w.appendRows($0) }
    try [Int64(1), -2, 3, Int64.max].withUnsafeBytes { try w.appendDense($0) }
    try w.finish()
    return (p, table)
}

@Suite struct FolioFileTests {
    @Test func writtenFileReadsBack() throws {
        let dir = TempDir()
        let (p, table) = try sampleFile(in: dir)
        let f = try FolioFile(path: p)
        #expect(f.tensors.map(\.name) == ["norm", "emb", "plain", "ids"])
        #expect(f.header.metadataValue("format") == "pt")
        #expect(f.fileBytes(named: "config.json") == Array("{\"a\": \"b c\"}".utf8))
        let ids = try f.withValues(of: f.requireTensor("ids"), as: Int64.self) { Array($0) }
        #expect(ids == [1, -2, 3, Int64.max])
        let emb = try f.requireTensor("emb")
        var out = [Float](repeating: 0, count: 3 * 256)
        try out.withUnsafeMutableBufferPointer { try f.gatherRows(emb, rows: [0, 199, 7], into: $0) }
        for (k, r) in [0, 199, 7].enumerated() {
            let x = Array(table[(r * 256)..<((r + 1) * 256)]), y = Array(out[(k * 256)..<((k + 1) * 256)])
            #expect(relativeRMSE(x, y) < 0.01)
        }
        #expect(f.verify().isIntact)
    }

    @Test func rowOutOfRangeIsAnError() throws {
        let dir = TempDir()
        let f = try FolioFile(path: try sampleFile(in: dir).path)
        var out = [Float](repeating: 0, count: 256)
        #expect(throws: FolioError.self) { try out.withUnsafeMutableBufferPointer { try f.readRow(f.requireTensor("emb"), 200, into: $0) } }
        #expect(throws: FolioError.self) { try out.withUnsafeMutableBufferPointer { try f.readRow(f.requireTensor("emb"), -1, into: $0) } }
    }

    @Test func everyFlippedDataByteIsFoundAndNamed() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let original = readBytes(p)
        let header = try FolioFile(path: p).header
        // Every byte of the data region, stepping to keep the test quick but covering each chunk and tensor.
        var positions = Array(stride(from: header.dataOffset, to: header.trailerOffset, by: 97))
        positions += header.tensors.filter { $0.nbytes > 0 }.flatMap { [header.dataOffset + $0.offset, header.dataOffset + $0.offset + $0.nbytes - 1] }
        for pos in positions {
            var bytes = original
            bytes[pos] ^= 0x01
            let f = try openFolio(bytes, in: dir, name: "flip.folio")
            let report = f.verify()
            let damage = report.damagedChunks
            #expect(report.tableDamage == nil)
            #expect(damage.count == 1, "flip at \(pos) not detected")
            if let d = damage.first {
                #expect(d.byteRange.contains(pos))
                for t in header.tensors where t.nbytes > 0 && (header.dataOffset + t.offset..<header.dataOffset + t.offset + t.nbytes).contains(pos) {
                    #expect(d.culprits.contains { $0.contains("'\(t.name)'") })
                }
            }
        }
    }

    @Test func everyFlippedHeaderByteFailsToOpen() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let original = readBytes(p)
        let header = try FolioFile(path: p).header
        let positions = Array(0..<header.dataOffset) + Array((original.count - 8)..<original.count)
        for pos in positions {
            var bytes = original
            bytes[pos] ^= 0x20
            #expect(throws: FolioError.self, "flip at \(pos) was accepted") { try openFolio(bytes, in: dir, name: "h.folio") }
        }
    }

    @Test func everyFlippedTrailerByteFailsVerify() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let original = readBytes(p)
        let header = try FolioFile(path: p).header
        for pos in header.trailerOffset..<(original.count - 8) {
            var bytes = original
            bytes[pos] ^= 0x20
            let report = try openFolio(bytes, in: dir, name: "t.folio").verify()
            #expect(report.tableDamage != nil, "flip at \(pos) not detected")
            #expect(report.damagedChunks.isEmpty, "a damaged table must not blame data chunks")
        }
    }

    @Test func truncationAtEveryBoundaryIsRejected() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let original = readBytes(p)
        let h = try FolioFile(path: p).header
        var cuts = [0, 1, 7, 8, 12, 16, 24, 31, 32, 33, h.dataOffset - 1, h.dataOffset, h.dataOffset + 1, h.trailerOffset - 1,
                    h.trailerOffset, original.count - 16, original.count - 8, original.count - 1]
        cuts += h.tensors.flatMap { [h.dataOffset + $0.offset, h.dataOffset + $0.offset + $0.nbytes / 2] }
        for cut in cuts {
            let e = #expect(throws: FolioError.self, "truncation at \(cut) accepted") { try openFolio(Array(original[..<cut]), in: dir, name: "t.folio") }
            #expect(e?.description.contains("t.folio") == true)
        }
        #expect(throws: FolioError.self) { try openFolio(original + [0], in: dir, name: "long.folio") }
    }

    @Test func writerRefusesWrongAmountsAndLeavesNoFile() throws {
        let dir = TempDir()
        let p = dir.file("w.folio")
        let w = try FolioWriter(path: p, tensors: [TensorPlan(name: "a", encoding: .plain(.f32), shape: [4])])
        #expect(throws: FolioError.self) { try [Float](repeating: 0, count: 5).withUnsafeBufferPointer { try w.appendRows($0) } }
        #expect(throws: FolioError.self) { try w.finish() }
        #expect(!FileSystem.exists(p))
        #expect(try FileSystem.list(dir.path).isEmpty)
    }

    @Test func abandonedWriterLeavesDestinationUntouched() throws {
        let dir = TempDir()
        let p = dir.file("keep.folio")
        writeBytes([1, 2, 3], to: p)
        do {
            let w = try FolioWriter(path: p, tensors: [TensorPlan(name: "a", encoding: .plain(.f32), shape: [256, 4])])
            try [Float](repeating: 1, count: 100).withUnsafeBufferPointer { try w.appendRows($0) }
        }
        #expect(readBytes(p) == [1, 2, 3])
        #expect(try FileSystem.list(dir.path) == ["keep.folio"])
    }

    @Test func randomTensorsRoundTripBitExactly() throws {
        let dir = TempDir()
        var g = Gaussian(seed: 99)
        for trial in 0..<20 {
            var plans: [TensorPlan] = []
            var payloads: [[UInt8]] = []
            for i in 0..<Int(g.nextUInt() % 6) {
                let d = DType.allCases[Int(g.nextUInt() % UInt64(DType.allCases.count))]
                let rank = Int(g.nextUInt() % 4)
                let shape = (0..<rank).map { _ in Int(g.nextUInt() % 5) }
                plans.append(TensorPlan(name: "t\(i)", encoding: .plain(d), shape: shape))
                payloads.append((0..<(shape.reduce(1, *) * d.size)).map { _ in UInt8(truncatingIfNeeded: g.nextUInt()) })
            }
            let p = dir.file("r\(trial).folio")
            let w = try FolioWriter(path: p, tensors: plans, pageSize: 4096, chunkSize: 4096)
            for b in payloads { try b.withUnsafeBytes { try w.appendDense($0) } }
            try w.finish()
            let f = try FolioFile(path: p)
            for (t, b) in zip(f.tensors, payloads) {
                #expect(try f.withBytes(of: t) { Array($0) } == b)
            }
            #expect(f.verify().isIntact)
        }
    }
}

@Suite struct ScaleCheckTests {
    /// Checksums can be right for a file written with NaN or infinite scales; verify says so.
    @Test func nonFiniteScalesAreReported() throws {
        let dir = TempDir()
        let p = dir.file("nan.folio")
        let w = try FolioWriter(path: p, tensors: [TensorPlan(name: "emb", encoding: .int8(group: 32), shape: [4, 64])])
        var records = [UInt8](repeating: 0, count: 4 * (64 + 4))
        // Row 2, second scale: float16 NaN (0x7E00).
        records[2 * 68 + 2] = 0x00
        records[2 * 68 + 3] = 0x7E
        try records.withUnsafeBytes { try w.appendRawRows($0) }
        try w.finish()
        let report = try FolioFile(path: p).verify()
        #expect(!report.isIntact)
        #expect(report.badScales.count == 1 && report.badScales[0].contains("'emb'") && report.badScales[0].contains("row 2"))
        #expect(report.damagedChunks.isEmpty)
    }

    @Test func quantizingNaNNamesTheTensorAndRow() throws {
        let dir = TempDir()
        let w = try FolioWriter(path: dir.file("q.folio"), tensors: [TensorPlan(name: "emb", encoding: .int4(group: 32), shape: [3, 32])])
        var v = [Float](repeating: 1, count: 96)
        v[40] = .nan
        let e = #expect(throws: FolioError.self) { try v.withUnsafeBufferPointer { try w.appendRows($0) } }
        #expect(e?.description.contains("'emb'") == true && e?.description.contains("row 1") == true, "\(e?.description ?? "")")
        #expect(!FileSystem.exists(dir.file("q.folio")))
    }
}
