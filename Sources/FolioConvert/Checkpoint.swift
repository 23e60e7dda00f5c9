import Folio

/// A tensor of some checkpoint, readable in a stream: raw bytes for bit-exact copies, or
/// rows dequantized to float32.
public struct SourceTensor: Sendable {
    public let name: String
    /// The stored encoding (a plain dtype for foreign formats).
    public let encoding: Encoding
    public let shape: [Int]
    /// Where it came from, for messages.
    public let file: String
    let backing: Backing

    enum Backing: Sendable {
        case safetensors(SafetensorsFile, SafetensorsEntry)
        case folio(FolioFile, TensorInfo)
    }

    public var rowWidth: Int { shape.last ?? 1 }
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var elementCount: Int { shape.reduce(1, *) }

    /// Bytes as stored in the source.
    public var storedBytes: Int {
        switch backing {
        case let .safetensors(_, e): return e.nbytes
        case let .folio(_, t): return t.nbytes
        }
    }

    /// True when the source is paged (its rows can be copied record by record).
    public var sourcePaged: PagedLayout? {
        if case let .folio(_, t) = backing { return t.paged }
        return nil
    }

    /// The plain dtype of the source's dense bytes (nil for quantized or paged sources).
    public var denseDType: DType? {
        switch backing {
        case let .safetensors(_, e): return e.dtype
        case let .folio(_, t): return t.paged == nil ? t.encoding.plainDType : nil
        }
    }

    /// Streams the dense bytes in pieces of about `piece` bytes, releasing pages behind.
    public func forEachDensePiece(piece: Int = 16 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch backing {
        case let .safetensors(f, e):
            var at = 0
            repeat {
                let n = min(piece, e.nbytes - at)
                try f.withBytes(of: e, range: at..<(at + n)) { try body($0) }
                f.release(e, range: at..<(at + n))
                at += n
            } while at < e.nbytes
        case let .folio(f, t):
            precondition(t.paged == nil)
            var at = 0
            repeat {
                let n = min(piece, t.nbytes - at)
                try f.withBytes(of: t) { all in try body(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)])) }
                f.releaseBytes(offset: t.offset + at, length: n)
                at += n
            } while at < t.nbytes
        }
    }

    /// Reads rows `start..<start+count` as float32 (dequantized when needed).
    public func readRows(start: Int, count: Int, into out: UnsafeMutablePointer<Float>) throws {
        switch backing {
        case let .safetensors(f, e):
            let w = rowWidth
            let lo = start * w * e.dtype.size, hi = (start + count) * w * e.dtype.size
            f.withBytes(of: e, range: lo..<hi) { b in
                if let base = b.baseAddress { e.dtype.toFloat(base, count: count * w, into: out) }
            }
            f.release(e, range: lo..<hi)
        case let .folio(f, t):
            try f.readRows(t, start: start, count: count, into: out)
            f.releaseRows(t, start: start, count: count)
        }
    }

    /// Copies raw row records `start..<start+count` of a paged Folio source into `out`
    /// (records packed back to back).
    public func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        guard case let .folio(f, t) = backing, let p = t.paged else {
            throw ConvertError.unsupported(file: file, reason: "tensor '\(name)' has no row records")
        }
        f.withBytes(of: t) { all in
            for i in 0..<count {
                (out + i * p.recordSize).copyMemory(from: all.baseAddress! + p.rowOffset(start + i), byteCount: p.recordSize)
            }
        }
    }

    /// Drops cached pages of the whole tensor from this process.
    public func release() {
        switch backing {
        case let .safetensors(f, e): f.release(e, range: 0..<e.nbytes)
        case let .folio(f, t): f.release(t)
        }
    }
}

/// A checkpoint opened for reading: its tensors, `__metadata__` and carried files.
public struct Checkpoint: Sendable {
    public enum Format: String, Sendable { case safetensors, folio, huggingFace = "huggingface" }

    public let path: String
    public let format: Format
    public let tensors: [SourceTensor]
    public let metadata: [(String, String)]?
    /// Files carried along (config.json, tokenizer files): name and bytes.
    public let files: [(name: String, bytes: [UInt8])]

    /// Opens a `.safetensors` file, a `.folio` file or a Hugging Face model folder.
    public static func open(_ path: String) throws -> Checkpoint {
        if FileSystem.isDirectory(path) { return try openFolder(path) }
        guard FileSystem.exists(path) else { throw ConvertError.badFile(file: path, reason: "no such file or folder") }
        if path.hasSuffix(".folio") { return try openFolio(path) }
        if path.hasSuffix(".safetensors") { return try openSafetensors(path) }
        throw ConvertError.unsupported(file: path, reason: "unknown input format (expected .safetensors, .folio or a Hugging Face model folder)")
    }

    static func openSafetensors(_ path: String) throws -> Checkpoint {
        let f = try SafetensorsFile(path: path)
        let tensors = f.header.entries.map {
            SourceTensor(name: $0.name, encoding: .plain($0.dtype), shape: $0.shape, file: path, backing: .safetensors(f, $0))
        }
        return Checkpoint(path: path, format: .safetensors, tensors: tensors, metadata: f.header.metadata, files: [])
    }

    static func openFolio(_ path: String) throws -> Checkpoint {
        let f = try FolioFile(path: path)
        let tensors = f.tensors.map { SourceTensor(name: $0.name, encoding: $0.encoding, shape: $0.shape, file: path, backing: .folio(f, $0)) }
        let files = f.header.files.map { (name: $0.name, bytes: f.fileBytes(named: $0.name) ?? []) }
        return Checkpoint(path: path, format: .folio, tensors: tensors, metadata: f.header.metadata, files: files)
    }
}
