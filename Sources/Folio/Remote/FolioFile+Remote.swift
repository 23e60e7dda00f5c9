extension FolioFile {
    /// The chunk table lives in the tail; fetched with the header's second request when at
    /// most this long (80 KB per 10 GB of data with 1 MiB chunks), else on the first read.
    static let remoteTableWithHeader = 4 << 20

    /// Reads and validates the header of a remote file: the preamble and header come with
    /// the opening request (a header longer than it costs one more), the tail (end marker
    /// and, when small, the chunk table) with one more; then the data region is declared as
    /// chunks that are used only once their XXH3 matches the chunk table.
    static func openRemote(_ r: RemoteBytes) throws -> FolioHeader {
        let file = r.display
        let bytes = UnsafeRawBufferPointer(start: r.base, count: r.size)
        var headerEnd = 0
        if r.size >= FolioFormat.preambleSize, zip(FolioFormat.magic, bytes).allSatisfy({ $0 == $1 }) {
            let length = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian
            if length > 0, length <= UInt64(FolioFormat.maxHeaderLength), FolioFormat.preambleSize + Int(length) <= r.size {
                headerEnd = FolioFormat.preambleSize + Int(length)
                try r.ensureRaw([0..<headerEnd])
                if let (dataSize, chunkSize) = peekSizes(UnsafeRawBufferPointer(rebasing: bytes[FolioFormat.preambleSize..<headerEnd])) {
                    let chunks = dataSize == 0 ? 0 : (dataSize - 1) / chunkSize + 1
                    let trailer = headerEnd + dataSize
                    if trailer <= r.size - FolioFormat.footerSize, chunks * 8 <= remoteTableWithHeader {
                        try r.ensureRaw([trailer..<r.size])
                    } else if r.size >= 16 {
                        try r.ensureRaw([(r.size - 16)..<r.size])
                    }
                }
            }
        }
        let header: FolioHeader
        do {
            header = try FolioHeader.parse(bytes, file: file)
        } catch FolioError.checksum where headerEnd > 0 {
            // Damaged in transit or at rest: fetch the header once more before believing it.
            r.invalidateRaw(0..<headerEnd)
            try r.ensureRaw([0..<headerEnd])
            header = try FolioHeader.parse(bytes, file: file)
        }
        let table = RemoteChunkTable(remote: r, header: header)
        try r.setRegion(start: header.dataOffset, end: header.dataOffset + header.dataSize, unit: header.chunkSize, unitName: "chunk") { u, b in
            try table.matches(u, b)
        }
        return header
    }

    /// `data_size` and `chunk_size` of a header, read before it is validated (to know where
    /// the tail is); nil when they cannot be read, and the full parse then says why.
    static func peekSizes(_ header: UnsafeRawBufferPointer) -> (Int, Int)? {
        guard let json = try? JSONParser.parse(header), let d = json["data_size"]?.intValue, let c = json["chunk_size"]?.intValue,
              d >= 0, c >= 4096, c <= 1 << 20 else { return nil }
        return (d, c)
    }

    /// Requests made to the server for this file so far (nil for a local file), and body bytes.
    public var remoteCounters: (requests: Int, bytes: Int)? { map.remote?.requestCounters }

    /// Starts fetching the records of `rows` (one id per table per token, as for
    /// `gatherSum`) in the background; a no-op for a local file. Invalid ids are skipped
    /// (the gather that reads them reports them).
    public func prefetchRows(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>) {
        guard let remote = map.remote, !tables.isEmpty else { return }
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() {
            let t = tables[i % tables.count]
            guard r >= 0, r < Int64(t.rowCount), !t.isCompressed else { continue }
            ranges.append(rowByteRange(t, Int(r)))
        }
        remote.prefetch(ranges)
    }
}

/// The chunk table of a remote file, fetched and checked against `table_hash` once, on the
/// first data read (or at open when it came with the tail).
final class RemoteChunkTable: @unchecked Sendable {
    // @unchecked: `loaded` is touched under `lock`; the table bytes are read-only once loaded.
    let remote: RemoteBytes
    let trailer: Int
    let count: Int
    private let lock = NSLockLike()
    private var loaded = false

    init(remote: RemoteBytes, header: FolioHeader) {
        self.remote = remote
        trailer = header.trailerOffset
        count = header.chunkCount
    }

    func matches(_ chunk: Int, _ bytes: UnsafeRawBufferPointer) throws -> Bool {
        try load()
        let stored = UnsafeRawPointer(remote.base!).loadUnaligned(fromByteOffset: trailer + 8 * chunk, as: UInt64.self).littleEndian
        return Checksum.xxh3(bytes) == stored
    }

    private func load() throws {
        try lock.withLock {
            guard !loaded else { return }
            let range = trailer..<remote.size
            for attempt in 0..<2 {
                try remote.ensureRaw([range])
                let base = UnsafeRawPointer(remote.base!)
                let stored = base.loadUnaligned(fromByteOffset: remote.size - 16, as: UInt64.self).littleEndian
                if Checksum.xxh3(UnsafeRawBufferPointer(start: base + trailer, count: 8 * count)) == stored { loaded = true; return }
                if attempt == 0 { remote.invalidateRaw(range) }
            }
            throw FolioError.checksum(file: remote.display, reason: "the chunk checksum table (bytes \(trailer)..<\(remote.size - 8)) does not match table_hash: no data of this remote file can be checked, so none is read (run `folio verify` on it)")
        }
    }
}
