/// How a compressed tensor is stored (Formats/FOLIO.md, section 15): its logical bytes (the
/// dense values or the paged records, exactly as an uncompressed file would hold them) cut
/// into chunks of `chunkBytes`, each compressed on its own or kept raw, followed by a chunk
/// index of `ChunkIndex.entrySize` bytes per chunk.
public struct TensorCompression: Sendable, Hashable {
    public let codec: CompressionCodec
    /// Whether 2- and 4-byte elements were split into byte planes before compression.
    public let planes: Bool
    /// Logical bytes per chunk (the last chunk may be shorter): whole pages of a paged table,
    /// whole elements (normally whole rows) of a dense tensor.
    public let chunkBytes: Int
    /// Bytes the tensor occupies in the data region: the chunks and then the chunk index.
    public let storedBytes: Int
    /// XXH3-64 of the chunk index bytes.
    public let indexHash: UInt64

    public init(codec: CompressionCodec, planes: Bool, chunkBytes: Int, storedBytes: Int, indexHash: UInt64) {
        self.codec = codec
        self.planes = planes
        self.chunkBytes = chunkBytes
        self.storedBytes = storedBytes
        self.indexHash = indexHash
    }

    /// Chunks of a tensor of `nbytes` logical bytes.
    public func chunkCount(nbytes: Int) -> Int { nbytes == 0 ? 0 : (nbytes - 1) / chunkBytes + 1 }

    /// Logical bytes of chunk `i`.
    public func rawSize(of i: Int, nbytes: Int) -> Int { min(chunkBytes, nbytes - i * chunkBytes) }

    /// Largest accepted `chunk_bytes` unless a single page of a paged table is larger.
    public static let maxChunkBytes = 1 << 26
}

extension TensorInfo {
    /// Bytes the tensor occupies in the data region (its logical size when uncompressed).
    public var storedBytes: Int { compression?.storedBytes ?? nbytes }
    public var isCompressed: Bool { compression != nil }
}

/// One entry of a compressed tensor's chunk index: 32 bytes, little-endian u64s.
public struct ChunkEntry: Sendable, Hashable {
    /// Offset of the stored chunk from the tensor's `offset`.
    public let offset: Int
    /// Stored bytes; equal to the chunk's logical size exactly when the chunk is kept raw.
    public let storedSize: Int
    /// XXH3-64 of the stored bytes.
    public let storedHash: UInt64
    /// XXH3-64 of the logical (decompressed, planes joined) bytes.
    public let rawHash: UInt64
}

/// The validated chunk index of a compressed tensor.
public struct ChunkIndex: Sendable {
    public static let entrySize = 32
    public let entries: [ChunkEntry]

    /// Parses the index of tensor `t` from the data region `data` (relative offsets); checks
    /// its hash against the header and every entry: chunks packed in order from the tensor's
    /// start up to the index, a raw chunk exactly its logical size, a compressed one smaller.
    static func parse(_ data: UnsafeRawBufferPointer, tensor t: TensorInfo, file: String) throws -> ChunkIndex {
        guard let c = t.compression else { return ChunkIndex(entries: []) }
        let n = c.chunkCount(nbytes: t.nbytes)
        let indexStart = t.offset + c.storedBytes - n * entrySize
        let bytes = UnsafeRawBufferPointer(rebasing: data[indexStart..<(t.offset + c.storedBytes)])
        let actual = Checksum.xxh3(bytes)
        guard actual == c.indexHash else {
            throw FolioError.checksum(file: file, reason: "tensor '\(t.name)': chunk index (bytes \(indexStart)..<\(t.offset + c.storedBytes) of the data region) is damaged: index_hash \(hex(c.indexHash)), computed \(hex(actual))")
        }
        var entries: [ChunkEntry] = []
        entries.reserveCapacity(n)
        var cursor = 0
        for i in 0..<n {
            func u64(_ k: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: i * entrySize + k * 8, as: UInt64.self).littleEndian }
            let raw = c.rawSize(of: i, nbytes: t.nbytes)
            let (offset, stored) = (u64(0), u64(1))
            guard offset == UInt64(cursor) else {
                throw FolioError.badTensor(file: file, tensor: t.name, reason: "chunk \(i) starts at \(offset), expected \(cursor) (chunks are packed in order)")
            }
            guard stored >= 1, stored <= UInt64(raw) else {
                throw FolioError.badTensor(file: file, tensor: t.name, reason: "chunk \(i) has \(stored) stored bytes, expected 1...\(raw)")
            }
            entries.append(ChunkEntry(offset: cursor, storedSize: Int(stored), storedHash: u64(2), rawHash: u64(3)))
            cursor += Int(stored)
        }
        guard cursor == c.storedBytes - n * entrySize else {
            throw FolioError.badTensor(file: file, tensor: t.name, reason: "chunks end at \(cursor), but the chunk index starts at \(c.storedBytes - n * entrySize)")
        }
        return ChunkIndex(entries: entries)
    }

    /// The serialized entry.
    static func encode(_ e: ChunkEntry, into out: inout [UInt8]) {
        for v in [UInt64(e.offset), UInt64(e.storedSize), e.storedHash, e.rawHash] {
            withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
        }
    }
}

