import CFolioKernels

/// Chunk indexes of the compressed tensors of one file, parsed on first use.
final class ChunkIndexStore: @unchecked Sendable {
    // @unchecked: `indexes` is only touched under `lock`.
    private let lock = NSLockLike()
    private var indexes: [Int: ChunkIndex] = [:]

    func get(_ offset: Int, _ make: () throws -> ChunkIndex) throws -> ChunkIndex {
        if let i = lock.withLock({ indexes[offset] }) { return i }
        let i = try make()
        lock.withLock { indexes[offset] = i }
        return i
    }
}

extension FolioFile {
    /// Decompressed bytes kept per open file unless the caller says otherwise.
    public static let defaultCacheBytes = 64 << 20

    /// The validated chunk index of a compressed tensor (parsed and hash-checked once).
    public func chunkIndex(_ t: TensorInfo) throws -> ChunkIndex {
        try chunkIndexes.get(t.offset) {
            if map.remote != nil, let c = t.compression {
                let n = c.chunkCount(nbytes: t.nbytes)
                let end = header.dataOffset + t.offset + c.storedBytes
                try map.ensure([(end - n * ChunkIndex.entrySize)..<end])
            }
            return try map.withBytes { all throws in
                try ChunkIndex.parse(UnsafeRawBufferPointer(rebasing: all[header.dataOffset...]), tensor: t, file: path)
            }
        }
    }

    /// Absolute byte range of chunk `i`'s stored bytes.
    func storedRange(_ t: TensorInfo, _ e: ChunkEntry) -> Range<Int> {
        let s = header.dataOffset + t.offset + e.offset
        return s..<(s + e.storedSize)
    }

    /// Reads, checks and decompresses chunk `i` of `t` (not through the cache).
    func decompressChunk(_ t: TensorInfo, _ i: Int, _ e: ChunkEntry) throws -> ChunkBuffer {
        let c = t.compression!
        let raw = c.rawSize(of: i, nbytes: t.nbytes)
        let range = storedRange(t, e)
        func damaged(_ why: String) -> FolioError {
            .checksum(file: path, reason: "tensor '\(t.name)': chunk \(i) (stored bytes \(range.lowerBound)..<\(range.upperBound)) \(why)")
        }
        let out = ChunkBuffer(count: raw)
        try map.ensure([range])
        try map.withBytes { all throws in
            let src = UnsafeRawBufferPointer(rebasing: all[range])
            guard Checksum.xxh3(src) == e.storedHash else { throw damaged("is damaged: its stored bytes do not match their checksum") }
            let dst = UnsafeMutableRawBufferPointer(start: out.base, count: raw)
            if e.storedSize == raw {
                dst.copyMemory(from: src)
            } else if c.planes, let size = t.encoding.plainDType?.size {
                let tmp = UnsafeMutableRawBufferPointer.allocate(byteCount: raw, alignment: 64)
                defer { tmp.deallocate() }
                guard c.codec.decompress(src, into: tmp) else { throw damaged("does not decompress with \(c.codec.rawValue) to \(raw) bytes") }
                BytePlanes.join(tmp.baseAddress!, out.base, count: raw / size, size: size)
            } else {
                guard c.codec.decompress(src, into: dst) else { throw damaged("does not decompress with \(c.codec.rawValue) to \(raw) bytes") }
            }
        }
        guard Checksum.xxh3(out.bytes) == e.rawHash else { throw damaged("decompresses to bytes that do not match their checksum") }
        return out
    }

    /// Calls `body` with the logical bytes of chunk `i`: straight from the mapping when the
    /// chunk is stored raw, else from the cache, decompressing it on a miss.
    func withChunk<R>(_ t: TensorInfo, _ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let index = try chunkIndex(t)
        let e = index.entries[i]
        if e.storedSize == t.compression!.rawSize(of: i, nbytes: t.nbytes) {
            try map.ensure([storedRange(t, e)])
            return try map.withBytes { all throws in try body(UnsafeRawBufferPointer(rebasing: all[storedRange(t, e)])) }
        }
        let key = ChunkCache.Key(tensorOffset: t.offset, chunk: i)
        if let b = chunkCache.lookup(key) { return try withExtendedLifetime(b) { try body(b.bytes) } }
        let b = try decompressChunk(t, i, e)
        chunkCache.insert(key, b)
        return try withExtendedLifetime(b) { try body(b.bytes) }
    }

