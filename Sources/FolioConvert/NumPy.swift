import Folio

/// The header of a `.npy` array (format versions 1.0, 2.0 and 3.0, as NumPy's
/// `numpy.lib.format` writes them): the magic `\x93NUMPY`, the version, the header length
/// (2 bytes in 1.0, 4 bytes after), then a Python dict literal with exactly the keys
/// 'descr', 'fortran_order' and 'shape', padded with spaces and ended by a newline.
struct NpyHeader: Equatable {
    /// NumPy's own cap on the header (`max_header_size`) is 10,000 bytes; Folio allows more
    /// but not without bound.
    static let maxHeaderLength = 1 << 20
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    let dtype: DType
    let shape: [Int]
    /// Bytes before the array data.
    let dataOffset: Int
    var elementCount: Int { shape.reduce(1, *) }
    var nbytes: Int { elementCount * dtype.size }

    /// Bytes needed to read the header length.
    static let preambleBytes = 12

    /// The total header size (preamble and dict) given at least the first
    /// `preambleBytes` bytes (or all of a shorter file).
    static func headerSize(_ b: [UInt8], file: String, tensor: String) throws -> Int {
        func bad(_ r: String) -> ConvertError { .badTensor(file: file, tensor: tensor, reason: r) }
        guard b.count >= 10 else { throw bad("truncated .npy header: \(b.count) bytes") }
        guard Array(b[0..<6]) == magic else { throw bad("not a .npy array (no \\x93NUMPY magic)") }
        let major = b[6], minor = b[7]
        switch (major, minor) {
        case (1, 0):
            return 10 + (Int(b[8]) | Int(b[9]) << 8)
        case (2, 0), (3, 0):
            guard b.count >= 12 else { throw bad("truncated .npy header: \(b.count) bytes") }
            let n = Int(b[8]) | (Int(b[9]) << 8) | (Int(b[10]) << 16) | (Int(b[11]) << 24)
            guard n <= maxHeaderLength else { throw bad(".npy header length \(n) exceeds the limit of \(maxHeaderLength) bytes") }
            return 12 + n
        default:
            throw bad("unsupported .npy format version \(major).\(minor) (expected 1.0, 2.0 or 3.0)")
        }
    }

    /// Parses a whole header (`b.count == headerSize(b)`).
    static func parse(_ b: [UInt8], file: String, tensor: String) throws -> NpyHeader {
        func bad(_ r: String) -> ConvertError { .badTensor(file: file, tensor: tensor, reason: r) }
        let size = try headerSize(b, file: file, tensor: tensor)
        guard b.count >= size else { throw bad("truncated .npy header: \(b.count) of \(size) bytes") }
        let start = b[6] == 1 ? 10 : 12
        var p = DictLiteral(bytes: Array(b[start..<size]), file: file, tensor: tensor)
        let entries = try p.parseHeader()
        var descr: String?, fortran: Bool?, dims: [Int]?
        for (k, v) in entries {
            switch (k, v) {
            case ("descr", .string(let s)): descr = s
            case ("descr", .list): throw bad("structured dtype (descr is a list of fields) is not supported")
            case ("fortran_order", .bool(let f)): fortran = f
            case ("shape", .tuple(let t)): dims = t
            case ("descr", _), ("fortran_order", _), ("shape", _): throw bad("header field '\(k)' has the wrong type")
            default: throw bad("header has an unexpected key '\(k)' (expected 'descr', 'fortran_order', 'shape')")
            }
        }
        guard let descr, let fortran, let dims else {
            throw bad("header lacks \(["descr", "fortran_order", "shape"].filter { k in !entries.contains { $0.0 == k } }.map { "'\($0)'" }.joined(separator: ", "))")
        }
        let dtype = try dtype(descr, bad: bad)
        if fortran {
            throw bad("array is in Fortran order, which is not supported; save it with np.ascontiguousarray(a)")
        }
        guard dims.count <= FolioFormat.maxRank else { throw bad("rank \(dims.count) exceeds \(FolioFormat.maxRank)") }
        var count = 1
        for d in dims {
            let (c, o) = count.multipliedReportingOverflow(by: d)
            guard !o, c <= FolioFormat.maxElements else { throw bad("shape \(dims) overflows") }
            count = c
        }
        let (_, o) = count.multipliedReportingOverflow(by: dtype.size)
        guard !o else { throw bad("shape \(dims) overflows") }
        return NpyHeader(dtype: dtype, shape: dims, dataOffset: size)
    }

