/// The plain element types Folio stores bit-exactly, named as safetensors names them.
public enum DType: String, CaseIterable, Sendable, Hashable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case u16 = "U16", i16 = "I16"
    case u32 = "U32", i32 = "I32"
    case u64 = "U64", i64 = "I64"
    case f16 = "F16", bf16 = "BF16", f32 = "F32", f64 = "F64"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        }
    }

    /// Floating-point types, the only ones that can be quantized or cast.
    public var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }
}

/// How a tensor's values are stored: a plain dtype, or a quantization scheme.
public enum Encoding: Hashable, Sendable, CustomStringConvertible {
    case plain(DType)
    /// Symmetric int8: `x = scale * q`, q in [-127, 127]; one float32 scale per row when
    /// `group` is nil, else one float16 scale per `group` values.
    case int8(group: Int?)
    /// Affine 4-bit: `x = scale * q + min`, q in [0, 15]; float16 scale and min per group.
    case int4(group: Int)
    /// Affine 8-bit: `x = scale * q + min`, q in [0, 255]; float16 scale and min per group.
    /// Not in the contract's list; it exists because a symmetric grid cannot match an
    /// affine one on groups whose values are not centred on zero.
    case affine8(group: Int)
    /// Affine 3-bit and 2-bit, for embedding tables: `x = scale * q + min`, q in [0, 7] or
    /// [0, 3]; float16 scale and min per group; codes packed 8 to 3 bytes (3-bit) or 4 to a
    /// byte (2-bit). Rows are looked up, never multiplied in place.
    case int3(group: Int)
    case int2(group: Int)

    public static let allowedGroups = [16, 32, 64, 128, 256]

    /// Parses a scheme name of the command-line contract (`f32`, `f16`, `bf16`, `int8`,
    /// `int8/gN`, `int4`, `int4/gN`) or a plain dtype name (`F32`, `U8`, ...).
    public init?(name: String) {
        switch name {
        case "f32": self = .plain(.f32); return
        case "f16": self = .plain(.f16); return
        case "bf16": self = .plain(.bf16); return
        case "int8": self = .int8(group: nil); return
        case "int4": self = .int4(group: 32); return
        default: break
        }
        if let d = DType(rawValue: name) { self = .plain(d); return }
        for (prefix, make) in [("int8/g", { Encoding.int8(group: $0) }), ("int4/g", { Encoding.int4(group: $0) }),
                               ("affine8/g", { Encoding.affine8(group: $0) }), ("int3/g", { Encoding.int3(group: $0) }),
                               ("int2/g", { Encoding.int2(group: $0) })] as [(String, (Int) -> Encoding)] {
            if name.hasPrefix(prefix), let n = Int(name.dropFirst(prefix.count)), Encoding.allowedGroups.contains(n),
               String(n) == name.dropFirst(prefix.count) {
                self = make(n); return
            }
        }
        return nil
    }

    /// The name used in headers and reports: the dtype name for plain tensors, the scheme
    /// name (`int8`, `int8/g64`, `int4/g32`) for quantized ones.
    public var name: String {
        switch self {
        case let .plain(d): return d.rawValue
        case let .int8(g): return g.map { "int8/g\($0)" } ?? "int8"
        case let .int4(g): return "int4/g\(g)"
        case let .affine8(g): return "affine8/g\(g)"
        case let .int3(g): return "int3/g\(g)"
        case let .int2(g): return "int2/g\(g)"
        }
    }

    public var description: String { name }

    public var isQuantized: Bool {
        if case .plain = self { return false }
        return true
    }

    public var plainDType: DType? {
        if case let .plain(d) = self { return d }
        return nil
    }

    /// Why a row of `width` values cannot use this encoding, or nil when it can.
    public func rowProblem(width: Int) -> String? {
        switch self {
        case .plain: return nil
        case let .int8(g):
            if width == 0 { return "rows are empty" }
            if let g, width % g != 0 { return "row length \(width) is not a multiple of the group size \(g)" }
            return nil
        case let .int4(g), let .affine8(g), let .int3(g), let .int2(g):
            if width == 0 { return "rows are empty" }
            if width % g != 0 { return "row length \(width) is not a multiple of the group size \(g)" }
            return nil
        }
    }

    /// Bytes of one encoded row (values plus its scales/minimums), before stride alignment,
    /// or nil on overflow. `width` must have passed `rowProblem`.
    public func recordSize(width: Int) -> Int? {
        switch self {
        case let .plain(d):
            return width.multipliedReportingOverflow(by: d.size).overflow ? nil : width * d.size
        case let .int8(g):
            let scales = g.map { (width / $0) * 2 } ?? 4
            return width.addingReportingOverflow(scales).overflow ? nil : width + scales
        case let .int4(g):
            let (s, o) = (width / 2).addingReportingOverflow((width / g) * 4)
            return o ? nil : s
        case let .affine8(g):
            let (s, o) = width.addingReportingOverflow((width / g) * 4)
            return o ? nil : s
        case let .int3(g):
            // width is a multiple of g >= 16, so of 8: whole 3-byte packs.
            let (s, o) = (width / 8 * 3).addingReportingOverflow((width / g) * 4)
            return o ? nil : s
        case let .int2(g):
            let (s, o) = (width / 4).addingReportingOverflow((width / g) * 4)
            return o ? nil : s
        }
    }

    /// Alignment of the row stride within a page.
    public var recordAlignment: Int {
        switch self {
        case let .plain(d): return d.size
        case .int8, .int4, .affine8, .int3, .int2: return 4
        }
    }
}