extension TensorCompression {
    /// Tensor keys of section 15 (version 2 only).
    static let headerKeys: Set<String> = ["codec", "planes", "chunk_bytes", "stored_nbytes", "index_hash"]

    /// The compression fields of a tensor entry, validated against the tensor's layout; nil
    /// when the entry has no `codec`.
    static func parse(_ entry: JSONValue, tensor t: TensorInfo, file: String) throws -> TensorCompression? {
        func bad(_ r: String) -> FolioError { .badTensor(file: file, tensor: t.name, reason: r) }
        guard let codecValue = entry["codec"] else {
            for k in headerKeys where entry[k] != nil { throw bad("field '\(k)' needs 'codec'") }
            return nil
        }
        guard let name = codecValue.stringValue, let codec = CompressionCodec(rawValue: name) else {
            throw bad("unknown codec \(codecValue.serialized()) (expected \"lz4\" or \"zstd\")")
        }
        var planes = false
        if let p = entry["planes"] {
            guard let b = p.boolValue else { throw bad("planes is \(p.serialized()), expected true or false") }
            planes = b
        }
        let elementSize = t.encoding.plainDType?.size
        if planes, !(elementSize == 2 || elementSize == 4) {
            throw bad("byte planes apply to plain dtypes of 2 or 4 bytes, not to \(t.encoding.name)")
        }
        func int(_ k: String) throws -> Int {
            guard let v = entry[k] else { throw bad("field '\(k)' is missing") }
            guard let i = v.intValue else { throw bad("\(k) is \(v.serialized()), expected a non-negative integer below 2^63") }
            return i
        }
        let chunk = try int("chunk_bytes")
        if let p = t.paged {
            guard chunk > 0, chunk % p.blockSize == 0, chunk <= max(maxChunkBytes, p.blockSize) else {
                throw bad("chunk_bytes \(chunk) must be a positive multiple of the \(p.blockSize)-byte page block, at most \(max(maxChunkBytes, p.blockSize))")
            }
        } else {
            let size = elementSize ?? 1
            guard chunk > 0, chunk % size == 0, chunk <= maxChunkBytes else {
                throw bad("chunk_bytes \(chunk) must be a positive multiple of the \(size)-byte element, at most \(maxChunkBytes)")
            }
        }
        let stored = try int("stored_nbytes")
        let n = t.nbytes == 0 ? 0 : (t.nbytes - 1) / chunk + 1
        let (index, o1) = n.multipliedReportingOverflow(by: ChunkIndex.entrySize)
        let (most, o2) = t.nbytes.addingReportingOverflow(index)
        guard !o1, !o2, stored >= index + n, stored <= most else {
            throw bad("stored_nbytes \(stored) does not fit \(n) chunks of at most \(chunk) bytes and their \(ChunkIndex.entrySize)-byte index entries")
        }
        guard let h = entry["index_hash"]?.stringValue, h.utf8.count == 16, h.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              let hash = UInt64(h, radix: 16) else {
            throw bad("index_hash must be 16 lower-case hex digits")
        }
        return TensorCompression(codec: codec, planes: planes, chunkBytes: chunk, storedBytes: stored, indexHash: hash)
    }
}

extension TensorCompression {
    /// The tensor-entry members in canonical order (after `source_dtype`).
    var headerMembers: [(String, JSONValue)] {
        var m: [(String, JSONValue)] = [("codec", .string(codec.rawValue))]
        if planes { m.append(("planes", .bool(true))) }
        m += [("chunk_bytes", .int(chunkBytes)), ("stored_nbytes", .int(storedBytes)), ("index_hash", .string(hex(indexHash)))]
        return m
    }
}
