/// Fixed constants of the Folio file format, version 1 (Formats/FOLIO.md).
public enum FolioFormat {
    /// Bytes 0..<8 of every Folio file.
    public static let magic: [UInt8] = [0x89, 0x46, 0x4F, 0x4C, 0x49, 0x4F, 0x0D, 0x0A]  // "\x89FOLIO\r\n"
    /// Last 8 bytes of every Folio file.
    public static let endMagic: [UInt8] = Array("FOLIOEND".utf8)
    public static let version: UInt32 = 1
    /// The version of files that hold compressed tensors (section 15 of the spec).
    public static let compressedVersion: UInt32 = 2
    /// The version of files with tensors in the records layout (section 7.5 of the spec).
    public static let recordsVersion: UInt32 = 3
    /// Versions this reader implements.
    public static let readableVersions: [UInt32] = [1, 2, 3]

    /// The lowest version that can hold these tensors: 3 with records, 2 with compression, else 1.
    public static func version(for tensors: [TensorInfo]) -> UInt32 {
        if tensors.contains(where: { $0.paged?.isRecords == true }) { return recordsVersion }
        return tensors.contains(where: { $0.compression != nil }) ? compressedVersion : version
    }
    /// magic (8) + version (4) + flags (4) + header length (8) + header hash (8).
    public static let preambleSize = 32
    /// Hash of the chunk-hash table (8) + end magic (8).
    public static let footerSize = 16
    public static let maxHeaderLength = 64 << 20
    public static let maxTensors = 1 << 20
    public static let maxRank = 32
    public static let maxNameBytes = 4096
    public static let denseAlignment = 64
    public static let defaultPageSize = 4096
    public static let minPageSize = 4096
    /// The header (which pads data to a page boundary) is capped at 64 MiB, so larger pages
    /// could never be written.
    public static let maxPageSize = 1 << 26
    /// Cap on each dimension and on the element count of one tensor (2^59).
    public static let maxElements = 1 << 59
    public static let maxFiles = 1 << 16
    public static let defaultChunkSize = 1 << 20
    public static let minChunkSize = 4096
    public static let maxChunkSize = 1 << 20
}

/// Where a paged table's rows live: each row record inside one page, rows never straddling
/// a page boundary; a record larger than a page starts on a page boundary.
public struct PagedLayout: Sendable, Hashable {
    /// Bytes of one row's record (values and its scales).
    public let recordSize: Int
    /// Distance between consecutive rows of a page (a multiple of the page size when the
    /// record is larger than a page).
    public let rowStride: Int
    public let rowsPerPage: Int
    /// Distance between consecutive pages of rows.
    public let blockSize: Int
    /// The records layout (section 7.5): records back to back at a stride of
    /// align_up(recordSize, 64), no pages; `rowsPerPage` is 1 and `blockSize` the stride.
    public let isRecords: Bool

    /// Where a tensor of this layout starts in the data region: a page boundary for paged
    /// tables, 64 bytes for records (FOLIO.md 7.4).
    public func startAlignment(pageSize: Int) -> Int { isRecords ? FolioFormat.denseAlignment : pageSize }

    /// The records layout for records of `recordSize` bytes, or nil on overflow.
    public init?(recordsOf recordSize: Int) {
        guard recordSize > 0, let s = alignUp(recordSize, FolioFormat.denseAlignment) else { return nil }
        self.recordSize = recordSize
        rowStride = s
        rowsPerPage = 1
        blockSize = s
        isRecords = true
    }

    /// The canonical layout for records of `recordSize` bytes aligned to `alignment`, or nil
    /// on overflow.
    public init?(recordSize: Int, alignment: Int, pageSize: Int) {
        guard recordSize > 0, let aligned = alignUp(recordSize, alignment) else { return nil }
        self.recordSize = recordSize
        isRecords = false
        if aligned <= pageSize {
            rowStride = aligned
            rowsPerPage = pageSize / aligned
            blockSize = pageSize
        } else {
            guard let big = alignUp(recordSize, pageSize) else { return nil }
            rowStride = big
            rowsPerPage = 1
            blockSize = big
        }
    }

