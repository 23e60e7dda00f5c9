import Foundation
import Testing
@testable import Folio

/// Compressed tensors (format version 2): bit-exact reads through every accessor, raw
/// chunks for incompressible data, damage named by chunk, crafted indexes refused, the
/// cache bound.
@Suite struct CompressionTests {
    static let encodings: [Encoding] = [.plain(.f32), .plain(.f16), .plain(.bf16), .plain(.f64), .int8(group: nil), .int8(group: 32),
                                        .int4(group: 32), .affine8(group: 64)]

    /// A plain file: a paged table and a dense tensor of `enc` (dense only for plain
    /// dtypes), a dense I32 vector and an embedded file. Values are Gaussian with every
    /// fourth row constant, so that chunks compress.
    static func writePlain(_ path: String, _ enc: Encoding, rows: Int = 400, width: Int = 128) throws {
        var plans = [TensorPlan(name: "table", encoding: enc, shape: [rows, width], paged: true, sourceDType: .f32)]
        if enc.plainDType != nil { plans.append(TensorPlan(name: "dense", encoding: enc, shape: [rows, width])) }
        plans.append(TensorPlan(name: "ids", encoding: .plain(.i32), shape: [1000]))
        let w = try FolioWriter(path: path, tensors: plans, files: [(name: "config.json", nbytes: 2)], metadata: [("k", "v")], pageSize: 4096)
        try [UInt8]("{}".utf8).withUnsafeBytes { try w.writeFile("config.json", $0) }
        var g = Gaussian(seed: 5)
        for _ in plans.dropLast() {
            var v = g.values(rows * width)
            for r in stride(from: 0, to: rows, by: 4) { for j in 0..<width { v[r * width + j] = 0.5 } }
            try v.withUnsafeBufferPointer { try w.appendRows($0) }
        }
        let ids = (0..<1000).map { Int32($0 % 17) }
        try ids.withUnsafeBytes { try w.appendDense($0) }
        try w.finish()
    }

    static func logical(_ f: FolioFile, _ t: TensorInfo) throws -> [UInt8] {
        try f.withLogicalBytes(of: t, range: 0..<t.nbytes) { Array($0) }
    }