    /// Calls `body` with the logical bytes `range` of a tensor (relative to its start): the
    /// dense values or paged records an uncompressed file holds there. Zero-copy for
    /// uncompressed tensors and for ranges inside one chunk; assembled into a temporary
    /// buffer otherwise. The pointer is valid only inside `body`.
    public func withLogicalBytes<R>(of t: TensorInfo, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard range.lowerBound >= 0, range.upperBound <= t.nbytes else {
            throw FolioError.invalidUse(file: path, reason: "bytes \(range.lowerBound)..<\(range.upperBound) lie outside tensor '\(t.name)' (\(t.nbytes) bytes)")
        }
        guard let c = t.compression else {
            try map.ensure(offset: header.dataOffset + t.offset + range.lowerBound, count: range.count)
            return try map.withBytes { all throws in
                let s = header.dataOffset + t.offset
                return try body(UnsafeRawBufferPointer(rebasing: all[(s + range.lowerBound)..<(s + range.upperBound)]))
            }
        }
        if range.isEmpty { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let first = range.lowerBound / c.chunkBytes, last = (range.upperBound - 1) / c.chunkBytes
        if first == last {
            let base = first * c.chunkBytes
            return try withChunk(t, first) { try body(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound - base)..<(range.upperBound - base)])) }
        }
        let tmp = UnsafeMutableRawBufferPointer.allocate(byteCount: range.count, alignment: 64)
        defer { tmp.deallocate() }
        for i in first...last {
            let base = i * c.chunkBytes
            let lo = max(range.lowerBound, base), hi = min(range.upperBound, base + c.chunkBytes)
            try withChunk(t, i) { b in
                (tmp.baseAddress! + (lo - range.lowerBound)).copyMemory(from: b.baseAddress! + (lo - base), byteCount: hi - lo)
            }
        }
        return try body(UnsafeRawBufferPointer(tmp))
    }

    /// Logical byte range of row `row` relative to the tensor start (one record when paged).
    func logicalRowRange(_ t: TensorInfo, _ row: Int) -> Range<Int> {
        if let p = t.paged {
            let s = p.rowOffset(row)
            return s..<(s + p.recordSize)
        }
        let size = t.rowWidth * (t.encoding.plainDType?.size ?? 1)
        return (row * size)..<((row + 1) * size)
    }

    /// Decodes row `row` of a compressed tensor into `out` (added to it when `accumulate`).
    func compressedDecodeRow(_ t: TensorInfo, _ row: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) throws {
        let width = t.rowWidth
        let range = logicalRowRange(t, row)
        try withLogicalBytes(of: t, range: range) { rec in
            if let (kind, group) = Self.kernelKind(t.encoding) {
                var zero: Int64 = 0
                folio_gather_rows(kind, group, rec.baseAddress!.assumingMemoryBound(to: UInt8.self), &zero, 1, width, range.count, out, width,
                                  accumulate ? 1 : 0)
            } else if accumulate {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: width) { tmp in
                    RowCodec.decode(t.encoding, record: rec.baseAddress!, width: width, into: tmp.baseAddress!)
                    for j in 0..<width { out[j] += tmp[j] }
                }
            } else {
                RowCodec.decode(t.encoding, record: rec.baseAddress!, width: width, into: out)
            }
        }
    }

    /// `gatherRows` for compressed tensors: each row decoded from its (cached) chunk.
    func compressedGatherRows(_ t: TensorInfo, rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                              accumulate: Bool) throws {
        guard t.rowWidth > 0 else { return }
        for (i, r) in rows.enumerated() { try compressedDecodeRow(t, Int(r), into: out + i * stride, accumulate: accumulate) }
    }

    /// `readRows` for compressed tensors: dense values converted chunk by chunk, paged
    /// records decoded one by one.
    func compressedReadRows(_ t: TensorInfo, start: Int, count: Int, into out: UnsafeMutablePointer<Float>) throws {
        let width = t.rowWidth
        guard count > 0, width > 0 else { return }
        if t.paged == nil, let d = t.encoding.plainDType, let c = t.compression {
            let lo = start * width * d.size, hi = (start + count) * width * d.size
            var at = lo
            while at < hi {
                let end = min(hi, (at / c.chunkBytes + 1) * c.chunkBytes)
                try withLogicalBytes(of: t, range: at..<end) { b in
                    d.toFloat(b.baseAddress!, count: b.count / d.size, into: out + (at - lo) / d.size)
                }
                at = end
            }
            return
        }
        for i in 0..<count { try compressedDecodeRow(t, start + i, into: out + i * width, accumulate: false) }
    }

    /// `touchRows` for compressed tables: reads the first byte of each record (decompressing
    /// its chunk when it is not cached).
    func compressedTouchRows(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>) throws -> UInt64 {
        var sum: UInt64 = 0
        for (i, r) in rows.enumerated() {
            let t = tables[i % tables.count]
            let range = logicalRowRange(t, Int(r))
            sum &+= try withLogicalBytes(of: t, range: range.lowerBound..<(range.lowerBound + min(1, range.count))) { UInt64($0.first ?? 0) }
        }
        return sum
    }

    /// Problems of the compressed tensors beyond the data-chunk hashes: a chunk index that
    /// does not match its hash or is inconsistent, stored chunks that do not match theirs,
    /// and, with `decompress`, chunks that do not decompress to their logical checksum.
    public func verifyCompressedTensors(decompress: Bool = true) -> [String] {
        var problems: [String] = []
        for t in header.tensors where t.isCompressed {
            let index: ChunkIndex
            do { index = try chunkIndex(t) } catch { problems.append("\(error)"); continue }
            for (i, e) in index.entries.enumerated() {
                let range = storedRange(t, e)
                if map.remote != nil {
                    do { try map.ensure([range]) } catch { problems.append("\(error)"); continue }
                }
                let storedOK = map.withBytes { all in Checksum.xxh3(UnsafeRawBufferPointer(rebasing: all[range])) == e.storedHash }
                if !storedOK {
                    problems.append("tensor '\(t.name)': chunk \(i) (stored bytes \(range.lowerBound)..<\(range.upperBound)) is damaged: its stored bytes do not match their checksum")
                    continue
                }
                if decompress {
                    do { _ = try decompressChunk(t, i, e) } catch { problems.append("\(error)") }
                }
                if i % 64 == 63 { releaseBytes(offset: t.offset + index.entries[i - 63].offset, length: range.upperBound - header.dataOffset - t.offset - index.entries[i - 63].offset) }
            }
        }
        return problems
    }
}

