/// Why a row could not be encoded.
public enum RowCodecIssue: Error, Sendable, Equatable {
    case nonFinite(index: Int)
    case scaleOverflow(maxAbs: Float)
    case notEncodableFromFloat(DType)
}

/// Encodes rows of float32 values into a tensor's row records and decodes them back.
///
/// Record layouts (little-endian, see Formats/FOLIO.md section 6):
/// - `int8`:      float32 scale, then `width` int8 codes.
/// - `int8/gN`:   `width/N` float16 scales, then `width` int8 codes.
/// - `int4/gN`:   `width/N` pairs (float16 scale, float16 min), then `width/2` bytes; value
///                `2i` in the low nibble of byte `i`, value `2i+1` in the high nibble.
/// - `affine8/gN`: `width/N` pairs (float16 scale, float16 min), then `width` uint8 codes.
/// - `int3/gN`:   `width/N` pairs, then `3 * width/8` bytes: codes 8i..8i+7 in the 24-bit
///                little-endian word of bytes 3i..3i+2, code 8i+k in bits 3k..3k+2.
/// - `int2/gN`:   `width/N` pairs, then `width/4` bytes: code 4i+k in bits 2k..2k+1 of byte i.
/// - plain dtype: the row's values in that dtype.
public enum RowCodec {
    /// Encodes one row. `record` must hold `encoding.recordSize(width:)` bytes.
    public static func encode(_ encoding: Encoding, _ x: UnsafeBufferPointer<Float>, into record: UnsafeMutableRawPointer) throws {
        let width = x.count
        switch encoding {
        case let .plain(d):
            switch d {
            case .f32:
                for i in 0..<width { record.storeBytes(of: x[i], toByteOffset: i * 4, as: Float.self) }
            case .f16:
                for i in 0..<width { record.storeBytes(of: Convert.floatToF16(x[i]), toByteOffset: i * 2, as: UInt16.self) }
            case .bf16:
                for i in 0..<width { record.storeBytes(of: Convert.floatToBF16(x[i]), toByteOffset: i * 2, as: UInt16.self) }
            case .f64:
                for i in 0..<width { record.storeBytes(of: Double(x[i]), toByteOffset: i * 8, as: Double.self) }
            default:
                throw RowCodecIssue.notEncodableFromFloat(d)
            }
        case let .int8(group):
            // The kernel rejects NaN and infinity (its max |x| is NaN or infinite).
            if let group {
                let groups = width / group
                let codes = (record + groups * 2).assumingMemoryBound(to: Int8.self)
                for g in 0..<groups {
                    let part = UnsafeBufferPointer(rebasing: x[(g * group)..<((g + 1) * group)])
                    let s = try Int8Kernel.quantize(part, codes: codes + g * group, halfScale: true)
                    record.storeBytes(of: Convert.floatToF16(s), toByteOffset: g * 2, as: UInt16.self)
                }
            } else {
                let codes = (record + 4).assumingMemoryBound(to: Int8.self)
                let s = try Int8Kernel.quantize(x, codes: codes, halfScale: false)
                record.storeBytes(of: s, toByteOffset: 0, as: Float.self)
            }
        case let .int4(group), let .affine8(group):
            // The kernel rejects NaN and infinity.
            let is8 = if case .affine8 = encoding { true } else { false }
            let groups = width / group
            let packed = (record + groups * 4).assumingMemoryBound(to: UInt8.self)
            var q = [UInt8](repeating: 0, count: group)
            for g in 0..<groups {
                let part = UnsafeBufferPointer(rebasing: x[(g * group)..<((g + 1) * group)])
                let (s, m) = try q.withUnsafeMutableBufferPointer { qb throws in
                    try AffineKernel.quantize(part, codes: qb, levels: is8 ? 255 : 15)
                }
                record.storeBytes(of: Convert.floatToF16(s), toByteOffset: g * 4, as: UInt16.self)
                record.storeBytes(of: Convert.floatToF16(m), toByteOffset: g * 4 + 2, as: UInt16.self)
                if is8 {
                    for i in 0..<group { packed[g * group + i] = q[i] }
                } else {
                    let base = g * group / 2
                    for i in 0..<(group / 2) {
                        packed[base + i] = q[2 * i] | (q[2 * i + 1] << 4)
                    }
                }
            }
        case let .int3(group), let .int2(group):
            let bits = if case .int3 = encoding { 3 } else { 2 }
            let groups = width / group
            let packed = (record + groups * 4).assumingMemoryBound(to: UInt8.self)
            var q = [UInt8](repeating: 0, count: group)
            for g in 0..<groups {
                let part = UnsafeBufferPointer(rebasing: x[(g * group)..<((g + 1) * group)])
                let (s, m) = try q.withUnsafeMutableBufferPointer { qb throws in
                    try AffineKernel.quantize(part, codes: qb, levels: (1 << bits) - 1)
                }
                record.storeBytes(of: Convert.floatToF16(s), toByteOffset: g * 4, as: UInt16.self)
                record.storeBytes(of: Convert.floatToF16(m), toByteOffset: g * 4 + 2, as: UInt16.self)
                Self.pack(q, bits: bits, into: packed + g * group * bits / 8)
            }
        }
    }

