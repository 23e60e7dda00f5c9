import Dispatch

/// Whether 2- and 4-byte plain tensors are split into byte planes before compressing.
public enum PlaneChoice: Sendable, Hashable {
    case off, on
    /// Per tensor, whichever compresses a sample of its chunks smaller.
    case auto
}

/// How `FolioCompressor` stores tensors.
public struct CompressionOptions: Sendable {
    public var codec: CompressionCodec
    public var level: Int
    /// Byte planes for 2- and 4-byte plain dtypes: always, never, or where they pay (default).
    public var planes: PlaneChoice
    /// Target logical bytes per chunk, rounded down to whole rows (dense) or pages (paged).
    public var chunkBytes: Int
    /// A chunk is stored compressed only when that saves at least this fraction of it.
    public var minSaving: Double
    /// Threads compressing chunks.
    public var threads: Int

    public static let defaultChunkBytes = 64 << 10
    public static let defaultMinSaving = 0.03

    public init(codec: CompressionCodec, level: Int? = nil, planes: PlaneChoice = .auto, chunkBytes: Int = CompressionOptions.defaultChunkBytes,
                minSaving: Double = CompressionOptions.defaultMinSaving, threads: Int = 2) {
        self.codec = codec
        self.level = level ?? codec.defaultLevel
        self.planes = planes
        self.chunkBytes = chunkBytes
        self.minSaving = minSaving
        self.threads = threads
    }

    /// Parses `lz4`, `zstd`, `lz4:LEVEL` or `zstd:LEVEL`.
    public static func parse(_ text: String) -> CompressionOptions? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let codec = CompressionCodec(rawValue: String(parts[0])) else { return nil }
        if parts.count == 2 {
            guard let level = Int(parts[1]), codec.levels.contains(level) else { return nil }
            return CompressionOptions(codec: codec, level: level)
        }
        return CompressionOptions(codec: codec)
    }
}

/// What happened to one tensor in `FolioCompressor.write`.
public struct CompressionReport: Sendable {
    public let name: String
    public let logicalBytes: Int
    public let storedBytes: Int
    /// Nil when the tensor was stored uncompressed (empty, or no chunk saved enough).
    public let codec: CompressionCodec?
    public let chunks: Int
    public let rawChunks: Int
}

