import Folio
import FolioTokenizers

/// A metadata value of a GGUF file.
public indirect enum GGUFValue: Sendable {
    case uint(UInt64, bits: Int)
    case int(Int64, bits: Int)
    case float(Double, bits: Int)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as JSON (integers exact, floats as decimal text).
    public var json: JSONValue {
        switch self {
        case let .uint(v, _): return .number(String(v))
        case let .int(v, _): return .number(String(v))
        case let .float(v, _): return .double(v)
        case let .bool(v): return .bool(v)
        case let .string(s): return .string(s)
        case let .array(a): return .array(a.map(\.json))
        }
    }

    public var intValue: Int? {
        switch self {
        case let .uint(v, _): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int(v, _): return Int(v)
        default: return nil
        }
    }
}

/// One tensor of a GGUF file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml order: `dims[0]` is the contiguous dimension.
    public let dims: [Int]
    public let type: GGMLType
    /// Offset from the start of the data section.
    public let offset: Int
    public let nbytes: Int
    /// Folio/numpy order (reversed ggml dims): the last dimension is the row.
    public var shape: [Int] { dims.reversed() }
}

/// A validated GGUF header (versions 2 and 3; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
/// magic "GGUF", u32 version, u64 tensor count, u64 key-value count, the key-value pairs,
/// the tensor infos, padding to `general.alignment` (default 32), then the data.
public struct GGUFHeader: Sendable {
    public static let maxTensors = 1 << 20
    public static let maxKeyValues = 1 << 20
    public static let maxStringBytes = 1 << 30
    public static let maxArrayDepth = 8