extension FolioFile {
    /// `nonFiniteScales` for compressed quantized tables, read through their chunks (a
    /// chunk that cannot be read is reported by `verifyCompressedTensors` instead).
    func compressedNonFiniteScales() -> [String] {
        var out: [String] = []
        for t in header.tensors where t.isCompressed && t.encoding.isQuantized && t.rowCount > 0 {
            guard let layout = Self.scaleLayout(t) else { continue }
            var bad = 0, first = -1
            for r in 0..<t.rowCount {
                let ok = (try? withLogicalBytes(of: t, range: logicalRowRange(t, r)) { rec in
                    rec.baseAddress.map { Self.scalesAreFinite($0, layout) } ?? true
                }) ?? true
                if !ok { bad += 1; if first < 0 { first = r } }
            }
            if bad > 0 { out.append("tensor '\(t.name)': \(bad) row(s) have a NaN or infinite scale or minimum, the first is row \(first)") }
        }
        return out
    }
}

extension FolioFile {
    /// Decompresses (and checks) chunk `i` of a compressed tensor without the cache and
    /// returns its logical size: for throughput measurements and tools.
    public func decompressChunkUncached(_ t: TensorInfo, _ i: Int) throws -> Int {
        let index = try chunkIndex(t)
        guard i >= 0, i < index.entries.count else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' has \(index.entries.count) chunks, not \(i + 1)")
        }
        return try decompressChunk(t, i, index.entries[i]).count
    }
}