/// Writes a Folio file with compressed tensors (format version 2, section 15 of the spec)
/// from an open Folio file, streaming: chunks are read from the source, compressed a batch
/// at a time on `threads` threads and appended; the header, whose offsets depend on the
/// compressed sizes, is written last over space reserved for it. A tensor none of whose
/// chunks saves `minSaving` is stored uncompressed, so it stays zero-copy; a file without
/// any compressed tensor is written as version 1 (or 3 when it has records tensors).
public enum FolioCompressor {
    public static func write(_ source: FolioFile, to destination: String, options: CompressionOptions,
                             progress: ((Int, Int) -> Void)? = nil) throws -> [CompressionReport] {
        let h = source.header
        guard options.codec.levels.contains(options.level) else {
            throw FolioError.invalidUse(file: destination, reason: "\(options.codec.rawValue) level \(options.level) is outside \(options.codec.levels)")
        }
        guard options.chunkBytes >= 1, options.chunkBytes <= TensorCompression.maxChunkBytes else {
            throw FolioError.invalidUse(file: destination, reason: "chunk size \(options.chunkBytes) is outside 1...\(TensorCompression.maxChunkBytes)")
        }
        // Reserve room for the largest header these tensors can need: every number at 19
        // digits, every tensor compressed with every field present.
        let big = 9_000_000_000_000_000_000
        let worst = h.tensors.map { t in
            var w = TensorInfo(name: t.name, encoding: t.encoding, shape: t.shape, offset: big, nbytes: t.nbytes, paged: t.paged, sourceDType: t.sourceDType)
            w.compression = TensorCompression(codec: .zstd, planes: true, chunkBytes: big, storedBytes: big, indexHash: .max)
            return w
        }
        let worstFiles = h.files.map { EmbeddedFile(name: $0.name, offset: big, nbytes: $0.nbytes) }
        let worstJSON = FolioWriter.headerJSON(pageSize: h.pageSize, chunkSize: h.chunkSize, dataSize: big, metadata: h.metadata,
                                               tensors: worst, files: worstFiles).serialized()
        guard let dataStart = alignUp(FolioFormat.preambleSize + worstJSON.utf8.count, h.pageSize),
              dataStart - FolioFormat.preambleSize <= FolioFormat.maxHeaderLength else {
            throw FolioError.invalidUse(file: destination, reason: "the header would exceed \(FolioFormat.maxHeaderLength) bytes")
        }
        let out = try AtomicOutput(destination: destination)
        var stream = DataStream(out: out, dataStart: dataStart, chunkSize: h.chunkSize)
        try out.writeZeros(dataStart)

        var files: [EmbeddedFile] = []
        for f in h.files {
            try stream.pad(to: FolioFormat.denseAlignment)
            let at = stream.cursor
            _ = try source.withFile(named: f.name) { try stream.emit($0) }
            files.append(EmbeddedFile(name: f.name, offset: at, nbytes: f.nbytes))
        }
        var infos: [TensorInfo] = []
        var reports: [CompressionReport] = []
        for (k, t) in h.tensors.enumerated() {
            try stream.pad(to: t.paged?.startAlignment(pageSize: h.pageSize) ?? FolioFormat.denseAlignment)
            let (info, report) = try writeTensor(t, from: source, options: options, stream: &stream, destination: destination)
            infos.append(info)
            reports.append(report)
            if !t.isCompressed { source.release(t) }
            progress?(k + 1, h.tensors.count)
        }
        let dataSize = stream.cursor
        try stream.finish()

        var headerBytes = Array(FolioWriter.headerJSON(pageSize: h.pageSize, chunkSize: h.chunkSize, dataSize: dataSize, metadata: h.metadata,
                                                       tensors: infos, files: files).serialized().utf8)
        precondition(headerBytes.count <= dataStart - FolioFormat.preambleSize, "reserved header space")
        headerBytes += repeatElement(0x20, count: dataStart - FolioFormat.preambleSize - headerBytes.count)
        var pre = FolioFormat.magic
        let version = FolioFormat.version(for: infos)
        for v in [UInt64(version) /* version and zero flags */, UInt64(headerBytes.count), Checksum.xxh3(headerBytes)] {
            withUnsafeBytes(of: v.littleEndian) { pre += $0 }
        }
        try out.overwrite(at: 0, pre + headerBytes)
        try out.commit()
        return reports
    }

    /// Logical bytes per chunk for `t`: whole pages of a paged table; whole rows of a dense
    /// tensor when a row fits the target, else whole elements.
    static func chunkBytes(for t: TensorInfo, target: Int) -> Int {
        if let p = t.paged { return max(1, target / p.blockSize) * p.blockSize }
        let size = t.encoding.plainDType?.size ?? 1
        let row = t.rowWidth * size
        if row > 0, row <= target { return target / row * row }
        return max(1, target / size) * size
    }

    private static func writeTensor(_ t: TensorInfo, from source: FolioFile, options: CompressionOptions, stream: inout DataStream,
                                    destination: String) throws -> (TensorInfo, CompressionReport) {
        let start = stream.cursor
        var plain = TensorInfo(name: t.name, encoding: t.encoding, shape: t.shape, offset: start, nbytes: t.nbytes, paged: t.paged, sourceDType: t.sourceDType)
        let size = t.encoding.plainDType?.size ?? 0
        let cb = chunkBytes(for: t, target: options.chunkBytes)
        let n = t.nbytes == 0 ? 0 : (t.nbytes - 1) / cb + 1
        let planes: Bool
        switch options.planes {
        case .off: planes = false
        case .on: planes = size == 2 || size == 4
        case .auto: planes = try (size == 2 || size == 4) && n > 0 && planesPay(t, from: source, chunks: n, chunkBytes: cb, options: options)
        }
        var entries: [ChunkEntry] = []
        entries.reserveCapacity(n)
        let batch = max(1, options.threads) * 4
        var first = 0
        while first < n {
            let count = min(batch, n - first)
            let results = try compressBatch(t, from: source, chunks: first..<(first + count), chunkBytes: cb, planes: planes, options: options)
            for r in results {
                try r.bytes.withUnsafeBytes { try stream.emit($0) }
                entries.append(ChunkEntry(offset: stream.cursor - start - r.bytes.count, storedSize: r.bytes.count, storedHash: r.storedHash, rawHash: r.rawHash))
            }
            first += count
        }
        let rawChunks = entries.enumerated().filter { $0.element.storedSize == min(cb, t.nbytes - $0.offset * cb) }.count
        if rawChunks == n {
            // Nothing saved: the chunks are the tensor's bytes, in place and aligned.
            return (plain, CompressionReport(name: t.name, logicalBytes: t.nbytes, storedBytes: t.nbytes, codec: nil, chunks: n, rawChunks: n))
        }
        var index: [UInt8] = []
        index.reserveCapacity(n * ChunkIndex.entrySize)
        for e in entries { ChunkIndex.encode(e, into: &index) }
        try index.withUnsafeBytes { try stream.emit($0) }
        let stored = stream.cursor - start
        plain.compression = TensorCompression(codec: options.codec, planes: planes, chunkBytes: cb, storedBytes: stored, indexHash: Checksum.xxh3(index))
        return (plain, CompressionReport(name: t.name, logicalBytes: t.nbytes, storedBytes: stored, codec: options.codec, chunks: n, rawChunks: rawChunks))
    }

