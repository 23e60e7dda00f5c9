import Folio

/// One tensor entry of a safetensors header.
public struct SafetensorsEntry: Sendable, Hashable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Offsets from the start of the data buffer.
    public let begin: Int
    public let end: Int
    public var nbytes: Int { end - begin }
}

/// A validated safetensors header (https://github.com/huggingface/safetensors, format
/// described in its README): 8-byte little-endian header size N, N bytes of JSON, data.
public struct SafetensorsHeader: Sendable {
    /// The reference implementation's cap on N.
    public static let maxHeaderSize = 100_000_000

    public let metadata: [(String, String)]?
    /// Entries in data order (sorted by offset).
    public let entries: [SafetensorsEntry]
    /// Absolute offset of the data buffer: 8 + N.
    public let dataStart: Int

    /// Parses and validates as strictly as the reference: header size within the cap and
    /// the file, UTF-8 JSON object, known dtypes, `end - begin == numel * size` with checked
    /// arithmetic, offsets contiguous from 0 with no gap or overlap, and the last one ending
    /// exactly at the end of the file.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> SafetensorsHeader {
        func bad(_ r: String) -> ConvertError { .badFile(file: file, reason: r) }
        guard bytes.count >= 8 else { throw bad("truncated: \(bytes.count) bytes, a safetensors file starts with an 8-byte header size") }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(maxHeaderSize) else { throw bad("header size \(n) exceeds the limit of \(maxHeaderSize) bytes") }
        guard 8 + Int(n) <= bytes.count else { throw bad("truncated: header size \(n) runs past the end of the file (\(bytes.count) bytes)") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + Int(n))])
        guard headerBytes.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let json: JSONValue
        do { json = try JSONParser.parse(headerBytes) } catch { throw bad("header is not valid JSON: \(error)") }
        guard let members = json.objectValue else { throw bad("header is not a JSON object") }

        var metadata: [(String, String)]? = nil
        var entries: [SafetensorsEntry] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard let pairs = value.objectValue else { throw ConvertError.badField(file: file, field: "__metadata__", reason: "expected an object of strings") }
                var m: [(String, String)] = []
                for (k, v) in pairs {
                    guard let s = v.stringValue else { throw ConvertError.badField(file: file, field: "__metadata__.\(k)", reason: "expected a string") }
                    m.append((k, s))
                }
                metadata = m
                continue
            }
            func badT(_ r: String) -> ConvertError { .badTensor(file: file, tensor: name, reason: r) }
            guard value.objectValue != nil else { throw badT("entry is not an object") }
            for (k, _) in value.objectValue! where !["dtype", "shape", "data_offsets"].contains(k) {
                throw badT("unknown field '\(k)'")
            }
            guard let dn = value["dtype"]?.stringValue else { throw badT("missing dtype") }
            guard let dtype = DType(rawValue: dn) else {
                throw badT(["F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "C64"].contains(dn) ? "dtype \(dn) is not supported by Folio" : "unknown dtype '\(dn)'")
            }
            guard let dims = value["shape"]?.arrayValue else { throw badT("missing shape") }
            var shape: [Int] = []
            var count = 1
            for d in dims {
                guard let v = d.intValue else { throw badT("shape entry \(d.serialized()) is not a non-negative integer") }
                let (p, o) = count.multipliedReportingOverflow(by: v)
                guard !o, p <= Int.max / 16 else { throw badT("shape \(dims.map { $0.serialized() }) overflows") }
                count = p
                shape.append(v)
            }
            guard shape.count <= FolioFormat.maxRank else { throw badT("rank \(shape.count) exceeds \(FolioFormat.maxRank)") }
            guard let offs = value["data_offsets"]?.arrayValue, offs.count == 2,
                  let b = offs[0].intValue, let e = offs[1].intValue else {
                throw badT("data_offsets must be two non-negative integers")
            }
            guard e >= b else { throw badT("data_offsets [\(b), \(e)] end before they begin") }
            guard e - b == count * dtype.size else {
                throw badT("data_offsets span \(e - b) bytes, expected \(count) x \(dtype.size) = \(count * dtype.size) for shape \(shape) \(dn)")
            }
            entries.append(SafetensorsEntry(name: name, dtype: dtype, shape: shape, begin: b, end: e))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else {
                if e.begin < cursor { throw ConvertError.badTensor(file: file, tensor: e.name, reason: "data_offsets [\(e.begin), \(e.end)] overlap the previous tensor (which ends at \(cursor))") }
                throw ConvertError.badTensor(file: file, tensor: e.name, reason: "data_offsets start at \(e.begin), leaving a gap after byte \(cursor)")
            }
            cursor = e.end
        }
        let dataSize = bytes.count - 8 - Int(n)
        guard cursor == dataSize else {
            if cursor > dataSize { throw bad("truncated: tensors need \(cursor) data bytes, the file holds \(dataSize)") }
            throw bad("\(dataSize - cursor) bytes after the last tensor are not covered by any tensor")
        }
        return SafetensorsHeader(metadata: metadata, entries: entries, dataStart: 8 + Int(n))
    }
}

