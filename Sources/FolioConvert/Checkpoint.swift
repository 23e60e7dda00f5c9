import Folio

/// A tensor of some checkpoint, readable in a stream: raw bytes for bit-exact copies, or
/// rows dequantized to float32. Each source format supplies a `TensorStorage`.
public struct SourceTensor: Sendable {
    public let name: String
    /// The stored encoding (a plain dtype for foreign formats).
    public let encoding: Encoding
    public let shape: [Int]
    /// Where it came from, for messages.
    public let file: String
    public let storage: any TensorStorage

    public init(name: String, encoding: Encoding, shape: [Int], file: String, storage: any TensorStorage) {
        self.name = name
        self.encoding = encoding
        self.shape = shape
        self.file = file
        self.storage = storage
    }

    public var rowWidth: Int { shape.last ?? 1 }
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var elementCount: Int { shape.reduce(1, *) }

    /// Bytes as stored in the source.
    public var storedBytes: Int { storage.storedBytes }
    /// Bytes of one row record when the source stores rows as records; nil for dense tensors.
    public var recordSize: Int? { storage.recordSize }
    /// True when the source is a paged Folio table.
    public var isPaged: Bool { storage.isPaged }
    /// True when the source is a Folio tensor in the records layout.
    public var isRecords: Bool { storage.isRecords }
    /// The plain dtype of the source's dense bytes (nil for quantized or paged sources).
    public var denseDType: DType? { storage.denseDType }
    /// The dtype the values had before the source quantized them, when it says.
    public var sourceDTypeHint: DType? { storage.sourceDType }
    /// The stored type as the source format names it ("Q4_K", "BF16", "int8/g32").
    public var storedType: String { storage.storedTypeName ?? encoding.name }

    /// Streams the dense bytes in pieces of about `piece` bytes (at least one call, possibly
    /// empty), releasing pages behind.
    public func forEachDensePiece(piece: Int = 16 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard denseDType != nil else {
            throw ConvertError.unsupported(file: file, reason: "tensor '\(name)' holds \(encoding.name) records, not dense values")
        }
        try storage.forEachDensePiece(piece: piece, body)
    }

    /// Calls `body` with the dense bytes of rows `start..<start+count`.
    public func forDenseRows(start: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let d = denseDType else { throw ConvertError.unsupported(file: file, reason: "tensor '\(name)' is not dense") }
        let rowBytes = rowWidth * d.size
        try storage.withDenseBytes(range: (start * rowBytes)..<((start + count) * rowBytes), body)
    }

    /// Reads rows `start..<start+count` as float32 (dequantized when needed).
    public func readRows(start: Int, count: Int, into out: UnsafeMutablePointer<Float>) throws {
        try storage.readRows(start: start, count: count, width: rowWidth, encoding: encoding, into: out)
    }

    /// Copies raw row records `start..<start+count` into `out`, packed back to back.
    public func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        guard recordSize != nil else { throw ConvertError.unsupported(file: file, reason: "tensor '\(name)' has no row records") }
        try storage.copyRecords(start: start, count: count, into: out)
    }

    /// Drops cached pages of the whole tensor from this process.
    public func release() { storage.release() }
}

/// A checkpoint opened for reading: its tensors, `__metadata__` and carried files.
public struct Checkpoint: Sendable {
    public enum Format: String, Sendable { case safetensors, folio, folioIndex = "folio-index", huggingFace = "huggingface", gguf, numpy, pytorch }

    public let path: String
    public let format: Format
    public let tensors: [SourceTensor]
    public let metadata: [(String, String)]?
    /// Files carried along (config.json, tokenizer files): name and bytes.
    public let files: [(name: String, bytes: [UInt8])]
    /// What the conversion should tell the user (a GGUF tokenizer that could not be carried).
    public var notes: [String] = []
    /// The open reader behind a Folio, index or safetensors checkpoint, so that a caller
    /// needing more than the tensors does not open it again (for a remote file, again
    /// means more requests).
    public var opened: Opened?

    public enum Opened: Sendable {
        case folio(FolioFile)
        case index(FolioIndex)
        case safetensors(SafetensorsFile)
    }

    /// Opens a `.safetensors`, `.folio` or `.gguf` file or a Hugging Face model folder.
    /// `keepQuantized` presents GGUF blocks that a Folio scheme holds without loss (Q8_0,
    /// Q4_0, Q4_1) as that scheme instead of dequantizing them. `carryTokenizer` builds the
    /// tokenizer files of a GGUF from its `tokenizer.ggml.*` keys (about a second for a
    /// 128k vocabulary, so only a conversion asks for it; inspecting does not).
    public static func open(_ path: String, keepQuantized: Bool = false, carryTokenizer: Bool = false) throws -> Checkpoint {
        if RemoteLocation.isURL(path) {
            // Over HTTP: Folio files, their sharded indexes and safetensors files.
            let name = RemoteLocation.display(path)
            if name.hasSuffix(".folio") { return try openFolio(path) }
            if name.hasSuffix(FolioSharding.indexSuffix) { return try openFolioIndex(path) }
            if name.hasSuffix(".safetensors") { return try openSafetensors(path) }
            throw ConvertError.unsupported(file: name, reason: "remote reads take a .folio, .folio.index.json or .safetensors URL; download other formats first")
        }
        if FileSystem.isDirectory(path) { return try openFolder(path) }
        guard FileSystem.exists(path) else { throw ConvertError.badFile(file: path, reason: "no such file or folder") }
        if path.hasSuffix(".folio") { return try openFolio(path) }
        if path.hasSuffix(FolioSharding.indexSuffix) { return try openFolioIndex(path) }
        if path.hasSuffix(".safetensors.index.json") { return try openFolder(FolioSharding.directory(of: path), index: path) }
        if path.hasSuffix(".safetensors") { return try openSafetensors(path) }
        if path.hasSuffix(".gguf") { return try openGGUF(path, keepQuantized: keepQuantized, carryTokenizer: carryTokenizer) }
        if path.hasSuffix(".npy") || path.hasSuffix(".npz") { return try openNumPy(path) }
        if path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") { return try openPyTorch(path) }
        throw ConvertError.unsupported(file: path, reason: "unknown input format (expected .safetensors, .folio, .folio.index.json, .gguf, .bin/.pt/.pth, .npy/.npz or a Hugging Face model folder)")
    }