    /// Whether byte planes make `t` smaller: up to `sampleChunks` chunks spread over the tensor
    /// compressed both ways (whole tensors when they are that small).
    static let sampleChunks = 8
    private static func planesPay(_ t: TensorInfo, from source: FolioFile, chunks n: Int, chunkBytes cb: Int,
                                  options: CompressionOptions) throws -> Bool {
        let picks = n <= sampleChunks ? Array(0..<n) : (0..<sampleChunks).map { $0 * (n - 1) / (sampleChunks - 1) }
        var with = 0, without = 0
        for i in picks {
            let a = try compressBatch(t, from: source, chunks: i..<(i + 1), chunkBytes: cb, planes: true, options: options)
            let b = try compressBatch(t, from: source, chunks: i..<(i + 1), chunkBytes: cb, planes: false, options: options)
            with += a[0].bytes.count
            without += b[0].bytes.count
        }
        return with < without
    }

    private struct Chunk: Sendable {
        var bytes: [UInt8] = []
        var storedHash: UInt64 = 0
        var rawHash: UInt64 = 0
    }

    private final class Results: @unchecked Sendable {
        // @unchecked: each slot is written by exactly one iteration.
        var chunks: [Chunk]
        var errors: [Error?]
        init(_ n: Int) { chunks = Array(repeating: Chunk(), count: n); errors = Array(repeating: nil, count: n) }
    }

    /// Compresses chunks `chunks` of `t` in parallel; each result holds the stored bytes.
    private static func compressBatch(_ t: TensorInfo, from source: FolioFile, chunks: Range<Int>, chunkBytes cb: Int, planes: Bool,
                                      options: CompressionOptions) throws -> [Chunk] {
        let results = Results(chunks.count)
        let size = t.encoding.plainDType?.size ?? 1
        let work: @Sendable (Int) -> Void = { (j: Int) in
            let i = chunks.lowerBound + j
            let lo = i * cb, hi = min(t.nbytes, lo + cb)
            do {
                results.chunks[j] = try source.withLogicalBytes(of: t, range: lo..<hi) { raw -> Chunk in
                    var c = Chunk(rawHash: Checksum.xxh3(raw))
                    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: raw.count, alignment: 64)
                    defer { input.deallocate() }
                    if planes { BytePlanes.split(raw.baseAddress!, input.baseAddress!, count: raw.count / size, size: size) } else { input.copyMemory(from: raw) }
                    var packed = [UInt8](repeating: 0, count: options.codec.bound(raw.count))
                    let n = packed.withUnsafeMutableBytes { options.codec.compress(UnsafeRawBufferPointer(input), into: $0, level: options.level) }
                    let saving = Int((Double(raw.count) * options.minSaving).rounded(.up))
                    if let n, n < raw.count, n <= raw.count - saving {
                        packed.removeSubrange(n...)
                        c.bytes = packed
                    } else {
                        c.bytes = Array(raw)
                    }
                    c.storedHash = Checksum.xxh3(c.bytes)
                    return c
                }
            } catch { results.errors[j] = error }
        }
        if options.threads > 1 && chunks.count > 1 {
            DispatchQueue.concurrentPerform(iterations: chunks.count, execute: work)
        } else {
            for j in 0..<chunks.count { work(j) }
        }
        if let e = results.errors.compactMap({ $0 }).first { throw e }
        return results.chunks
    }
}