/// A memory-mapped, validated safetensors file.
public final class SafetensorsFile: Sendable {
    public let path: String
    public let header: SafetensorsHeader
    let map: MappedFile

    /// Opens a local file or an http(s) URL. Remotely the 8-byte length and the header come
    /// in the first request (a header longer than it costs a second); the data is fetched
    /// as it is read, in units of `remoteUnit` bytes, with readahead while streaming. A
    /// safetensors file has no checksums, so remote bytes are checked only for length and
    /// for coming from one unchanged file (ETag, Last-Modified, size).
    public init(path: String) throws {
        map = try MappedFile(location: path)
        self.path = map.path
        if let remote = map.remote, remote.size >= 8 {
            let n = map.withBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian }
            if n <= UInt64(SafetensorsHeader.maxHeaderSize), 8 + Int(n) <= remote.size { try remote.ensureRaw([0..<(8 + Int(n))]) }
        }
        let shown = self.path
        header = try map.withBytes { try SafetensorsHeader.parse($0, file: shown) }
        if let remote = map.remote {
            try remote.setRegion(start: header.dataStart, end: remote.size, unit: Self.remoteUnit, unitName: "piece") { _, _ in true }
        }
    }

    /// The fetch unit of remote safetensors data.
    static let remoteUnit = 4 << 20

    public var fileSize: Int { map.size }

    /// Calls `body` with bytes `range` (relative to the tensor) of an entry.
    public func withBytes<R>(of e: SafetensorsEntry, range: Range<Int>? = nil, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let r = range ?? 0..<e.nbytes
        let offset = header.dataStart + e.begin + r.lowerBound
        if let remote = map.remote {
            remote.noteSequentialRead(offset..<(offset + r.count))
            try remote.ensure(offset..<(offset + r.count))
        }
        return try map.withBytes(offset: offset, count: r.count, body)
    }

    /// Drops this process's pages of an entry's byte range (after streaming over it).
    public func release(_ e: SafetensorsEntry, range: Range<Int>) {
        map.advise(.dontNeed, offset: header.dataStart + e.begin + range.lowerBound, length: range.count)
    }
}

/// Streams a safetensors file: the header is written first (the plan gives every offset),
/// then each tensor's bytes in order; published atomically.
public final class SafetensorsWriter {
    public struct Plan: Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public init(name: String, dtype: DType, shape: [Int]) { self.name = name; self.dtype = dtype; self.shape = shape }
        var nbytes: Int { shape.reduce(1, *) * dtype.size }
    }

    private let out: AtomicOutput
    private let plans: [Plan]
    private var current = 0
    private var written = 0
    public let path: String

    public init(path: String, tensors: [Plan], metadata: [(String, String)]?) throws {
        self.path = path
        plans = tensors
        var members: [(String, JSONValue)] = []
        if let metadata { members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        var cursor = 0
        var seen = Set<String>()
        for p in tensors {
            guard p.name != "__metadata__", seen.insert(p.name).inserted else {
                throw ConvertError.badTensor(file: path, tensor: p.name, reason: "duplicate or reserved tensor name")
            }
            members.append((p.name, .object([
                ("dtype", .string(p.dtype.rawValue)), ("shape", .array(p.shape.map { .int($0) })),
                ("data_offsets", .array([.int(cursor), .int(cursor + p.nbytes)])),
            ])))
            cursor += p.nbytes
        }
        var header = Array(JSONValue.object(members).serialized().utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        out = try AtomicOutput(destination: path)
        try out.write(withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
        try out.write(header)
        skipEmpty()
    }

    private func skipEmpty() {
        while current < plans.count && written == plans[current].nbytes { current += 1; written = 0 }
    }

    /// The tensor the next bytes belong to.
    public var currentTensor: String? { current < plans.count ? plans[current].name : nil }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.isEmpty { return }
        guard current < plans.count, bytes.count <= plans[current].nbytes - written else {
            throw FolioError.invalidUse(file: path, reason: "more bytes than the planned tensors hold")
        }
        try out.write(bytes)
        written += bytes.count
        skipEmpty()
    }

    public func finish() throws {
        guard current == plans.count else {
            out.abort()
            throw FolioError.invalidUse(file: path, reason: "tensor '\(plans[current].name)' was not completely written")
        }
        try out.commit()
    }

    public func abort() { out.abort() }
}
