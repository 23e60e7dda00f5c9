import Folio

/// ggml tensor types that Folio reads (ggml's `enum ggml_type`; block sizes from
/// ggml-common.h). Quantized types are dequantized exactly as ggml does.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    public var name: String {
        switch self {
        case .f32: "F32"; case .f16: "F16"; case .bf16: "BF16"; case .f64: "F64"
        case .i8: "I8"; case .i16: "I16"; case .i32: "I32"; case .i64: "I64"
        case .q4_0: "Q4_0"; case .q4_1: "Q4_1"; case .q5_0: "Q5_0"; case .q5_1: "Q5_1"; case .q8_0: "Q8_0"
        case .q2_K: "Q2_K"; case .q3_K: "Q3_K"; case .q4_K: "Q4_K"; case .q5_K: "Q5_K"; case .q6_K: "Q6_K"
        }
    }

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block.
    public var typeSize: Int {
        switch self {
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .f64, .i64: 8
        case .i8: 1
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }

    /// The plain dtype when the type is not block-quantized.
    public var plainDType: DType? {
        switch self {
        case .f32: .f32; case .f16: .f16; case .bf16: .bf16; case .f64: .f64
        case .i8: .i8; case .i16: .i16; case .i32: .i32; case .i64: .i64
        default: nil
        }
    }

    /// The Folio scheme that holds this block format without loss, if any.
    public var losslessScheme: Encoding? {
        switch self {
        case .q8_0: .int8(group: 32)
        case .q4_0, .q4_1: .int4(group: 32)
        default: nil
        }
    }

    public static func named(_ raw: UInt32) -> String {
        let known: [UInt32: String] = [9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
                                       21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"]
        return GGMLType(rawValue: raw)?.name ?? known[raw] ?? "type \(raw)"
    }
}

/// Block dequantization, following ggml's reference order of float32 operations so that
/// results are bit-identical to ggml and gguf-py (`gguf.quants.dequantize`).
enum GGMLDequant {
    @inline(__always) static func h(_ p: UnsafeRawPointer, _ o: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
    }

    @inline(__always) static func b(_ p: UnsafeRawPointer, _ o: Int) -> UInt8 { p.load(fromByteOffset: o, as: UInt8.self) }

    /// Dequantizes `blocks` consecutive blocks of `type` into `out`.
    static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, blocks: Int, into out: UnsafeMutablePointer<Float>) {
        if let d = type.plainDType { d.toFloat(src, count: blocks, into: out); return }
        let ts = type.typeSize, bs = type.blockSize
        for k in 0..<blocks {
            let p = src + k * ts
            let y = out + k * bs
            switch type {
            case .q4_0:
                let d = h(p, 0)
                for j in 0..<16 {
                    let q = b(p, 2 + j)
                    y[j] = d * Float(Int(q & 0x0F) - 8)
                    y[j + 16] = d * Float(Int(q >> 4) - 8)
                }
            case .q4_1:
                let d = h(p, 0), m = h(p, 2)
                for j in 0..<16 {
                    let q = b(p, 4 + j)
                    y[j] = d * Float(q & 0x0F) + m
                    y[j + 16] = d * Float(q >> 4) + m
                }
            case .q5_0:
                let d = h(p, 0)
                let qh = p.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
                for j in 0..<16 {
                    let q = b(p, 6 + j)
                    let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                    let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                    y[j] = d * Float(lo - 16)
                    y[j + 16] = d * Float(hi - 16)
                }
            case .q5_1:
                let d = h(p, 0), m = h(p, 2)
                let qh = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
                for j in 0..<16 {
                    let q = b(p, 8 + j)
                    let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                    let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                    y[j] = d * Float(lo) + m
                    y[j + 16] = d * Float(hi) + m
                }
            case .q8_0:
                let d = h(p, 0)
                for j in 0..<32 { y[j] = Float(Int8(bitPattern: b(p, 2 + j))) * d }
            case .q2_K:
                // scales[16], qs[64], d, dmin
                let d = h(p, 80), dmin = h(p, 82)
                for e in 0..<256 {
                    let half = e / 128, shift = (e % 128) / 32, l = e % 32
                    let q = (b(p, 16 + half * 32 + l) >> UInt8(2 * shift)) & 3
                    let sc = b(p, e / 16)
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    y[e] = dl * Float(q) - ml
                }
            case .q3_K:
                // hmask[32], qs[64], scales[12], d
                let d = h(p, 108)
                var scales = [Float](repeating: 0, count: 16)
                for i in 0..<16 {
                    let low = (b(p, 96 + i % 8) >> UInt8(4 * (i / 8))) & 0x0F
                    let high = (b(p, 104 + i % 4) >> UInt8(2 * (i / 4))) & 0x03
                    scales[i] = Float(Int(low | high << 4) - 32)
                }
                for e in 0..<256 {
                    let half = e / 128, shift = (e % 128) / 32, l = e % 32
                    let ql = Int((b(p, 32 + half * 32 + l) >> UInt8(2 * shift)) & 3)
                    let hbit = Int((b(p, e % 32) >> UInt8(e / 32)) & 1)
                    let q = ql - ((hbit ^ 1) << 2)
                    y[e] = (d * scales[e / 16]) * Float(q)
                }
            case .q4_K, .q5_K:
                // d, dmin, scales[12], (qh[32],) qs[128]
                let d = h(p, 0), dmin = h(p, 2)
                let qsOff = type == .q4_K ? 16 : 48
                for j in 0..<8 {
                    let (sc, mn) = scaleMin(p + 4, j)
                    let dj = d * Float(sc), mj = dmin * Float(mn)
                    let c = j / 2, s = j % 2
                    for l in 0..<32 {
                        var q = Int((b(p, qsOff + c * 32 + l) >> UInt8(4 * s)) & 0x0F)
                        if type == .q5_K { q |= Int((b(p, 16 + l) >> UInt8(j)) & 1) << 4 }
                        y[j * 32 + l] = dj * Float(q) - mj
                    }
                }
            case .q6_K:
                // ql[128], qh[64], scales[16] (int8), d
                let d = h(p, 208)
                for e in 0..<256 {
                    let half = e / 128, r = e % 128
                    let s = r / 64, k = r % 64
                    let lo = Int((b(p, half * 64 + k) >> UInt8(4 * s)) & 0x0F)
                    let t = r / 32, l = r % 32
                    let hi = Int((b(p, 128 + half * 32 + l) >> UInt8(2 * t)) & 0x03)
                    let q = (lo | hi << 4) - 32
                    let sc = Float(Int8(bitPattern: b(p, 192 + e / 16)))
                    y[e] = (d * sc) * Float(q)
                }
            default:
                break
            }
        }
    }

    /// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K block (12 packed bytes).
    @inline(__always)
    static func scaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (UInt8, UInt8) {
        if j < 4 { return (b(s, j) & 0x3F, b(s, j + 4) & 0x3F) }
        let sc = (b(s, j + 4) & 0x0F) | ((b(s, j - 4) >> 2) & 0x30)
        let mn = (b(s, j + 4) >> 4) | ((b(s, j) >> 2) & 0x30)
        return (sc, mn)
    }

    /// Rewrites one row of Q8_0/Q4_0/Q4_1 blocks as a Folio record of `type.losslessScheme`
    /// (values unchanged). Returns false when a block cannot be carried: a non-finite scale or
    /// minimum, a Q8_0 code of -128, or a Q4_0 minimum (-8 d) that overflows float16.
    static func folioRecord(_ type: GGMLType, _ src: UnsafeRawPointer, width: Int, into rec: UnsafeMutableRawPointer) -> Bool {
        let groups = width / 32
        switch type {
        case .q8_0:
            for g in 0..<groups {
                let p = src + g * 34
                // Folio's int8 codes are -127...127 with a finite scale.
                guard Float16(bitPattern: p.loadUnaligned(as: UInt16.self)).isFinite else { return false }
                for j in 0..<32 where b(p, 2 + j) == 0x80 { return false }
                rec.storeBytes(of: p.loadUnaligned(as: UInt16.self), toByteOffset: g * 2, as: UInt16.self)
                (rec + groups * 2 + g * 32).copyMemory(from: p + 2, byteCount: 32)
            }
        case .q4_0, .q4_1:
            let bsz = type.typeSize, qoff = type == .q4_0 ? 2 : 4
            for g in 0..<groups {
                let p = src + g * bsz
                let dBits = p.loadUnaligned(as: UInt16.self)
                guard Float16(bitPattern: dBits).isFinite else { return false }
                let minBits: UInt16
                if type == .q4_0 {
                    let m = Float16(bitPattern: dBits) * -8
                    guard m.isFinite else { return false }
                    minBits = m.bitPattern
                } else {
                    minBits = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
                    guard Float16(bitPattern: minBits).isFinite else { return false }
                }
                rec.storeBytes(of: dBits, toByteOffset: g * 4, as: UInt16.self)
                rec.storeBytes(of: minBits, toByteOffset: g * 4 + 2, as: UInt16.self)
                // ggml: value j in the low nibble of byte j, value j+16 in the high nibble.
                // Folio: value 2i in the low nibble of byte i, 2i+1 in the high nibble.
                let out = (rec + groups * 4 + g * 16).assumingMemoryBound(to: UInt8.self)
                for i in 0..<16 {
                    func nib(_ v: Int) -> UInt8 { v < 16 ? b(p, qoff + v) & 0x0F : b(p, qoff + v - 16) >> 4 }
                    out[i] = nib(2 * i) | nib(2 * i + 1) << 4
                }
            }
        default:
            return false
        }
        return true
    }
}
