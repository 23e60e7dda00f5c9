import CFolioKernels
/// An open Folio file: memory-mapped, header fully validated before anything is exposed,
/// immutable afterwards. Tensor bytes are served zero-copy from the mapping.
public final class FolioFile: Sendable {
    public let path: String
    public let header: FolioHeader
    let map: MappedFile
    private let index: [String: Int]
    /// Decompressed chunks of compressed tensors (Compression/FolioFile+Compressed.swift).
    public let chunkCache: ChunkCache
    let chunkIndexes = ChunkIndexStore()

    /// Opens and validates `path`. Costs the header and the chunk table, not the data.
    /// `resident`: read the whole file into private 2 MiB-page memory instead of mapping it
    /// (see `MappedFile`): for lookup-heavy tables that fit in RAM. `cacheBytes` bounds the
    /// decompressed chunks of compressed tensors kept in memory.
    ///
    /// `path` may be an http(s) URL: the file is then read with byte-range requests (see
    /// `RemoteBytes`): the header in one or two requests, each data chunk fetched when first
    /// read and used only once it matches its XXH3 hash in the chunk table.
    public init(path: String, resident: Bool = false, cacheBytes: Int = FolioFile.defaultCacheBytes) throws {
        chunkCache = ChunkCache(capacity: cacheBytes)
        if RemoteLocation.isURL(path) {
            let remote = try RemoteBytes(url: path)
            self.path = remote.display
            guard !resident else {
                throw FolioError.invalidUse(file: remote.display, reason: "--resident reads a local file into memory; a remote file is fetched as it is read")
            }
            map = MappedFile(remote: remote)
            header = try Self.openRemote(remote)
        } else {
            self.path = path
            map = try MappedFile(path: path, resident: resident)
            header = try map.withBytes { b throws in try FolioHeader.parse(b, file: path) }
        }
        var idx: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    public var tensors: [TensorInfo] { header.tensors }
    public var fileSize: Int { map.size }

    public func tensor(named name: String) -> TensorInfo? {
        index[name].map { header.tensors[$0] }
    }

    public func requireTensor(_ name: String) throws -> TensorInfo {
        guard let t = tensor(named: name) else { throw FolioError.notFound(file: path, name: name) }
        return t
    }

    /// Absolute offset of a tensor in the file.
    public func absoluteOffset(of t: TensorInfo) -> Int { header.dataOffset + t.offset }

    /// Calls `body` with a tensor's stored bytes (dense values, or the paged records with
    /// their padding), zero-copy. Throws for a compressed tensor, whose bytes exist only
    /// chunk by chunk: read those with `withLogicalBytes`, `readRows` or `gatherRows`.
    public func withBytes<R>(of t: TensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let c = t.compression {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' is stored compressed (\(c.codec.rawValue)) and has no contiguous bytes; read it by rows, or convert the file without --compress")
        }
        try map.ensure(offset: header.dataOffset + t.offset, count: t.nbytes)
        return try map.withBytes { (all: UnsafeRawBufferPointer) throws -> R in
            let start = header.dataOffset + t.offset
            return try body(UnsafeRawBufferPointer(rebasing: all[start..<(start + t.nbytes)]))
        }
    }

    /// A typed zero-copy view of a dense tensor's values. Throws when the tensor is paged or
    /// its dtype's size differs from `T`'s.
    public func withValues<T, R, E: Error>(of t: TensorInfo, as: T.Type, _ body: (UnsafeBufferPointer<T>) throws(E) -> R) throws -> R {
        guard t.paged == nil, let d = t.encoding.plainDType, d.size == MemoryLayout<T>.stride else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' (\(t.encoding.name)\(t.paged != nil ? ", paged" : "")) cannot be viewed as \(T.self)")
        }
        return try withBytes(of: t) { (raw: UnsafeRawBufferPointer) throws -> R in
            try body(raw.assumingMemoryBound(to: T.self))
        }
    }

