import CFolioKernels

/// Scalar conversions between storage types and Float, bit-exact where the format allows.
public enum Convert {
    @inline(__always)
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Round-to-nearest-even; NaN stays NaN (quiet).
    @inline(__always)
    public static func floatToBF16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inline(__always)
    public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    @inline(__always)
    public static func floatToF16(_ x: Float) -> UInt16 {
        Float16(x).bitPattern
    }

    /// OCP FP8 E4M3 (no infinities; S.1111.111 is NaN), bias 7.
    public static func f8e4m3ToFloat(_ b: UInt8) -> Float {
        let sign: Float = (b & 0x80) != 0 ? -1 : 1
        let e = Int((b >> 3) & 0x0F)
        let m = Float(b & 0x07)
        if e == 0x0F && (b & 0x07) == 0x07 { return .nan }
        if e == 0 { return sign * m / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }

    /// FP8 E5M2 is the upper byte of an IEEE half.
    public static func f8e5m2ToFloat(_ b: UInt8) -> Float {
        f16ToFloat(UInt16(b) << 8)
    }
}

extension DType {
    /// Converts `count` elements starting at `src` to Float (integers and booleans by value).
    public func toFloat(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch self {
        case .f32:
            for i in 0..<count { dst[i] = src.loadUnaligned(fromByteOffset: i * 4, as: Float.self) }
        case .f16:
            for i in 0..<count { dst[i] = Convert.f16ToFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .bf16:
            if Int(bitPattern: src) % 2 == 0 {
                folio_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self), count, dst)
            } else {
                for i in 0..<count { dst[i] = Convert.bf16ToFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            }
        case .f64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .f8e4m3:
            for i in 0..<count { dst[i] = Convert.f8e4m3ToFloat(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .f8e5m2:
            for i in 0..<count { dst[i] = Convert.f8e5m2ToFloat(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool, .u8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .i8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .u16:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .i16:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
        case .u32:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
        case .i32:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
        case .u64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        case .i64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
        }
    }
}