    public let version: UInt32
    public let metadata: [(String, GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataStart: Int

    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> GGUFHeader {
        var r = Reader(bytes: bytes, file: file)
        guard bytes.count >= 4, bytes[0] == 0x47, bytes[1] == 0x47, bytes[2] == 0x55, bytes[3] == 0x46 else {
            throw ConvertError.badFile(file: file, reason: "not a GGUF file (bad magic)")
        }
        r.pos = 4
        let version = try r.u32("version")
        guard version == 2 || version == 3 else {
            throw ConvertError.unsupported(file: file, reason: "GGUF version \(version) is not supported (versions 2 and 3 are)")
        }
        let tensorCount = try r.u64("tensor_count")
        guard tensorCount <= UInt64(maxTensors) else {
            throw ConvertError.badField(file: file, field: "tensor_count", reason: "\(tensorCount) exceeds the limit of \(maxTensors)")
        }
        let kvCount = try r.u64("kv_count")
        guard kvCount <= UInt64(maxKeyValues) else {
            throw ConvertError.badField(file: file, field: "kv_count", reason: "\(kvCount) exceeds the limit of \(maxKeyValues)")
        }
        var metadata: [(String, GGUFValue)] = []
        var keys = Set<String>()
        for i in 0..<Int(kvCount) {
            let key = try r.string("key \(i)")
            guard keys.insert(key).inserted else { throw ConvertError.badField(file: file, field: key, reason: "duplicate key") }
            let type = try r.u32(key)
            metadata.append((key, try r.value(type: type, field: key, depth: 0)))
        }
        var alignment = 32
        if let a = metadata.first(where: { $0.0 == "general.alignment" })?.1 {
            guard case let .uint(v, 32) = a, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw ConvertError.badField(file: file, field: "general.alignment", reason: "must be a u32 power of two up to 2^20")
            }
            alignment = Int(v)
        }
        var infos: [GGUFTensorInfo] = []
        var names = Set<String>()
        for i in 0..<Int(tensorCount) {
            let name = try r.string("tensor \(i) name")
            func bad(_ m: String) -> ConvertError { .badTensor(file: file, tensor: name, reason: m) }
            // ggml's GGML_MAX_NAME is 64 bytes including the terminating zero.
            guard name.utf8.count < 64 else { throw bad("name is \(name.utf8.count) bytes; ggml allows at most 63") }
            guard names.insert(name).inserted else { throw bad("duplicate tensor name") }
            let nd = try r.u32("\(name).n_dims")
            guard nd >= 1, nd <= 4 else { throw bad("n_dims \(nd) is outside 1...4") }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<nd {
                let d = try r.u64("\(name).dims")
                guard d <= UInt64(FolioFormat.maxElements) else { throw bad("dimension \(d) is too large (overflow)") }
                let (p, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, p <= FolioFormat.maxElements else { throw bad("dimensions overflow") }
                count = p
                dims.append(Int(d))
            }
            let rawType = try r.u32("\(name).type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw bad("ggml type \(GGMLType.named(rawType)) is not supported (supported: \(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw bad("row length \(dims[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            let offset = try r.u64("\(name).offset")
            guard offset <= UInt64(Int.max / 2) else { throw bad("offset \(offset) is out of range") }
            guard Int(offset) % alignment == 0 else { throw bad("offset \(offset) is not a multiple of the alignment \(alignment)") }
            let nbytes = count / type.blockSize * type.typeSize
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset), nbytes: nbytes))
        }
        let dataStart = (r.pos + alignment - 1) / alignment * alignment
        guard dataStart <= bytes.count else {
            throw ConvertError.badFile(file: file, reason: "truncated: the data section would start at byte \(dataStart), the file has \(bytes.count)")
        }
        let dataSize = bytes.count - dataStart
        // As ggml requires: tensors are stored in info order, each at the aligned end of the previous one.
        var expectedOffset = 0
        for t in infos {
            guard t.offset == expectedOffset else {
                throw ConvertError.badTensor(file: file, tensor: t.name, reason: "offset \(t.offset), expected \(expectedOffset) (tensors follow one another in info order, each aligned to \(alignment))")
            }
            let (e, o) = t.offset.addingReportingOverflow(t.nbytes)
            guard !o, e <= dataSize else { break }
            expectedOffset = (e + alignment - 1) / alignment * alignment
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        var end = 0
        var previous = ""
        for t in sorted {
            let (e, o) = t.offset.addingReportingOverflow(t.nbytes)
            guard !o, e <= dataSize else {
                throw ConvertError.badTensor(file: file, tensor: t.name, reason: "data \(t.offset)..<\(o ? "overflow" : String(e)) runs past the end of the file (data section holds \(dataSize) bytes): truncated or corrupt")
            }
            guard t.offset >= end || t.nbytes == 0 else {
                throw ConvertError.badTensor(file: file, tensor: t.name, reason: "data at \(t.offset) overlaps tensor '\(previous)' (which ends at \(end))")
            }
            if t.nbytes > 0 { end = e; previous = t.name }
        }
        return GGUFHeader(version: version, metadata: metadata, tensors: infos, alignment: alignment, dataStart: dataStart)
    }

    /// Bounds-checked little-endian reads.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let file: String
        var pos = 0

        mutating func need(_ n: Int, _ field: String) throws {
            guard n >= 0, n <= bytes.count - pos else {
                throw ConvertError.badField(file: file, field: field, reason: "truncated at byte \(pos) (needs \(n) more bytes, the file has \(bytes.count))")
            }
        }

        mutating func u8(_ f: String) throws -> UInt8 { try need(1, f); defer { pos += 1 }; return bytes[pos] }
        mutating func u16(_ f: String) throws -> UInt16 { try need(2, f); defer { pos += 2 }; return bytes.loadUnaligned(fromByteOffset: pos, as: UInt16.self).littleEndian }
        mutating func u32(_ f: String) throws -> UInt32 { try need(4, f); defer { pos += 4 }; return bytes.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian }
        mutating func u64(_ f: String) throws -> UInt64 { try need(8, f); defer { pos += 8 }; return bytes.loadUnaligned(fromByteOffset: pos, as: UInt64.self).littleEndian }

        mutating func string(_ f: String) throws -> String {
            let n = try u64(f)
            guard n <= UInt64(GGUFHeader.maxStringBytes) else { throw ConvertError.badField(file: file, field: f, reason: "string length \(n) is too large") }
            try need(Int(n), f)
            let raw = UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + Int(n))])
            pos += Int(n)
            guard let s = String(validating: raw, as: UTF8.self) else { throw ConvertError.badField(file: file, field: f, reason: "string is not valid UTF-8") }
            return s
        }

        mutating func value(type: UInt32, field f: String, depth: Int) throws -> GGUFValue {
            switch type {
            case 0: return .uint(UInt64(try u8(f)), bits: 8)
            case 1: return .int(Int64(Int8(bitPattern: try u8(f))), bits: 8)
            case 2: return .uint(UInt64(try u16(f)), bits: 16)
            case 3: return .int(Int64(Int16(bitPattern: try u16(f))), bits: 16)
            case 4: return .uint(UInt64(try u32(f)), bits: 32)
            case 5: return .int(Int64(Int32(bitPattern: try u32(f))), bits: 32)
            case 6: return .float(Double(Float(bitPattern: try u32(f))), bits: 32)
            case 7:
                let v = try u8(f)
                guard v <= 1 else { throw ConvertError.badField(file: file, field: f, reason: "bool value \(v) is not 0 or 1") }
                return .bool(v == 1)
            case 8: return .string(try string(f))
            case 9:
                guard depth < GGUFHeader.maxArrayDepth else { throw ConvertError.badField(file: file, field: f, reason: "arrays nested deeper than \(GGUFHeader.maxArrayDepth)") }
                let et = try u32(f)
                let n = try u64(f)
                // Every element takes at least one byte: a count beyond the remaining bytes is a lie.
                guard n <= UInt64(bytes.count - pos) else {
                    throw ConvertError.badField(file: file, field: f, reason: "array count \(n) exceeds the remaining \(bytes.count - pos) bytes")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(min(n, 1 << 16)))
                for _ in 0..<Int(n) { items.append(try value(type: et, field: f, depth: depth + 1)) }
                return .array(items)
            case 10: return .uint(try u64(f), bits: 64)
            case 11: return .int(Int64(bitPattern: try u64(f)), bits: 64)
            case 12: return .float(Double(bitPattern: try u64(f)), bits: 64)
            default: throw ConvertError.badField(file: file, field: f, reason: "unknown metadata value type \(type)")
            }
        }
    }
}