    /// Byte offset of row `r` from the table start. Callers check `r` against the row count;
    /// the arithmetic cannot overflow for rows of a validated table.
    @inline(__always)
    public func rowOffset(_ r: Int) -> Int {
        (r / rowsPerPage) &* blockSize &+ (r % rowsPerPage) &* rowStride
    }

    /// Bytes from the table start to the end of its last record, or nil on overflow.
    public func byteCount(rows: Int) -> Int? {
        guard rows > 0 else { return 0 }
        let last = rows - 1
        let (a, o1) = (last / rowsPerPage).multipliedReportingOverflow(by: blockSize)
        let (b, o2) = (last % rowsPerPage).multipliedReportingOverflow(by: rowStride)
        guard !o1, !o2 else { return nil }
        let (c, o3) = a.addingReportingOverflow(b)
        let (d, o4) = c.addingReportingOverflow(recordSize)
        return o3 || o4 ? nil : d
    }
}

@inline(__always)
func alignUp(_ v: Int, _ a: Int) -> Int? {
    let (s, o) = v.addingReportingOverflow(a - 1)
    return o ? nil : s / a * a
}

/// One tensor of a Folio file, valid by construction.
public struct TensorInfo: Sendable, Hashable {
    public let name: String
    public let encoding: Encoding
    public let shape: [Int]
    /// Offset from the start of the data region.
    public let offset: Int
    public let nbytes: Int
    /// Set for tables in the paged layout.
    public let paged: PagedLayout?
    /// The dtype the values had before quantization or casting, when recorded.
    public let sourceDType: DType?
    /// Set when the tensor is stored compressed (format version 2); `offset` then locates
    /// the stored chunks and `nbytes` stays the logical size of the layout.
    public var compression: TensorCompression? = nil

    /// Values per row: the last dimension (1 for a 0-d tensor).
    public var rowWidth: Int { shape.last ?? 1 }
    /// Rows: the product of all dimensions but the last (1 for 0-d and 1-d tensors).
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A file carried inside a Folio file (a model's config.json, its tokenizer files).
public struct EmbeddedFile: Sendable, Hashable {
    /// A relative path with "/" separators, such as `1_Pooling/config.json`.
    public let name: String
    public let offset: Int
    public let nbytes: Int

    /// Why `name` is not a safe relative path (absolute, `..`, empty parts, backslashes,
    /// control characters), or nil.
    public static func pathProblem(_ name: String) -> String? {
        if name.hasPrefix("/") { return "is an absolute path" }
        if name.contains("\\") { return "contains a backslash" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "contains a control character" }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) { return "has an empty, '.' or '..' path component" }
        return nil
    }
}

/// The validated header of a Folio file.
public struct FolioHeader: Sendable {
    public let version: UInt32
    public let pageSize: Int
    public let chunkSize: Int
    /// Absolute offset of the data region (a multiple of the page size).
    public let dataOffset: Int
    public let dataSize: Int
    /// The `__metadata__` map, in file order; nil when the file has none.
    public let metadata: [(String, String)]?
    public let tensors: [TensorInfo]
    public let files: [EmbeddedFile]
    /// XXH3-64 of the header bytes, as stored in the preamble.
    public let headerHash: UInt64

    public var chunkCount: Int { dataSize == 0 ? 0 : (dataSize - 1) / chunkSize + 1 }
    /// Absolute offset of the chunk-hash table.
    public var trailerOffset: Int { dataOffset + dataSize }
    public var fileSize: Int { trailerOffset + chunkCount * 8 + FolioFormat.footerSize }

    public func metadataValue(_ key: String) -> String? {
        metadata?.first { $0.0 == key }?.1
    }
}