    /// Maps a NumPy type string onto a dtype: little-endian ('<') or byte-order free ('|').
    static func dtype(_ descr: String, bad: (String) -> ConvertError) throws -> DType {
        let table: [String: DType] = [
            "f2": .f16, "f4": .f32, "f8": .f64,
            "i2": .i16, "i4": .i32, "i8": .i64, "u2": .u16, "u4": .u32, "u8": .u64,
        ]
        let bytes: [String: DType] = ["i1": .i8, "u1": .u8, "b1": .bool]
        let order = descr.first
        let code = String(descr.dropFirst())
        if descr.contains("O") {
            throw bad("object array (dtype '\(descr)') holds pickled Python objects; Folio refuses them")
        }
        if order == ">" && (table[code] != nil || bytes[code] != nil) {
            throw bad("big-endian dtype '\(descr)' is not supported; save the array with a.astype('<\(code)')")
        }
        if order == "<", let d = table[code] ?? bytes[code] { return d }
        if order == "|", let d = bytes[code] { return d }
        throw bad("dtype '\(descr)' is not supported (expected <f2 <f4 <f8 <i2 <i4 <i8 <u2 <u4 <u8 |i1 |u1 |b1)")
    }
}

/// The subset of Python literal syntax that `.npy` headers use: a dict of string keys whose
/// values are strings, True/False or tuples of non-negative integers (lists are recognized
/// only to refuse structured dtypes).
private struct DictLiteral {
    enum Value { case string(String), bool(Bool), int(Int), tuple([Int]), list }
    let bytes: [UInt8]
    let file: String, tensor: String
    var i = 0

    init(bytes: [UInt8], file: String, tensor: String) {
        self.bytes = bytes
        self.file = file
        self.tensor = tensor
    }

    func bad(_ r: String) -> ConvertError { .badTensor(file: file, tensor: tensor, reason: ".npy header at byte \(i): \(r)") }

    mutating func skipSpace() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 } }

    mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < bytes.count, bytes[i] == c.asciiValue! else { throw bad("expected '\(c)'") }
        i += 1
    }

    mutating func peek() -> UInt8? { skipSpace(); return i < bytes.count ? bytes[i] : nil }

    mutating func parseHeader() throws -> [(String, Value)] {
        try expect("{")
        var out: [(String, Value)] = []
        while true {
            if peek() == UInt8(ascii: "}") { i += 1; break }
            let key = try string()
            guard !out.contains(where: { $0.0 == key }) else { throw bad("duplicate key '\(key)'") }
            try expect(":")
            out.append((key, try value()))
            if peek() == UInt8(ascii: ",") { i += 1; continue }
            try expect("}")
            break
        }
        // What follows is padding: spaces and the final newline.
        skipSpace()
        guard i < bytes.count, bytes[i] == 0x0A else { throw bad("header must end with a newline after the dict") }
        i += 1
        while i < bytes.count {
            guard bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0 else { throw bad("unexpected byte 0x\(String(bytes[i], radix: 16)) after the dict") }
            i += 1
        }
        return out
    }

    mutating func string() throws -> String {
        guard let q = peek(), q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else { throw bad("expected a quoted string") }
        i += 1
        let start = i
        while i < bytes.count, bytes[i] != q {
            guard bytes[i] >= 0x20, bytes[i] < 0x7F, bytes[i] != UInt8(ascii: "\\") else { throw bad("unsupported character in a string") }
            i += 1
        }
        guard i < bytes.count else { throw bad("unterminated string") }
        i += 1
        return String(decoding: bytes[start..<(i - 1)], as: UTF8.self)
    }

    mutating func value() throws -> Value {
        guard let c = peek() else { throw bad("expected a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "T"), UInt8(ascii: "F"):
            for (word, v) in [("True", true), ("False", false)] where bytes[i...].starts(with: Array(word.utf8)) {
                i += word.utf8.count
                return .bool(v)
            }
            throw bad("expected True or False")
        case UInt8(ascii: "["):
            // Only to name it in the error: skip to the matching bracket.
            var depth = 0
            var quote: UInt8?
            while i < bytes.count {
                let b = bytes[i]
                i += 1
                if let q = quote { if b == q { quote = nil }; continue }
                if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") { quote = b }
                if b == UInt8(ascii: "[") { depth += 1 }
                if b == UInt8(ascii: "]") { depth -= 1; if depth == 0 { return .list } }
            }
            throw bad("unterminated list")
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return .int(try integer())
        case UInt8(ascii: "("):
            i += 1
            var items: [Int] = []
            var sawComma = false
            while true {
                if peek() == UInt8(ascii: ")") { i += 1; break }
                items.append(try integer())
                if peek() == UInt8(ascii: ",") { i += 1; sawComma = true; continue }
                try expect(")")
                break
            }
            // "(3)" is the integer 3 in Python, not a tuple.
            guard items.count != 1 || sawComma else { throw bad("shape (\(items[0])) is not a tuple; a 1-tuple is written (\(items[0]),)") }
            return .tuple(items)
        default: throw bad("unexpected character '\(Character(Unicode.Scalar(c)))'")
        }
    }

    mutating func integer() throws -> Int {
        skipSpace()
        let start = i
        var v = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(bytes[i] - 0x30))
            guard !o1, !o2 else { throw bad("integer overflows") }
            v = a
            i += 1
        }
        guard i > start else { throw bad("expected a non-negative integer") }
        return v
    }
}