/// A memory-mapped, validated GGUF file.
public final class GGUFFile: Sendable {
    public let path: String
    public let header: GGUFHeader
    let map: MappedFile

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        header = try map.withBytes { try GGUFHeader.parse($0, file: path) }
    }

    public var fileSize: Int { map.size }

    func withBytes<R>(of t: GGUFTensorInfo, range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try map.withBytes(offset: header.dataStart + t.offset + range.lowerBound, count: range.count, body)
    }

    func release(_ t: GGUFTensorInfo, range: Range<Int>) {
        map.advise(.dontNeed, offset: header.dataStart + t.offset + range.lowerBound, length: range.count)
    }
}

/// A GGUF tensor as a source: plain types stream their bytes; block types dequantize
/// (encoding F32), or with `keepQuantized` present Q8_0/Q4_0/Q4_1 as Folio records.
struct GGUFStorage: TensorStorage {
    let file: GGUFFile
    let tensor: GGUFTensorInfo
    let keep: Encoding?
    var supportsConcurrentReads: Bool { true }

    var storedBytes: Int { tensor.nbytes }
    var denseDType: DType? { tensor.type.plainDType }
    var storedTypeName: String? { tensor.type.name }
    var recordSize: Int? { keep?.recordSize(width: tensor.dims[0]) }
    var rowBytes: Int { tensor.dims[0] / tensor.type.blockSize * tensor.type.typeSize }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try streamPieces(total: tensor.nbytes, piece: piece, read: { r, b in try file.withBytes(of: tensor, range: r) { try b($0) } },
                         release: { file.release(tensor, range: $0) }, body)
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try file.withBytes(of: tensor, range: range) { try body($0) }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let range = (start * rowBytes)..<((start + count) * rowBytes)
        let blocks = count * width / tensor.type.blockSize
        file.withBytes(of: tensor, range: range) { b in
            if let base = b.baseAddress { GGMLDequant.dequantize(tensor.type, base, blocks: blocks, into: out) }
        }
        file.release(tensor, range: range)
    }

    func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        guard let keep, let rec = keep.recordSize(width: tensor.dims[0]) else { return }
        let rb = rowBytes
        try file.withBytes(of: tensor, range: (start * rb)..<((start + count) * rb)) { b in
            for i in 0..<count where !GGMLDequant.folioRecord(tensor.type, b.baseAddress! + i * rb, width: tensor.dims[0], into: out + i * rec) {
                throw ConvertError.badTensor(file: file.path, tensor: tensor.name, reason: "row \(start + i) cannot be carried as \(keep.name) without loss (a non-finite scale, a Q8_0 code of -128, or a Q4_0 minimum beyond float16); convert without --keep-quantized")
            }
        }
    }

    func release() { file.release(tensor, range: 0..<tensor.nbytes) }
}

extension Checkpoint {
    /// Opens a GGUF file. Metadata is kept as `gguf.KEY` = the value as JSON.
    static func openGGUF(_ path: String, keepQuantized: Bool, carryTokenizer: Bool) throws -> Checkpoint {
        let f = try GGUFFile(path: path)
        let tensors = f.header.tensors.map { t -> SourceTensor in
            let keep = keepQuantized ? t.type.losslessScheme : nil
            let encoding: Encoding = keep ?? .plain(t.type.plainDType ?? .f32)
            return SourceTensor(name: t.name, encoding: encoding, shape: t.shape, file: path, storage: GGUFStorage(file: f, tensor: t, keep: keep))
        }
        let json = f.header.metadata.map { ($0.0, $0.1.json) }
        let metadata = json.map { ("gguf." + $0.0, $0.1.serialized()) }
        // The tokenizer the GGUF carries, as tokenizer.json and tokenizer_config.json files;
        // one that Folio cannot encode with exactly is not carried, and the user is told.
        var files: [(name: String, bytes: [UInt8])] = [], notes: [String] = []
        if carryTokenizer {
            do {
                if let t = try GGUFVocabulary.files(Dictionary(json, uniquingKeysWith: { a, _ in a }), file: path) {
                    _ = try Tokenizers.load(json: t.tokenizer, file: path + ":tokenizer.json")
                    files = [("tokenizer.json", t.tokenizer), ("tokenizer_config.json", t.tokenizerConfig)]
                }
            } catch let e as TokenizerError {
                notes.append("the GGUF tokenizer is not carried, so run the result with --tokens: \(e)")
            }
        }
        var c = Checkpoint(path: path, format: .gguf, tensors: tensors, metadata: metadata, files: files)
        c.notes = notes
        return c
    }
}
