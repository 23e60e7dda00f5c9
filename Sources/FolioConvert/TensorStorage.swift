import Folio

/// Where a source tensor's bytes live. Each input format implements this; the converter,
/// inspector and diff only see `SourceTensor`.
public protocol TensorStorage: Sendable {
    /// Bytes as stored in the source file.
    var storedBytes: Int { get }
    /// Bytes of one row record when rows are stored as records (paged Folio tables, kept
    /// quantized tensors); nil for dense tensors.
    var recordSize: Int? { get }
    /// True for paged Folio tables (and Folio tensors in the records layout).
    var isPaged: Bool { get }
    /// True for Folio tensors in the records layout (records back to back, version 3).
    var isRecords: Bool { get }
    /// The plain dtype of the dense bytes, or nil when the tensor is not dense.
    var denseDType: DType? { get }
    /// The dtype before quantization, when the source records it.
    var sourceDType: DType? { get }
    /// The source format's own name for the stored type when it differs from the encoding
    /// presented (for example "Q4_K" for a GGUF block type read as F32).
    var storedTypeName: String? { get }

    /// Streams the dense bytes in order, in pieces of about `piece` bytes: at least one call
    /// (an empty piece for an empty tensor).
    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Calls `body` with a byte range of the dense bytes.
    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Rows `start..<start+count` (rows of `width` values) as float32.
    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws
    /// Raw row records, packed.
    func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws
    /// Lets the kernel drop this process's cached pages of the tensor.
    func release()
    /// True when `readRows` may be called from several threads at once (memory-mapped
    /// sources); false for streamed ones.
    var supportsConcurrentReads: Bool { get }
}

/// Streams `total` bytes in pieces: `read` hands each range to `body`, `release` drops its
/// pages afterwards. At least one call, an empty piece for an empty tensor.
func streamPieces(total: Int, piece: Int, read: (Range<Int>, (UnsafeRawBufferPointer) throws -> Void) throws -> Void,
                  release: (Range<Int>) -> Void, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    var at = 0
    repeat {
        let r = at..<(at + min(piece, total - at))
        try withoutActuallyEscaping(body) { try read(r, $0) }
        release(r)
        at = r.upperBound
    } while at < total
}

extension TensorStorage {
    public var recordSize: Int? { nil }
    public var isPaged: Bool { false }
    public var isRecords: Bool { false }
    public var sourceDType: DType? { nil }
    public var supportsConcurrentReads: Bool { false }
    public var storedTypeName: String? { nil }
    public func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        throw ConvertError.unsupported(file: "", reason: "this tensor has no row records")
    }
    public func release() {}
}

/// A tensor of a memory-mapped safetensors file.
struct SafetensorsStorage: TensorStorage {
    let file: SafetensorsFile
    let entry: SafetensorsEntry
    var supportsConcurrentReads: Bool { true }

    var storedBytes: Int { entry.nbytes }
    var denseDType: DType? { entry.dtype }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try streamPieces(total: entry.nbytes, piece: piece, read: { r, b in try file.withBytes(of: entry, range: r) { try b($0) } },
                         release: { file.release(entry, range: $0) }, body)
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try file.withBytes(of: entry, range: range) { try body($0) }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let size = entry.dtype.size
        let range = (start * width * size)..<((start + count) * width * size)
        try file.withBytes(of: entry, range: range) { b in
            if let base = b.baseAddress { entry.dtype.toFloat(base, count: count * width, into: out) }
        }
        file.release(entry, range: range)
    }

    func release() { file.release(entry, range: 0..<entry.nbytes) }
}

/// Quantized row records kept in a safetensors file as a U8 [rows, record] tensor.
struct SafetensorsRecordsStorage: TensorStorage {
    let file: SafetensorsFile
    let entry: SafetensorsEntry
    let recordSize: Int?
    let sourceDType: DType?
    var supportsConcurrentReads: Bool { true }

    var storedBytes: Int { entry.nbytes }
    var denseDType: DType? { nil }
    private var rec: Int { recordSize ?? 1 }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        throw ConvertError.unsupported(file: file.path, reason: "tensor '\(entry.name)' holds quantized records, not dense values")
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try forEachDensePiece(piece: 0, body)
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let range = (start * rec)..<((start + count) * rec)
        try file.withBytes(of: entry, range: range) { b in
            for i in 0..<count { RowCodec.decode(encoding, record: b.baseAddress! + i * rec, width: width, into: out + i * width) }
        }
        file.release(entry, range: range)
    }

    func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        try file.withBytes(of: entry, range: (start * rec)..<((start + count) * rec)) { b in
            if count > 0 { out.copyMemory(from: b.baseAddress!, byteCount: count * rec) }
        }
    }

    func release() { file.release(entry, range: 0..<entry.nbytes) }
}

/// A tensor of an open Folio file.
struct FolioStorage: TensorStorage {
    let file: FolioFile
    let tensor: TensorInfo
    var supportsConcurrentReads: Bool { true }

    var storedBytes: Int { tensor.nbytes }
    var recordSize: Int? { tensor.paged?.recordSize }
    var isPaged: Bool { tensor.paged != nil }
    var isRecords: Bool { tensor.paged?.isRecords == true }
    var denseDType: DType? { tensor.paged == nil ? tensor.encoding.plainDType : nil }
    var sourceDType: DType? { tensor.sourceDType }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var at = 0
        repeat {
            let n = min(piece, tensor.nbytes - at)
            try file.withLogicalBytes(of: tensor, range: at..<(at + n)) { try body($0) }
            if !tensor.isCompressed { file.releaseBytes(offset: tensor.offset + at, length: n) }
            at += n
        } while at < tensor.nbytes
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try file.withLogicalBytes(of: tensor, range: range) { try body($0) }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        try file.readRows(tensor, start: start, count: count, into: out)
        file.releaseRows(tensor, start: start, count: count)
    }

    func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        guard let p = tensor.paged else { return }
        for i in 0..<count {
            let at = p.rowOffset(start + i)
            try file.withLogicalBytes(of: tensor, range: at..<(at + p.recordSize)) { (out + i * p.recordSize).copyMemory(from: $0.baseAddress!, byteCount: p.recordSize) }
        }
    }

    func release() { file.release(tensor) }
}
