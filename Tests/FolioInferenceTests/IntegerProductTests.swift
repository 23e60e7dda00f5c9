import Foundation
import Testing
import CFolioKernels
import CFolioMath

/// The integer matrix products of many inputs (folio_mm, prefill of integer-coded weights):
/// the inputs quantized as folio_matvec_prepare states, and every product, vector and
/// portable, against the reference sums of the matrix-vector kernels, for every integer kind
/// and group size, tails, row ranges, accumulation and dense, back-to-back and paged records.
@Suite struct IntegerProductTests {
    typealias Case = MatvecKernelTests.Case

    static let cases: [Case] = MatvecKernelTests.cases.filter { Int($0.kind) >= FOLIO_ROW_INT8 }

    /// Inputs of mixed scale, some blocks zero, for n inputs of `cols` values.
    static func inputs(_ n: Int, _ cols: Int, _ rng: inout MatvecKernelTests.Xorshift) -> [Float] {
        var x = (0..<(n * cols)).map { j -> Float in (rng.unit() * 2 - 1) * (j % 5 == 0 ? 4 : 0.5) }
        if cols > 64 { for j in 32..<64 { x[j] = 0 } }  // input 0's second block
        if n > 3 { for j in 0..<cols { x[3 * cols + j] = 0 } }  // input 3 all zero
        return x
    }

    @Test(arguments: cases) func productsMatchReference(_ c: Case) throws {
        var rng = MatvecKernelTests.Xorshift(s: 0xC0FF_EE12_3456_789B ^ UInt64(c.cols * 37 + Int(c.kind) * 11 + c.group))
        let rows = 29, size = MatvecKernelTests.recordSize(c)
        for (name, layout) in MatvecKernelTests.layouts {
            let (rpb, block, stride) = layout(size)
            var bytes = [UInt8](repeating: 0xA5, count: ((rows + rpb - 1) / rpb) * block + 64)
            for r in 0..<rows {
                let at = (r / rpb) * block + (r % rpb) * stride
                bytes.replaceSubrange(at..<(at + size), with: MatvecKernelTests.randomRecord(c, &rng).0)
            }
            for n in [1, 5, 16, 17, 40, 67] {
                let x = Self.inputs(n, c.cols, &rng)
                let prep = UnsafeMutableRawPointer.allocate(byteCount: folio_mm_inputs_size(n, c.cols), alignment: 64)
                let act = UnsafeMutableRawPointer.allocate(byteCount: folio_act_size(c.cols), alignment: 64)
                defer { prep.deallocate(); act.deallocate() }
                folio_mm_prepare(c.kind, x, n, c.cols, prep)
                var ref = [Float](repeating: 0, count: n * rows), mag = ref
                var vec = [Float](repeating: 0, count: n * rows), port = vec, acc = [Float](repeating: 2, count: n * rows)
                let (lo, hi) = (5, rows - 3)
                try bytes.withUnsafeBufferPointer { b in
                    var m = folio_matrix(kind: c.kind, group: c.group, base: b.baseAddress!, rows: rows, cols: c.cols, rows_per_block: rpb, block: block, stride: stride)
                    #expect(folio_mm_supported(&m) == 1)
                    var decoded = [Float](repeating: 0, count: rows * c.cols)
                    folio_matrix_decode(&m, 0, rows, &decoded)
                    x.withUnsafeBufferPointer { xb in
                        for t in 0..<n {
                            folio_act_prepare(xb.baseAddress! + t * c.cols, c.cols, act)
                            ref.withUnsafeMutableBufferPointer { folio_matvec_ref(&m, 0, rows, xb.baseAddress! + t * c.cols, act, $0.baseAddress! + t * rows, 0) }
                            for r in 0..<rows {
                                mag[t * rows + r] = Float((0..<c.cols).reduce(0.0) { $0 + abs(Double(decoded[r * c.cols + $1])) * (abs(Double(xb[t * c.cols + $1])) + 1e-3) })
                            }
                        }
                    }
                    // Results [input][row]: row r of input t at t * rows + r.
                    try #require(folio_mm(&m, 0, rows, n, prep, &vec, rows, 0) == 0)
                    try #require(folio_mm_portable(&m, 0, rows, n, prep, &port, rows, 0) == 0)
                    try #require(folio_mm(&m, lo, hi, n, prep, &acc, rows, 1) == 0)
                }
                for t in 0..<n {
                    for r in 0..<rows {
                        let i = t * rows + r
                        // Float32 sums against double, as the matrix-vector kernels: 1e-5 of Σ|terms|.
                        let tol = 1e-5 * Double(mag[i]) + 1e-30
                        #expect(abs(Double(vec[i]) - Double(ref[i])) <= tol, "\(name) n \(n) input \(t) row \(r): vector \(vec[i]) vs reference \(ref[i])")
                        #expect(abs(Double(port[i]) - Double(ref[i])) <= tol, "\(name) n \(n) input \(t) row \(r): portable \(port[i]) vs reference \(ref[i])")
                        if r >= lo && r < hi {
                            #expect(abs(Double(acc[i]) - (2 + Double(vec[i]))) <= tol + 2e-6, "\(name) n \(n) input \(t) row \(r): accumulate")
                        } else {
                            #expect(acc[i] == 2, "\(name) n \(n) input \(t) row \(r) outside the range was written")
                        }
                    }
                }
            }
        }
    }