    /// Packs codes of `bits` (2 or 3) bits: 2-bit four to a byte, 3-bit eight to three bytes
    /// (a 24-bit little-endian word), the first code in the lowest bits.
    static func pack(_ q: [UInt8], bits: Int, into out: UnsafeMutablePointer<UInt8>) {
        let perWord = bits == 3 ? 8 : 4, wordBytes = bits == 3 ? 3 : 1
        for w in 0..<(q.count / perWord) {
            var word: UInt32 = 0
            for k in 0..<perWord { word |= UInt32(q[w * perWord + k]) << UInt32(bits * k) }
            for b in 0..<wordBytes { out[w * wordBytes + b] = UInt8(truncatingIfNeeded: word >> UInt32(8 * b)) }
        }
    }

    /// The `count` codes of `bits` bits packed at `packed`, applied as `scale * q + min`
    /// (the product rounded to float32, then the sum: FOLIO.md 6.3).
    static func unpack(_ packed: UnsafePointer<UInt8>, bits: Int, count: Int, scale: Float, min m: Float, into out: UnsafeMutablePointer<Float>) {
        let perWord = bits == 3 ? 8 : 4, wordBytes = bits == 3 ? 3 : 1
        let mask = UInt32((1 << bits) - 1)
        for w in 0..<(count / perWord) {
            var word: UInt32 = 0
            for b in 0..<wordBytes { word |= UInt32(packed[w * wordBytes + b]) << UInt32(8 * b) }
            for k in 0..<perWord {
                let q = Float((word >> UInt32(bits * k)) & mask)
                let p = scale * q
                out[w * perWord + k] = p + m
            }
        }
    }

    /// Decodes one row record into `width` floats.
    public static func decode(_ encoding: Encoding, record: UnsafeRawPointer, width: Int, into out: UnsafeMutablePointer<Float>) {
        switch encoding {
        case let .plain(d):
            d.toFloat(record, count: width, into: out)
        case let .int8(group):
            if let group {
                let groups = width / group
                let codes = (record + groups * 2).assumingMemoryBound(to: Int8.self)
                for g in 0..<groups {
                    let s = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 2, as: UInt16.self))
                    Int8Kernel.dequantize(codes + g * group, count: group, scale: s, into: out + g * group)
                }
            } else {
                let s = record.loadUnaligned(fromByteOffset: 0, as: Float.self)
                Int8Kernel.dequantize((record + 4).assumingMemoryBound(to: Int8.self), count: width, scale: s, into: out)
            }
        case let .int4(group):
            let groups = width / group
            let packed = (record + groups * 4).assumingMemoryBound(to: UInt8.self)
            for g in 0..<groups {
                let s = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4, as: UInt16.self))
                let m = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4 + 2, as: UInt16.self))
                AffineKernel.dequantize4(packed + g * group / 2, count: group, scale: s, min: m, into: out + g * group)
            }
        case let .affine8(group):
            let groups = width / group
            let codes = (record + groups * 4).assumingMemoryBound(to: UInt8.self)
            for g in 0..<groups {
                let s = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4, as: UInt16.self))
                let m = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4 + 2, as: UInt16.self))
                AffineKernel.dequantize8(codes + g * group, count: group, scale: s, min: m, into: out + g * group)
            }
        case let .int3(group), let .int2(group):
            let bits = if case .int3 = encoding { 3 } else { 2 }
            let groups = width / group
            let packed = (record + groups * 4).assumingMemoryBound(to: UInt8.self)
            for g in 0..<groups {
                let s = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4, as: UInt16.self))
                let m = Convert.f16ToFloat(record.loadUnaligned(fromByteOffset: g * 4 + 2, as: UInt16.self))
                unpack(packed + g * group * bits / 8, bits: bits, count: group, scale: s, min: m, into: out + g * group)
            }
        }
    }
}
