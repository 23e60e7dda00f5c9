import Folio

extension GGUFValue {
    public static func u32(_ v: Int) -> GGUFValue { .uint(UInt64(v), bits: 32) }
    public static func f32(_ v: Double) -> GGUFValue { .float(Double(Float(v)), bits: 32) }
    public static func strings(_ a: [String]) -> GGUFValue { .array(a.map { .string($0) }) }
    public static func i32s(_ a: [Int32]) -> GGUFValue { .array(a.map { .int(Int64($0), bits: 32) }) }

    /// The value type id of the GGUF specification.
    var typeID: UInt32 {
        switch self {
        case let .uint(_, bits): return [8: 0, 16: 2, 32: 4, 64: 10][bits] ?? 10
        case let .int(_, bits): return [8: 1, 16: 3, 32: 5, 64: 11][bits] ?? 11
        case let .float(_, bits): return bits == 32 ? 6 : 12
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        }
    }
}

/// Writes a GGUF version 3 file in one pass: magic, version, counts, the key-value pairs, the
/// tensor infos (dimensions innermost first, offsets from the data section), padding to the
/// alignment (32, GGUF's default, so no `general.alignment` key is written), then each
/// tensor's bytes, each padded to the alignment. Every size is known from the tensor list
/// before a byte is written, so the data is streamed; the file is published atomically.
public struct GGUFWriter {
    public struct Tensor {
        public let name: String
        public let type: GGMLType
        /// Folio order: outermost first, the row last.
        public let shape: [Int]
        /// Writes exactly `nbytes` bytes of the tensor through `emit`, in order.
        public let produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

        public init(name: String, type: GGMLType, shape: [Int], produce: @escaping (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
            self.name = name
            self.type = type
            self.shape = shape
            self.produce = produce
        }

        public var nbytes: Int { (shape.reduce(1, *) / type.blockSize) * type.typeSize }
    }

    public static let alignment = 32

    public static func write(to path: String, metadata: [(String, GGUFValue)], tensors: [Tensor]) throws {
        for t in tensors {
            guard t.name.utf8.count < 64 else { throw ConvertError.badOption("GGUF tensor name '\(t.name)' is 64 bytes or longer (ggml's limit)") }
            guard (1...4).contains(t.shape.count) else { throw ConvertError.badOption("GGUF tensor '\(t.name)' has rank \(t.shape.count) (1 to 4)") }
            guard (t.shape.last ?? 1) % t.type.blockSize == 0 else {
                throw ConvertError.badOption("GGUF tensor '\(t.name)': rows of \(t.shape.last ?? 1) values are not whole \(t.type.name) blocks of \(t.type.blockSize)")
            }
        }
        var head = ByteWriter()
        head.bytes(Array("GGUF".utf8))
        head.u32(3)
        head.u64(UInt64(tensors.count))
        head.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            head.string(key)
            head.value(value)
        }
        var offset = 0
        for t in tensors {
            head.string(t.name)
            head.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { head.u64(UInt64(d)) }
            head.u32(t.type.rawValue)
            head.u64(UInt64(offset))
            offset = align(offset + t.nbytes)
        }
        head.bytes([UInt8](repeating: 0, count: align(head.out.count) - head.out.count))
        let out = try AtomicOutput(destination: path)
        do {
            try out.write(head.out)
            for t in tensors {
                var written = 0
                try t.produce { piece in
                    try out.write(piece)
                    written += piece.count
                }
                guard written == t.nbytes else {
                    throw ConvertError.badOption("GGUF tensor '\(t.name)': \(written) bytes produced, \(t.nbytes) expected")
                }
                try out.writeZeros(align(written) - written)
            }
            try out.commit()
        } catch {
            out.abort()
            throw error
        }
    }

    static func align(_ v: Int) -> Int { (v + alignment - 1) / alignment * alignment }
}

/// Little-endian serialisation of the GGUF header.
struct ByteWriter {
    var out: [UInt8] = []

    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        out += Array(s.utf8)
    }

    mutating func value(_ v: GGUFValue) {
        u32(v.typeID)
        payload(v)
    }

    mutating func payload(_ v: GGUFValue) {
        switch v {
        case let .uint(x, bits): sized(x, bits)
        case let .int(x, bits): sized(UInt64(bitPattern: x), bits)
        case let .float(x, bits): if bits == 32 { u32(Float(x).bitPattern) } else { u64(x.bitPattern) }
        case let .bool(x): out.append(x ? 1 : 0)
        case let .string(s): string(s)
        case let .array(a):
            // Arrays are homogeneous; an empty one is written as an array of strings (the one
            // the export can write empty: the merges of a vocabulary without merges).
            u32(a.first?.typeID ?? 8)
            u64(UInt64(a.count))
            for e in a { payload(e) }
        }
    }

    mutating func sized(_ x: UInt64, _ bits: Int) {
        for i in 0..<(bits / 8) { out.append(UInt8(truncatingIfNeeded: x >> (8 * UInt64(i)))) }
    }
}

/// Row records of Folio schemes re-blocked as ggml blocks, without loss (the inverse of
/// FOREIGN.md 4.7): `int8/gN` (N a multiple of 32) as Q8_0, `int4/gN` as Q4_1, each Folio
/// group giving N / 32 ggml blocks with its scale (and minimum).
public enum GGMLBlocks {
    /// The ggml type a Folio encoding maps onto exactly, or nil.
    public static func losslessType(for e: Encoding) -> GGMLType? {
        switch e {
        case .int8(let g?) where g % 32 == 0: return .q8_0
        case .int4(let g) where g % 32 == 0: return .q4_1
        default: return nil
        }
    }

    /// Converts one Folio record of `width` values into width / 32 ggml blocks at `out`.
    public static func convert(record: UnsafeRawPointer, encoding: Encoding, width: Int, into out: UnsafeMutableRawPointer) {
        switch encoding {
        case .int8(let g?):
            let groups = width / g
            let codes = record + 2 * groups
            for b in 0..<(width / 32) {
                let block = out + b * 34
                let group = (b * 32) / g
                block.copyMemory(from: record + 2 * group, byteCount: 2)
                (block + 2).copyMemory(from: codes + b * 32, byteCount: 32)
            }
        case .int4(let g):
            let groups = width / g
            let codes = record.assumingMemoryBound(to: UInt8.self) + 4 * groups
            for b in 0..<(width / 32) {
                let block = out + b * 20
                let group = (b * 32) / g
                block.copyMemory(from: record + 4 * group, byteCount: 4)  // scale d, then minimum m
                let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
                // Folio: value 2i in the low nibble of byte i, 2i+1 in the high one.
                // ggml: value j < 16 in the low nibble of byte j, value j + 16 in its high nibble.
                func code(_ v: Int) -> UInt8 {
                    let j = b * 32 + v
                    let byte = codes[j / 2]
                    return j % 2 == 0 ? byte & 0x0F : byte >> 4
                }
                for j in 0..<16 { qs[j] = code(j) | (code(j + 16) << 4) }
            }
        default:
            preconditionFailure("GGMLBlocks.convert: \(encoding.name) has no lossless ggml type")
        }
    }
}
