import CFolioKernels

/// Symmetric 8-bit quantization of one group: `x ≈ scale * q`, q in [-127, 127].
///
/// The scale starts at max|x|/127 and is refined once by least squares on the chosen codes
/// (`scale = Σxq / Σq²`); whichever gives the smaller squared error is kept. The error is
/// measured with the scale as it will be stored (float16 for grouped schemes). The loops are
/// in the C target CFolioKernels, where clang vectorizes them.
enum Int8Kernel {
    static func quantize(_ x: UnsafeBufferPointer<Float>, codes: UnsafeMutablePointer<Int8>, halfScale: Bool) throws -> Float {
        let n = x.count
        let maxAbs = folio_max_abs(x.baseAddress, n)
        guard !maxAbs.isNaN else { throw RowCodecIssue.nonFinite(index: x.firstIndex { !$0.isFinite } ?? 0) }
        if maxAbs == 0 {
            codes.initialize(repeating: 0, count: n)
            return 0
        }
        guard maxAbs.isFinite else { throw RowCodecIssue.nonFinite(index: x.firstIndex { !$0.isFinite } ?? 0) }
        func stored(_ s: Float) -> Float { halfScale ? Float(Float16(s)) : s }
        let first = stored(maxAbs / 127)
        if !first.isFinite { throw RowCodecIssue.scaleOverflow(maxAbs: maxAbs) }
        var best = first
        if first > 0 {
            var err = 0.0, sxq = 0.0, sqq = 0.0
            folio_sym_pass(x.baseAddress, n, first, &err, &sxq, &sqq)
            if sqq > 0 {
                let next = stored(Float(sxq / sqq))
                if next.isFinite, next > 0, next != first {
                    var err2 = 0.0, a = 0.0, b = 0.0
                    folio_sym_pass(x.baseAddress, n, next, &err2, &a, &b)
                    if err2 < err { best = next }
                }
            }
        }
        folio_sym_codes(x.baseAddress, n, best, codes)
        return best
    }

    /// `out[i] = scale * codes[i]`, eight lanes at a time.
    @inline(__always)
    static func dequantize(_ codes: UnsafePointer<Int8>, count: Int, scale: Float, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<count { out[i] = scale * Float(codes[i]) }
    }
}