    /// The default byte-plane choice, per tensor: planes where they make the tensor smaller
    /// (Gaussian floats, whose sign/exponent bytes repeat), none where they do not (a tensor
    /// whose values are few exact repeats, which whole-element matching compresses better);
    /// the automatic file is never larger than the better of the two forced ones by more
    /// than 1 %.
    @Test func bytePlanesWhereTheyPay() throws {
        let dir = TempDir()
        let rows = 512, width = 256
        let plans = [TensorPlan(name: "gauss", encoding: .plain(.bf16), shape: [rows, width]),
                     TensorPlan(name: "repeats", encoding: .plain(.f32), shape: [rows, width])]
        let w = try FolioWriter(path: dir.file("p.folio"), tensors: plans, files: [], metadata: nil, pageSize: 4096)
        var g = Gaussian(seed: 9)
        try g.values(rows * width).withUnsafeBufferPointer { try w.appendRows($0) }
        var rng = Gaussian(seed: 3)
        let palette = (0..<16).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.nextUInt()) & 0x7F7F_FFFF) }
        let repeats = (0..<(rows * width)).map { _ in palette[Int(rng.nextUInt() % 16)] }
        try repeats.withUnsafeBytes { try w.appendDense($0) }
        try w.finish()
        let plain = try FolioFile(path: dir.file("p.folio"))
        var sizes: [PlaneChoice: [String: Int]] = [:]
        for choice in [PlaneChoice.off, .on, .auto] {
            let out = dir.file("\(choice).folio")
            let reports = try FolioCompressor.write(plain, to: out, options: CompressionOptions(codec: .zstd, level: 3, planes: choice))
            sizes[choice] = Dictionary(uniqueKeysWithValues: reports.map { ($0.name, $0.storedBytes) })
            let c = try FolioFile(path: out)
            for t in plain.tensors { #expect(try Self.logical(c, try c.requireTensor(t.name)) == Self.logical(plain, t)) }
            if choice == .auto {
                #expect(try c.requireTensor("gauss").compression?.planes == true)
                #expect(try c.requireTensor("repeats").compression?.planes == false)
            }
        }
        for name in ["gauss", "repeats"] {
            let best = min(sizes[.on]![name]!, sizes[.off]![name]!)
            #expect(Double(sizes[.auto]![name]!) <= Double(best) * 1.01, "\(name): \(sizes)")
        }
        #expect(sizes[.on]!["gauss"]! < sizes[.off]!["gauss"]! && sizes[.off]!["repeats"]! < sizes[.on]!["repeats"]!)
    }

    @Test(arguments: encodings, [CompressionCodec.lz4, .zstd])
    func compressedReadsAreBitExact(_ enc: Encoding, _ codec: CompressionCodec) throws {
        let dir = TempDir()
        try Self.writePlain(dir.file("plain.folio"), enc)
        let plain = try FolioFile(path: dir.file("plain.folio"))
        for planes in [PlaneChoice.off, .on, .auto] {
            let out = dir.file("c\(planes).folio")
            var o = CompressionOptions(codec: codec, planes: planes, chunkBytes: 8192)
            o.threads = 2
            let reports = try FolioCompressor.write(plain, to: out, options: o)
            #expect(reports.count == plain.tensors.count)
            let c = try FolioFile(path: out, cacheBytes: 64 << 10)
            #expect(c.header.version == FolioFormat.compressedVersion)
            #expect(c.verify().isIntact)
            #expect(c.fileBytes(named: "config.json") == Array("{}".utf8))
            #expect(c.header.metadata?.first?.1 == "v")
            for t in plain.tensors {
                let u = try c.requireTensor(t.name)
                #expect(u.nbytes == t.nbytes && u.shape == t.shape && u.encoding == t.encoding)
                #expect(try Self.logical(c, u) == Self.logical(plain, t), "\(t.name) \(codec) planes \(planes)")
                var a = [Float](repeating: 0, count: t.elementCount), b = a
                try plain.readRows(t, start: 0, count: t.rowCount, into: &a)
                try c.readRows(u, start: 0, count: u.rowCount, into: &b)
                #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
                // Rows, gathers (store and accumulate) and sums against the plain file.
                let ids: [Int64] = (0..<50).map { Int64(($0 * 37) % t.rowCount) }
                var ga = [Float](repeating: 1, count: ids.count * t.rowWidth), gb = ga
                try ids.withUnsafeBufferPointer { try plain.gatherRows(t, rows: $0, into: &ga, stride: t.rowWidth, accumulate: true) }
                try ids.withUnsafeBufferPointer { try c.gatherRows(u, rows: $0, into: &gb, stride: t.rowWidth, accumulate: true) }
                #expect(ga.map(\.bitPattern) == gb.map(\.bitPattern))
                var sa = [Float](repeating: 0, count: 25 * t.rowWidth), sb = sa
                try ids.withUnsafeBufferPointer { try plain.gatherSum([t, t], rows: $0, into: &sa, stride: t.rowWidth) }
                try ids.withUnsafeBufferPointer { try c.gatherSum([u, u], rows: $0, into: &sb, stride: t.rowWidth) }
                #expect(sa.map(\.bitPattern) == sb.map(\.bitPattern))
                var ra = [Float](repeating: 0, count: t.rowWidth), rb = ra
                try ra.withUnsafeMutableBufferPointer { try plain.readRow(t, t.rowCount - 1, into: $0) }
                try rb.withUnsafeMutableBufferPointer { try c.readRow(u, u.rowCount - 1, into: $0) }
                #expect(ra.map(\.bitPattern) == rb.map(\.bitPattern))
                if u.isCompressed {
                    #expect(throws: FolioError.self) { try c.withBytes(of: u) { _ in 0 } }
                }
            }
            #expect(c.chunkCache.bytesHeld <= 64 << 10)
        }
    }

    @Test func incompressibleDataIsStoredRaw() throws {
        let dir = TempDir()
        let p = dir.file("r.folio")
        var g = Gaussian(seed: 9)
        let noise = (0..<(64 << 10)).map { _ in UInt8(truncatingIfNeeded: g.nextUInt()) }
        let mixed = noise.prefix(32 << 10) + [UInt8](repeating: 0, count: 32 << 10)
        let w = try FolioWriter(path: p, tensors: [TensorPlan(name: "noise", encoding: .plain(.u8), shape: [64 << 10]),
                                                   TensorPlan(name: "mixed", encoding: .plain(.u8), shape: [64 << 10])])
        try noise.withUnsafeBytes { try w.appendDense($0) }
        try Array(mixed).withUnsafeBytes { try w.appendDense($0) }
        try w.finish()
        let out = dir.file("c.folio")
        let reports = try FolioCompressor.write(try FolioFile(path: p), to: out, options: CompressionOptions(codec: .zstd, level: 19, chunkBytes: 8192))
        #expect(reports[0].codec == nil && reports[0].storedBytes == 64 << 10)
        #expect(reports[1].codec == .zstd && reports[1].rawChunks == 4 && reports[1].chunks == 8)
        let c = try FolioFile(path: out)
        let n = try c.requireTensor("noise"), m = try c.requireTensor("mixed")
        #expect(!n.isCompressed)
        #expect(try c.withBytes(of: n) { Array($0) } == noise)
        #expect(try c.withLogicalBytes(of: m, range: 0..<m.nbytes) { Array($0) } == Array(mixed))
        #expect(c.verify().isIntact)
    }

    /// The first compressed chunk of `name` in a compressed file and its absolute range.
    static func firstCompressedChunk(_ f: FolioFile, _ name: String) throws -> (Int, Range<Int>) {
        let t = try f.requireTensor(name)
        let index = try f.chunkIndex(t)
        let i = try #require(index.entries.indices.first { index.entries[$0].storedSize < t.compression!.rawSize(of: $0, nbytes: t.nbytes) })
        return (i, f.storedRange(t, index.entries[i]))
    }

    @Test func aDamagedChunkIsNamedAndReadingThrows() throws {
        let dir = TempDir()
        try Self.writePlain(dir.file("plain.folio"), .int8(group: nil))
        let out = dir.file("c.folio")
        _ = try FolioCompressor.write(try FolioFile(path: dir.file("plain.folio")), to: out, options: CompressionOptions(codec: .zstd, chunkBytes: 8192))
        let (chunk, range) = try Self.firstCompressedChunk(try FolioFile(path: out), "table")
        var bytes = readBytes(out)
        bytes[range.lowerBound + range.count / 2] ^= 0x40
        writeBytes(bytes, to: out)
        let f = try FolioFile(path: out)
        let report = f.verify()
        #expect(!report.isIntact)
        #expect(report.compressedDamage.contains { $0.contains("tensor 'table': chunk \(chunk) ") })
        #expect(report.damagedChunks.first?.culprits.contains { $0.contains("'table' (compressed)") } == true)
        let t = try f.requireTensor("table")
        var row = [Float](repeating: 0, count: t.rowWidth * t.rowCount)
        do {
            try f.readRows(t, start: 0, count: t.rowCount, into: &row)
            Issue.record("reading a damaged chunk succeeded")
        } catch let e as FolioError {
            #expect("\(e)".contains("chunk \(chunk)") && "\(e)".contains("'table'") && !"\(e)".contains("\n"))
        }
    }

    /// Rewrites the header of a compressed file through `edit` (JSON text), keeping every
    /// checksum valid so that the check under test is reached.
    static func rewriteHeader(_ bytes: [UInt8], _ edit: (String) -> String) -> [UInt8] {
        let h = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) })
        let json = String(decoding: bytes[32..<(32 + h)], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        var header = Array(edit(json).utf8)
        header += [UInt8](repeating: 0x20, count: h - header.count)
        var out = bytes
        out.replaceSubrange(32..<(32 + h), with: header)
        withUnsafeBytes(of: Checksum.xxh3(header).littleEndian) { out.replaceSubrange(24..<32, with: $0) }
        return out
    }

    @Test func craftedCompressionFieldsAreRejected() throws {
        let dir = TempDir()
        try Self.writePlain(dir.file("plain.folio"), .plain(.bf16))
        let out = dir.file("c.folio")
        _ = try FolioCompressor.write(try FolioFile(path: dir.file("plain.folio")), to: out, options: CompressionOptions(codec: .lz4, chunkBytes: 8192))
        let good = readBytes(out)
        let cases: [(String, (String) -> String)] = [
            ("unknown codec", { $0.replacingOccurrences(of: "\"codec\":\"lz4\"", with: "\"codec\":\"lzma\"") }),
            ("chunk_bytes", { $0.replacingOccurrences(of: "\"chunk_bytes\":8192", with: "\"chunk_bytes\":8191") }),
            ("stored_nbytes", { $0.replacingOccurrences(of: "\"stored_nbytes\":", with: "\"stored_nbytes\":1") }),
            ("index_hash", { $0.replacingOccurrences(of: "\"index_hash\":\"", with: "\"index_hash\":\"x") }),
            ("needs 'codec'", { $0.replacingOccurrences(of: "\"codec\":\"lz4\",", with: "") }),
        ]
        for (expected, edit) in cases {
            let crafted = Self.rewriteHeader(good, edit)
            #expect(crafted != good)
            do {
                _ = try openFolio(crafted, in: dir, name: "bad.folio")
                Issue.record("accepted: \(expected)")
            } catch let e as FolioError {
                #expect("\(e)".contains(expected) || "\(e)".contains("outside") || "\(e)".contains("data_size"), "\(e)")
                #expect(!"\(e)".contains("\n"))
            }
        }
        // Version 1 knows no compression fields.
        var v1 = good
        v1[8] = 1
        #expect(throws: FolioError.self) { _ = try openFolio(v1, in: dir, name: "v1.folio") }
        // A damaged chunk index (data region, so the file opens) is refused on first use.
        let f = try FolioFile(path: out)
        let t = try #require(f.tensors.first { $0.isCompressed })
        let at = f.header.dataOffset + t.offset + t.storedBytes - ChunkIndex.entrySize + 8
        var damaged = good
        damaged[at] ^= 1
        let g = try openFolio(damaged, in: dir, name: "idx.folio")
        var row = [Float](repeating: 0, count: t.rowWidth)
        #expect(throws: FolioError.self) { try row.withUnsafeMutableBufferPointer { try g.readRow(t, 0, into: $0) } }
        #expect(!g.verify().isIntact)
    }

    @Test func theCacheStaysWithinItsBound() throws {
        let dir = TempDir()
        try Self.writePlain(dir.file("plain.folio"), .plain(.f32), rows: 2000, width: 64)
        let out = dir.file("c.folio")
        _ = try FolioCompressor.write(try FolioFile(path: dir.file("plain.folio")), to: out, options: CompressionOptions(codec: .zstd, chunkBytes: 4096))
        let f = try FolioFile(path: out, cacheBytes: 3 * 4096)
        let t = try f.requireTensor("dense")
        var v = [Float](repeating: 0, count: t.rowWidth)
        for r in stride(from: 0, to: t.rowCount, by: 7) {
            try v.withUnsafeMutableBufferPointer { try f.readRow(t, r, into: $0) }
            #expect(f.chunkCache.bytesHeld <= 3 * 4096)
        }
        #expect(f.chunkCache.bytesHeld > 0)
        let none = try FolioFile(path: out, cacheBytes: 0)
        try v.withUnsafeMutableBufferPointer { try none.readRow(try none.requireTensor("dense"), 5, into: $0) }
        #expect(none.chunkCache.bytesHeld == 0)
    }
}
