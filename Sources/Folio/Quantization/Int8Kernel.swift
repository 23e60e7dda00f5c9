/// Symmetric 8-bit quantization of one group: `x ≈ scale * q`, q in [-127, 127].
///
/// The scale starts at max|x|/127 and is then refined by least squares on the chosen codes
/// (`scale = Σxq / Σq²`), keeping whichever scale gives the smaller squared error. The
/// error is measured with the scale as it will be stored (float16 for grouped schemes).
enum Int8Kernel {
    static func quantize(_ x: UnsafeBufferPointer<Float>, codes: UnsafeMutablePointer<Int8>, halfScale: Bool) throws -> Float {
        var maxAbs: Float = 0
        for v in x { maxAbs = Swift.max(maxAbs, abs(v)) }
        if maxAbs == 0 {
            for i in 0..<x.count { codes[i] = 0 }
            return 0
        }
        func stored(_ s: Float) -> Float { halfScale ? Float(Float16(s)) : s }
        let first = stored(maxAbs / 127)
        if !first.isFinite { throw RowCodecIssue.scaleOverflow(maxAbs: maxAbs) }
        var best = first
        var bestErr = error(x, scale: first)
        var s = first
        for _ in 0..<2 {
            // Least-squares scale for the codes that `s` produces.
            var sxq: Double = 0, sqq: Double = 0
            let inv = s > 0 ? 1 / s : 0
            for v in x {
                let q = Swift.min(127, Swift.max(-127, (v * inv).rounded(.toNearestOrEven)))
                sxq += Double(v) * Double(q)
                sqq += Double(q) * Double(q)
            }
            guard sqq > 0 else { break }
            let next = stored(Float(sxq / sqq))
            guard next.isFinite, next > 0, next != s else { break }
            let e = error(x, scale: next)
            if e < bestErr { best = next; bestErr = e }
            s = next
        }
        let inv: Float = best > 0 ? 1 / best : 0
        for i in 0..<x.count {
            codes[i] = Int8(Swift.min(127, Swift.max(-127, (x[i] * inv).rounded(.toNearestOrEven))))
        }
        return best
    }

    private static func error(_ x: UnsafeBufferPointer<Float>, scale s: Float) -> Double {
        guard s > 0 else { return .infinity }
        let inv = 1 / s
        var e: Double = 0
        for v in x {
            let q = Swift.min(127, Swift.max(-127, (v * inv).rounded(.toNearestOrEven)))
            let d = Double(v - s * q)
            e += d * d
        }
        return e
    }

    /// `out[i] = scale * codes[i]`, eight lanes at a time.
    @inline(__always)
    static func dequantize(_ codes: UnsafePointer<Int8>, count: Int, scale: Float, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        let raw = UnsafeRawPointer(codes)
        let outRaw = UnsafeMutableRawPointer(out)
        while i + 8 <= count {
            let q = raw.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)
            let f = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: q)) * scale
            outRaw.storeBytes(of: f, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            out[i] = scale * Float(codes[i])
            i += 1
        }
    }
}

