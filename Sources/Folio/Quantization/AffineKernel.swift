import CFolioKernels

/// Affine quantization of one group: `x ≈ scale * q + min`, q in [0, levels] (15 for
/// 4-bit, 255 for 8-bit).
///
/// Plain min/max wastes levels on outliers. This fits the range to minimize squared error,
/// always measured after rounding scale and min to float16 (how they are stored). Every
/// starting range of a 5 x 5 grid (min/max moved inwards by 0 to 10 % of the range at
/// either end) gets one round: its codes, their error, and the least-squares refit of
/// (scale, min) to them. The three starts with the smallest errors then continue from their
/// refits for up to three more rounds. The best pair seen anywhere is kept
/// (`folio_affine_search`, in C).
///
/// The grid was chosen by squared error against cost (Tools/reference/affine_search.py): on
/// Gaussian, Student-t and all-MiniLM-L6-v2 groups of 32 it lowers the error by 1.6-2.5 %
/// against the earlier six fixed starts refined three rounds each, for at most 34 passes
/// over the group instead of 18.
enum AffineKernel {
    static func quantize(_ x: UnsafeBufferPointer<Float>, codes: UnsafeMutableBufferPointer<UInt8>, levels: Int) throws -> (scale: Float, min: Float) {
        let top = Float(levels)
        let n = x.count
        let maxAbs = folio_max_abs(x.baseAddress, n)
        guard maxAbs.isFinite else { throw RowCodecIssue.nonFinite(index: x.firstIndex { !$0.isFinite } ?? 0) }
        var lo: Float = 0, hi: Float = 0
        folio_min_max(x.baseAddress, n, &lo, &hi)
        guard Float(Float16(maxAbs)).isFinite, Float(Float16((hi - lo) / top)).isFinite else {
            throw RowCodecIssue.scaleOverflow(maxAbs: maxAbs)
        }
        if hi == lo {
            codes.initialize(repeating: 0)
            return (0, Float(Float16(lo)))
        }
        var best: (scale: Float, min: Float) = (0, 0)
        if folio_affine_search(x.baseAddress, n, lo, hi, top, &best.scale, &best.min) == 0 {
            // Degenerate range (for example smaller than float16 can resolve): plain min/max.
            best = (Swift.max(half((hi - lo) / top), Float(Float16.leastNonzeroMagnitude)), half(lo))
        }
        folio_affine_codes(x.baseAddress, n, best.scale, best.min, top, codes.baseAddress)
        return best
    }

    @inline(__always)
    static func half(_ v: Float) -> Float { Float(Float16(v)) }

    /// Unpacks `count` 4-bit codes (low nibble first) and applies `scale * q + min`.
    @inline(__always)
    static func dequantize4(_ packed: UnsafePointer<UInt8>, count: Int, scale: Float, min m: Float, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        let raw = UnsafeRawPointer(packed)
        let outRaw = UnsafeMutableRawPointer(out)
        while i + 16 <= count {
            let b = raw.loadUnaligned(fromByteOffset: i / 2, as: SIMD8<UInt8>.self)
            let lo = b & 0x0F
            let hi = b &>> 4
            let loF = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: lo))
            let hiF = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: hi))
            // Interleave: value 2k from lo[k], value 2k+1 from hi[k].
            let q = SIMD16<Float>(
                loF[0], hiF[0], loF[1], hiF[1], loF[2], hiF[2], loF[3], hiF[3],
                loF[4], hiF[4], loF[5], hiF[5], loF[6], hiF[6], loF[7], hiF[7])
            outRaw.storeBytes(of: q * scale + m, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            let byte = packed[i / 2]
            let q = (i & 1) == 0 ? byte & 0x0F : byte >> 4
            out[i] = scale * Float(q) + m
            i += 1
        }
    }
}

extension AffineKernel {
    /// `out[i] = scale * codes[i] + min` for 8-bit codes.
    @inline(__always)
    static func dequantize8(_ codes: UnsafePointer<UInt8>, count: Int, scale: Float, min m: Float, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        let raw = UnsafeRawPointer(codes)
        let outRaw = UnsafeMutableRawPointer(out)
        while i + 8 <= count {
            let q = raw.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt8>.self)
            let f = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q)) * scale + m
            outRaw.storeBytes(of: f, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            out[i] = scale * Float(codes[i]) + m
            i += 1
        }
    }
}