    /// Each block of 32 of each input: step max|x| / L, q = clamp(rint(x · (L / max|x|)), -L, L)
    /// with L 32767 (32639 against int4 codes), zero past the end, and the float sum in order:
    /// what folio_act_prepare states, so prefill and decode compute the same quantities.
    @Test func preparedInputsFollowTheStatedQuantization() {
        var rng = MatvecKernelTests.Xorshift(s: 0x1234_5678_9ABC_DEF1)
        for kind in [FOLIO_ROW_INT8_GROUPS, FOLIO_ROW_INT4_GROUPS] {
            let levels = Float(kind == FOLIO_ROW_INT4_GROUPS ? 32639 : 32767)
            #expect(folio_mm_levels(Int32(kind)) == Int32(levels))
            for cols in [1, 17, 32, 33, 100, 768] {
                let n = 19
                var x = (0..<(n * cols)).map { j -> Float in
                    let u = rng.unit() * 2 - 1
                    switch j % 7 {
                    case 0: return u * 1e4
                    case 1: return Float(bitPattern: UInt32(rng.next() & 0x007F_FFFF))  // subnormal
                    case 2: return Float(Int(u * 64)) / 2
                    default: return u
                    }
                }
                for j in 0..<min(cols, 32) { x[2 * cols + j] = 0 }
                let prep = UnsafeMutableRawPointer.allocate(byteCount: folio_mm_inputs_size(n, cols), alignment: 64)
                defer { prep.deallocate() }
                // Two parts, as two threads would prepare them.
                folio_mm_prepare_part(Int32(kind), x, n, cols, prep, 0, 16)
                folio_mm_prepare_part(Int32(kind), x, n, cols, prep, 16, n)
                var bad = 0
                for t in 0..<n {
                    for b in 0..<((cols + 31) / 32) {
                        let vals = Array(x[(t * cols + b * 32)..<(t * cols + min(cols, b * 32 + 32))])
                        let amax = vals.map { abs($0) }.max()!
                        var sum: Float = 0
                        for v in vals { sum += v }
                        let inv = amax > 0 ? min(levels / amax, Float.greatestFiniteMagnitude) : 0
                        for i in 0..<32 {
                            var step: Float = 0, s: Float = 0
                            let q = folio_mm_input(prep, cols, t, b * 32 + i, &step, &s)
                            let want: Int16 = i < vals.count ? Int16(min(max(vals[i] * inv, -levels), levels).rounded(.toNearestOrEven)) : 0
                            if q != want || step != amax / levels || s != sum { bad += 1 }
                        }
                    }
                }
                #expect(bad == 0, "kind \(kind) cols \(cols): \(bad) values differ from the stated quantization")
            }
        }
    }

    /// Float kinds and groups that are not multiples of 32 are refused, not computed.
    @Test func otherMatricesAreRefused() {
        let bytes = [UInt8](repeating: 0, count: 4096)
        bytes.withUnsafeBufferPointer { b in
            for kind in [FOLIO_ROW_F32, FOLIO_ROW_F16, FOLIO_ROW_BF16] {
                var m = folio_matrix(kind: Int32(kind), group: 0, base: b.baseAddress!, rows: 2, cols: 64, rows_per_block: 1, block: 256, stride: 256)
                #expect(folio_mm_supported(&m) == 0)
                var y = [Float](repeating: 0, count: 4)
                #expect(folio_mm(&m, 0, 2, 2, b.baseAddress!, &y, 2, 0) == -1)
            }
            var m = folio_matrix(kind: Int32(FOLIO_ROW_INT4_GROUPS), group: 16, base: b.baseAddress!, rows: 2, cols: 64, rows_per_block: 1, block: 64, stride: 64)
            #expect(folio_mm_supported(&m) == 0)
        }
    }
}