extension Checkpoint {
    /// Opens a NumPy `.npy` array (one tensor, named after the file without `.npy`) or a
    /// `.npz` archive (one tensor per member `NAME.npy`, named NAME). `.npy` files and stored
    /// `.npz` members are memory-mapped and read zero-copy; deflated members
    /// (`np.savez_compressed`) are inflated as a stream. Object arrays (pickled Python objects),
    /// big-endian and Fortran-ordered arrays and structured dtypes are refused.
    /// - Throws: `ConvertError` naming the file and the array at fault.
    public static func openNumPy(_ path: String) throws -> Checkpoint {
        let map = try MappedFile(path: path)
        let head: [UInt8] = map.withBytes { Array($0.prefix(6)) }
        if head == NpyHeader.magic {
            let base = path.split(separator: "/").last.map(String.init) ?? path
            let name = base.hasSuffix(".npy") ? String(base.dropLast(4)) : base
            let t = try npyTensor(name: name, source: .mapped(map, offset: 0, count: map.size), file: path)
            return Checkpoint(path: path, format: .numpy, tensors: [t], metadata: nil, files: [])
        }
        guard head.starts(with: [0x50, 0x4B]) else {
            throw ConvertError.badFile(file: path, reason: "not a NumPy file: neither a .npy array (\\x93NUMPY) nor a .npz zip archive")
        }
        var tensors: [SourceTensor] = []
        for m in try ZipMembers.list(path, map: map) {
            guard m.path.hasSuffix(".npy"), m.path.count > 4 else {
                throw ConvertError.badFile(file: path, reason: "member '\(m.path)' of the .npz archive is not a .npy array")
            }
            tensors.append(try npyTensor(name: String(m.path.dropLast(4)), source: m.bytes, file: path))
        }
        return Checkpoint(path: path, format: .numpy, tensors: tensors, metadata: nil, files: [])
    }

    /// Reads the header at the start of `source` and checks that the data fills the rest exactly.
    static func npyTensor(name: String, source: ByteSource, file: String) throws -> SourceTensor {
        func read(_ n: Int) throws -> [UInt8] {
            switch source {
            case .mapped: return try source.withBytes(0..<Swift.min(n, source.count)) { Array($0) }
            case let .inflated(m): return try m.prefix(n)
            }
        }
        let size = try NpyHeader.headerSize(try read(NpyHeader.preambleBytes), file: file, tensor: name)
        guard size <= source.count else {
            throw ConvertError.badTensor(file: file, tensor: name, reason: "truncated: the .npy header needs \(size) bytes, there are \(source.count)")
        }
        let header = try NpyHeader.parse(try read(size), file: file, tensor: name)
        let available = source.count - header.dataOffset
        guard available == header.nbytes else {
            let what = available < header.nbytes ? "truncated" : "\(available - header.nbytes) bytes after the array data"
            throw ConvertError.badTensor(file: file, tensor: name, reason: "\(what): shape \(header.shape) \(header.dtype.rawValue) needs \(header.nbytes) data bytes, there are \(available)")
        }
        let storage = ByteSourceStorage(source: source, begin: header.dataOffset, nbytes: header.nbytes, dtype: header.dtype)
        return SourceTensor(name: name, encoding: .plain(header.dtype), shape: header.shape, file: file, storage: storage)
    }
}

/// Writes float32 and int64 arrays as .npy (format 1.0, little-endian, C order), atomically.
public enum NumPyWriter {
    public static func writeFloat32(_ values: [Float], shape: [Int], to path: String) throws {
        try values.withUnsafeBytes { try write($0, descr: "<f4", shape: shape, to: path) }
    }

    public static func writeInt64(_ values: [Int64], shape: [Int], to path: String) throws {
        try values.withUnsafeBytes { try write($0, descr: "<i8", shape: shape, to: path) }
    }

    static func write(_ bytes: UnsafeRawBufferPointer, descr: String, shape: [Int], to path: String) throws {
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': ("
        dict += shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",), }" : "), }")
        // Magic (6) + version (2) + header length (2) + dict, padded with spaces and a final
        // newline to a multiple of 64 bytes, as numpy writes it.
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var head: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let n = dict.utf8.count
        head += [UInt8(n & 0xFF), UInt8(n >> 8)] + Array(dict.utf8)
        let out = try AtomicOutput(destination: path)
        do {
            try out.write(head)
            try out.write(bytes)
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
    }
}