    /// Calls `body` with the bytes of an embedded file (config.json, tokenizer.json, ...).
    public func withFile<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard let f = header.files.first(where: { $0.name == name }) else { return nil }
        try map.ensure(offset: header.dataOffset + f.offset, count: f.nbytes)
        return try map.withBytes { all in
            let start = header.dataOffset + f.offset
            return try body(UnsafeRawBufferPointer(rebasing: all[start..<(start + f.nbytes)]))
        }
    }

    public func fileBytes(named name: String) -> [UInt8]? {
        (try? withFile(named: name) { Array($0) }) ?? nil
    }

    // MARK: Rows

    /// Reads row `row` of `t` (the tensor seen as rows of its last dimension), dequantized
    /// into `out`, which must hold `t.rowWidth` floats.
    public func readRow(_ t: TensorInfo, _ row: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        try checkRow(t, row)
        guard out.count >= t.rowWidth else {
            throw FolioError.invalidUse(file: path, reason: "output buffer holds \(out.count) floats, row of '\(t.name)' has \(t.rowWidth)")
        }
        if t.isCompressed { return try compressedDecodeRow(t, row, into: out.baseAddress!, accumulate: false) }
        if map.remote != nil { try map.ensure([rowByteRange(t, row)]) }
        map.withBytes { all in
            decodeRow(t, row, all: all, into: out.baseAddress!)
        }
    }

    /// Gathers `rows` of `t` into `out` (row-major, `rows.count * t.rowWidth` floats).
    /// Every index is checked before any byte is read.
    public func gatherRows(_ t: TensorInfo, rows: some Collection<Int>, into out: UnsafeMutableBufferPointer<Float>) throws {
        let width = t.rowWidth
        guard out.count >= rows.count * width else {
            throw FolioError.invalidUse(file: path, reason: "output buffer holds \(out.count) floats, \(rows.count) rows of '\(t.name)' need \(rows.count * width)")
        }
        try withUnsafeTemporaryAllocation(of: Int64.self, capacity: rows.count) { ids in
            for (i, r) in rows.enumerated() { ids[i] = Int64(r) }
            try gatherRows(t, rows: UnsafeBufferPointer(ids), into: out.baseAddress!, stride: width, accumulate: false)
        }
    }

    /// The embedding-lookup kernel: decodes rows `rows` of `t` into `out + i * stride`, or
    /// adds them there when `accumulate` is true (summing the rows of several tables).
    /// Every index is checked before any byte is read; the cache misses of scattered rows
    /// overlap (see folio_gather_rows).
    public func gatherRows(_ t: TensorInfo, rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                           accumulate: Bool) throws {
        let count = t.rowCount
        for r in rows where r < 0 || r >= Int64(count) {
            throw FolioError.rowOutOfRange(file: path, tensor: t.name, row: Int(clamping: r), rows: count)
        }
        guard stride >= t.rowWidth else {
            throw FolioError.invalidUse(file: path, reason: "output stride \(stride) is narrower than a row of '\(t.name)' (\(t.rowWidth))")
        }
        guard !rows.isEmpty, t.rowWidth > 0 else { return }
        if t.isCompressed { return try compressedGatherRows(t, rows: rows, into: out, stride: stride, accumulate: accumulate) }
        if map.remote != nil { try map.ensure(rows.map { rowByteRange(t, Int($0)) }) }
        let width = t.rowWidth
        guard let (kind, group) = Self.kernelKind(t.encoding) else {
            // Other plain dtypes (f64, integers): one row at a time through the codec.
            var tmp = [Float](repeating: 0, count: width)
            map.withBytes { all in
                for (i, r) in rows.enumerated() {
                    tmp.withUnsafeMutableBufferPointer { decodeRow(t, Int(r), all: all, into: $0.baseAddress!) }
                    let o = out + i * stride
                    if accumulate { for j in 0..<width { o[j] += tmp[j] } } else { o.update(from: tmp, count: width) }
                }
            }
            return
        }
        let recordSize = rowByteRange(t, 0).count
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: rows.count) { offsets in
            for (i, r) in rows.enumerated() { offsets[i] = Int64(rowByteRange(t, Int(r)).lowerBound) }
            map.withBytes { all in
                folio_gather_rows(kind, group, all.baseAddress!.assumingMemoryBound(to: UInt8.self), offsets.baseAddress!, rows.count,
                                  width, recordSize, out, stride, accumulate ? 1 : 0)
            }
        }
    }

    /// The C kernel's record kind and group size for an encoding, nil for encodings it does
    /// not decode (f64 and integer dtypes).
    public static func kernelKind(_ e: Encoding) -> (Int32, Int)? {
        switch e {
        case .plain(.f32): return (Int32(FOLIO_ROW_F32), 0)
        case .plain(.f16): return (Int32(FOLIO_ROW_F16), 0)
        case .plain(.bf16): return (Int32(FOLIO_ROW_BF16), 0)
        case .int8(nil): return (Int32(FOLIO_ROW_INT8), 0)
        case let .int8(g?): return (Int32(FOLIO_ROW_INT8_GROUPS), g)
        case let .int4(g): return (Int32(FOLIO_ROW_INT4_GROUPS), g)
        case let .affine8(g): return (Int32(FOLIO_ROW_AFFINE8_GROUPS), g)
        default: return nil
        }
    }

    /// Embedding bags of one row per table: for each token i, the rows `rows[i * T + k]` of
    /// `tables[k]` (k < T) dequantized and summed into `out + i * stride`. All tables must have
    /// one encoding and row width. Indices are checked before any byte is read.
    /// `threads` > 1 splits the tokens over a small pool of spinning threads.
    public func gatherSum(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                          threads: Int = 1) throws {
        try gatherTables(tables, rows: rows, into: out, stride: stride, threads: threads, sum: true)
    }

    /// One row per table per token, each to its own place: row `rows[i * T + k]` of `tables[k]`
    /// to `out + (i * T + k) * stride` (with stride = width, token i's rows side by side).
    /// The same kernel and checks as `gatherSum`; the records of all tables are fetched
    /// together, so a single token's T lookups overlap.
    public func gatherRows(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                           threads: Int = 1) throws {
        try gatherTables(tables, rows: rows, into: out, stride: stride, threads: threads, sum: false)
    }

    private func gatherTables(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                              threads: Int, sum: Bool) throws {
        let t = tables.count
        guard let first = tables.first else { return }
        guard tables.allSatisfy({ $0.encoding == first.encoding && $0.rowWidth == first.rowWidth }), rows.count % t == 0 else {
            throw FolioError.invalidUse(file: path, reason: "a gather over several tables needs tables of one encoding and width and \(t) ids per token")
        }
        guard stride >= first.rowWidth else {
            throw FolioError.invalidUse(file: path, reason: "output stride \(stride) is narrower than a row of '\(first.name)' (\(first.rowWidth))")
        }
        try checkRows(tables, rows)
        let n = rows.count / t
        guard n > 0, first.rowWidth > 0 else { return }
        if map.remote != nil, !tables.contains(where: \.isCompressed) { try map.ensure(recordRanges(tables, rows)) }
        guard let (kind, group) = Self.kernelKind(first.encoding), !tables.contains(where: \.isCompressed) else {
            for (k, table) in tables.enumerated() {
                let mine = (0..<n).map { rows[$0 * t + k] }
                try mine.withUnsafeBufferPointer {
                    if sum { try gatherRows(table, rows: $0, into: out, stride: stride, accumulate: k > 0) }
                    else { try gatherRows(table, rows: $0, into: out + k * stride, stride: t * stride, accumulate: false) }
                }
            }
            return
        }
        let recordSize = rowByteRange(first, 0).count
        if let p = first.paged, tables.allSatisfy({ $0.paged == p }) {
            // One paged layout: the workers compute the offsets from the ids.
            let starts = tables.map { Int64(header.dataOffset + $0.offset) }
            starts.withUnsafeBufferPointer { sb in
                map.withBytes { all in
                    folio_gather_paged(max(1, threads), sum ? 1 : 0, kind, group, all.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                       sb.baseAddress!, rows.baseAddress!, n, t, UInt64(p.rowsPerPage), UInt64(p.blockSize),
                                       UInt64(p.rowStride), first.rowWidth, recordSize, out, stride)
                }
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: rows.count) { offsets in
            for (i, r) in rows.enumerated() { offsets[i] = Int64(rowByteRange(tables[i % t], Int(r)).lowerBound) }
            map.withBytes { all in
                let base = all.baseAddress!.assumingMemoryBound(to: UInt8.self)
                if sum {
                    folio_gather_sum_parallel(max(1, threads), kind, group, base, offsets.baseAddress!, n, t, first.rowWidth, recordSize,
                                              out, stride)
                } else {
                    folio_gather_rows(kind, group, base, offsets.baseAddress!, rows.count, first.rowWidth, recordSize, out, stride, 0)
                }
            }
        }
    }

    /// How many segments of the lookup kernels, process-wide, had their records prefetched
    /// a chunk ahead and how many loaded them just before decoding (the kernels time both
    /// and use the faster; FOLIO_GATHER_MODE fixes one).
    public static func gatherSegments() -> (prefetched: Int, loaded: Int) {
        var c: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &c) { folio_gather_segments($0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        return (Int(c.0), Int(c.1))
    }

    /// Every id of `rows` (one per table per token) is a row of its table. One pass over
    /// plain integers: a lookup batch of a few thousand rows is checked in microseconds.
    private func checkRows(_ tables: [TensorInfo], _ rows: UnsafeBufferPointer<Int64>) throws {
        let t = tables.count
        let counts = tables.map { UInt64($0.rowCount) }
        try counts.withUnsafeBufferPointer { c in
            var k = 0
            for r in rows {
                // A negative id wraps to a huge unsigned one and fails the same test.
                if UInt64(bitPattern: r) >= c[k] {
                    throw FolioError.rowOutOfRange(file: path, tensor: tables[k].name, row: Int(clamping: r), rows: tables[k].rowCount)
                }
                k += 1
                if k == t { k = 0 }
            }
        }
    }

    /// Reads one byte of every cache line of the records of `rows` (no decoding): the
    /// memory system's cost of a lookup, as a ceiling for `gatherRows`. Returns their sum.
    /// `rows` holds one id per table per token, as for `gatherSum`.
    public func touchRows(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>) throws -> UInt64 {
        let t = tables.count
        guard let first = tables.first, rows.count % t == 0 else { return 0 }
        try checkRows(tables, rows)
        guard !rows.isEmpty, first.rowWidth > 0 else { return 0 }
        if tables.contains(where: \.isCompressed) { return try compressedTouchRows(tables, rows: rows) }
        if map.remote != nil { try map.ensure(recordRanges(tables, rows)) }
        let recordSize = tables.map { rowByteRange($0, 0).count }.max()!
        return withUnsafeTemporaryAllocation(of: Int64.self, capacity: rows.count) { offsets in
            for (i, r) in rows.enumerated() { offsets[i] = Int64(rowByteRange(tables[i % t], Int(r)).lowerBound) }
            return map.withBytes { all in
                folio_touch_rows(all.baseAddress!.assumingMemoryBound(to: UInt8.self), offsets.baseAddress!, rows.count, recordSize)
            }
        }
    }

    /// Reads rows `start..<start+count` in order (used for streaming over a whole tensor).
    public func readRows(_ t: TensorInfo, start: Int, count: Int, into out: UnsafeMutablePointer<Float>) throws {
        guard count >= 0, start >= 0, start <= t.rowCount, count <= t.rowCount - start else {
            throw FolioError.rowOutOfRange(file: path, tensor: t.name, row: start + max(count, 0), rows: t.rowCount)
        }
        let width = t.rowWidth
        if t.isCompressed { return try compressedReadRows(t, start: start, count: count, into: out) }
        if map.remote != nil, count > 0 {
            let range = rowByteRange(t, start).lowerBound..<rowByteRange(t, start + count - 1).upperBound
            map.remote!.noteSequentialRead(range)
            try map.ensure([range])
        }
        map.withBytes { all in
            if t.paged == nil, let d = t.encoding.plainDType, width > 0 {
                let begin = header.dataOffset + t.offset + start * width * d.size
                d.toFloat(all.baseAddress! + begin, count: count * width, into: out)
                return
            }
            for i in 0..<count { decodeRow(t, start + i, all: all, into: out + i * width) }
        }
    }

    /// The byte ranges of the records of `rows` (one id per table per token, ids checked).
    func recordRanges(_ tables: [TensorInfo], _ rows: UnsafeBufferPointer<Int64>) -> [Range<Int>] {
        rows.enumerated().map { rowByteRange(tables[$0.offset % tables.count], Int($0.element)) }
    }

    /// Byte range of row `row` within the file (for paged tables exactly one record).
    public func rowByteRange(_ t: TensorInfo, _ row: Int) -> Range<Int> {
        let base = header.dataOffset + t.offset
        if let p = t.paged {
            let s = base + p.rowOffset(row)
            return s..<(s + p.recordSize)
        }
        let size = t.rowWidth * (t.encoding.plainDType?.size ?? 1)
        return (base + row * size)..<(base + (row + 1) * size)
    }

    @inline(__always)
    private func checkRow(_ t: TensorInfo, _ row: Int) throws {
        guard row >= 0, row < t.rowCount else {
            throw FolioError.rowOutOfRange(file: path, tensor: t.name, row: row, rows: t.rowCount)
        }
    }

    @inline(__always)
    private func decodeRow(_ t: TensorInfo, _ row: Int, all: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<Float>) {
        let range = rowByteRange(t, row)
        RowCodec.decode(t.encoding, record: all.baseAddress! + range.lowerBound, width: t.rowWidth, into: out)
    }

    // MARK: Access hints

    /// Advises the kernel how a tensor will be read (`.random` for embedding lookups).
    public func advise(_ t: TensorInfo, _ advice: AccessAdvice) {
        map.advise(advice, offset: header.dataOffset + t.offset, length: t.storedBytes)
    }

    /// Asks the kernel to start reading the pages of rows that are about to be looked up.
    public func willNeed(_ t: TensorInfo, rows: some Sequence<Int>) {
        for r in rows where r >= 0 && r < t.rowCount && !t.isCompressed {
            let range = rowByteRange(t, r)
            map.advise(.willNeed, offset: range.lowerBound, length: range.count)
        }
    }

    /// Lets the kernel drop this process's pages of a tensor (after streaming over it).
    public func release(_ t: TensorInfo) {
        map.advise(.dontNeed, offset: header.dataOffset + t.offset, length: t.storedBytes)
    }

    /// Lets the kernel drop this process's pages of rows `start..<start+count` (after
    /// streaming over them).
    public func releaseRows(_ t: TensorInfo, start: Int, count: Int) {
        guard count > 0, start >= 0, start + count <= t.rowCount, !t.isCompressed else { return }
        let lo = rowByteRange(t, start).lowerBound, hi = rowByteRange(t, start + count - 1).upperBound
        map.advise(.dontNeed, offset: lo, length: hi - lo)
    }

    /// Lets the kernel drop pages of a byte range of the data region.
    public func releaseBytes(offset: Int, length: Int) {
        map.advise(.dontNeed, offset: header.dataOffset + offset, length: length)
    }
}