    static func openSafetensors(_ path: String) throws -> Checkpoint {
        let f = try SafetensorsFile(path: path)
        let (kept, metadata) = try KeptQuantized.read(f.header.metadata, file: f.path)
        let tensors = try f.header.entries.map { e in
            if let k = kept[e.name] { return try k.source(e, file: f) }
            return SourceTensor(name: e.name, encoding: .plain(e.dtype), shape: e.shape, file: f.path, storage: SafetensorsStorage(file: f, entry: e))
        }
        var c = Checkpoint(path: f.path, format: .safetensors, tensors: tensors, metadata: metadata, files: [])
        c.opened = .safetensors(f)
        return c
    }

    static func openFolio(_ path: String) throws -> Checkpoint {
        let f = try FolioFile(path: path)
        let tensors = f.tensors.map { SourceTensor(name: $0.name, encoding: $0.encoding, shape: $0.shape, file: f.path, storage: FolioStorage(file: f, tensor: $0)) }
        let files = try f.header.files.map { (name: $0.name, bytes: try f.withFile(named: $0.name) { Array($0) } ?? []) }
        var c = Checkpoint(path: f.path, format: .folio, tensors: tensors, metadata: f.header.metadata, files: files)
        c.opened = .folio(f)
        return c
    }
}

/// Quantized tensors exported with `--keep-quantized`: each is stored as a U8 tensor of shape
/// [rows, record bytes] (the row records without page padding) under its own name, and the
/// `__metadata__` key `folio.quantized.NAME` holds `{"scheme": ..., "shape": [...]}`. Folio
/// reads such files back as the quantized tensors they were.
enum KeptQuantized {
    static let prefix = "folio.quantized."

    struct Entry {
        let scheme: Encoding
        let shape: [Int]
        let sourceDType: DType?

        func source(_ e: SafetensorsEntry, file f: SafetensorsFile) throws -> SourceTensor {
            let width = shape.last ?? 1
            let rows = shape.dropLast().reduce(1, *)
            guard let rec = scheme.recordSize(width: width), scheme.rowProblem(width: width) == nil,
                  e.dtype == .u8, e.shape == [rows, rec] else {
                throw ConvertError.badTensor(file: f.path, tensor: e.name, reason: "holds \(e.dtype.rawValue) \(e.shape), but its metadata declares \(scheme.name) \(shape)")
            }
            return SourceTensor(name: e.name, encoding: scheme, shape: shape, file: f.path, storage: SafetensorsRecordsStorage(file: f, entry: e, recordSize: rec, sourceDType: sourceDType))
        }
    }

    static func key(_ name: String) -> String { prefix + name }

    static func value(scheme: Encoding, shape: [Int], sourceDType: DType?) -> String {
        var m: [(String, JSONValue)] = [("scheme", .string(scheme.name)), ("shape", .array(shape.map { .int($0) }))]
        if let s = sourceDType { m.append(("source_dtype", .string(s.rawValue))) }
        return JSONValue.object(m).serialized()
    }

    /// Splits the folio keys out of a safetensors metadata map.
    static func read(_ metadata: [(String, String)]?, file: String) throws -> ([String: Entry], [(String, String)]?) {
        guard let metadata else { return ([:], nil) }
        var kept: [String: Entry] = [:]
        var rest: [(String, String)] = []
        for (k, v) in metadata {
            guard k.hasPrefix(prefix) else { rest.append((k, v)); continue }
            let name = String(k.dropFirst(prefix.count))
            guard let json = try? JSONParser.parse(v), let sn = json["scheme"]?.stringValue, let scheme = Encoding(name: sn), scheme.isQuantized,
                  let dims = json["shape"]?.arrayValue, !dims.isEmpty, dims.count <= FolioFormat.maxRank else {
                throw ConvertError.badField(file: file, field: "__metadata__.\(k)", reason: "expected {\"scheme\": a quantization scheme, \"shape\": [dims]}")
            }
            var shape: [Int] = []
            var count = 1
            for d in dims {
                guard let v = d.intValue, v <= FolioFormat.maxElements else {
                    throw ConvertError.badField(file: file, field: "__metadata__.\(k)", reason: "shape entry \(d.serialized()) is invalid")
                }
                let (p, o) = count.multipliedReportingOverflow(by: v)
                guard !o, p <= FolioFormat.maxElements else { throw ConvertError.badField(file: file, field: "__metadata__.\(k)", reason: "shape overflows") }
                count = p
                shape.append(v)
            }
            let source = json["source_dtype"]?.stringValue.flatMap { DType(rawValue: $0) }
            kept[name] = Entry(scheme: scheme, shape: shape, sourceDType: source)
        }
        return (kept, rest.isEmpty && !kept.isEmpty ? nil : rest)
    }
}
