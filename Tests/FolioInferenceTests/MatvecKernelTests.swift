import Foundation
import Testing
import CFolioKernels
import CFolioMath

/// The matrix-vector kernels of every encoding, vector and portable, against the reference
/// (the same sums in double) and against the exact product of the decoded weights, on random
/// records of several widths (tails included) in dense, back-to-back and paged addressing.
@Suite struct MatvecKernelTests {
    struct Case: CustomStringConvertible {
        let kind: Int32, group: Int, cols: Int
        var description: String { "kind \(kind) group \(group) cols \(cols)" }
    }

    static let cases: [Case] = {
        var c: [Case] = []
        for k in [1, 7, 31, 32, 33, 100, 256, 1000] {
            for kind in [FOLIO_ROW_F32, FOLIO_ROW_F16, FOLIO_ROW_BF16, FOLIO_ROW_INT8] { c.append(Case(kind: Int32(kind), group: 0, cols: k)) }
        }
        for (g, k) in [(32, 32), (32, 96), (32, 1024), (32, 1120), (64, 192), (128, 768), (256, 512)] {
            for kind in [FOLIO_ROW_INT8_GROUPS, FOLIO_ROW_INT4_GROUPS, FOLIO_ROW_AFFINE8_GROUPS] { c.append(Case(kind: Int32(kind), group: g, cols: k)) }
        }
        return c
    }()

    struct Xorshift { var s: UInt64; mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) } }

    static func recordSize(_ c: Case) -> Int {
        let g = c.group > 0 ? c.cols / c.group : 0
        switch Int(c.kind) {
        case FOLIO_ROW_F32: return 4 * c.cols
        case FOLIO_ROW_F16, FOLIO_ROW_BF16: return 2 * c.cols
        case FOLIO_ROW_INT8: return 4 + c.cols
        case FOLIO_ROW_INT8_GROUPS: return 2 * g + c.cols
        case FOLIO_ROW_INT4_GROUPS: return 4 * g + c.cols / 2
        default: return 4 * g + c.cols
        }
    }

    /// A random record and its decoded values (s·q + m in float32, as the storage layer decodes).
    static func randomRecord(_ c: Case, _ rng: inout Xorshift) -> ([UInt8], [Double]) {
        var rec = [UInt8](repeating: 0, count: recordSize(c)), w = [Double](repeating: 0, count: c.cols)
        func put<T>(_ v: T, at o: Int) { withUnsafeBytes(of: v) { for (i, b) in $0.enumerated() { rec[o + i] = b } } }
        let k = c.cols, g = c.group > 0 ? k / c.group : 0
        switch Int(c.kind) {
        case FOLIO_ROW_F32:
            for j in 0..<k { let v = rng.unit() * 2 - 1; put(v, at: 4 * j); w[j] = Double(v) }
        case FOLIO_ROW_F16:
            for j in 0..<k { let v = Float16(rng.unit() * 2 - 1); put(v, at: 2 * j); w[j] = Double(Float(v)) }
        case FOLIO_ROW_BF16:
            for j in 0..<k { let bits = UInt16((rng.unit() * 2 - 1).bitPattern >> 16); put(bits, at: 2 * j); w[j] = Double(Float(bitPattern: UInt32(bits) << 16)) }
        case FOLIO_ROW_INT8:
            let s = rng.unit() * 0.01 + 1e-4
            put(s, at: 0)
            for j in 0..<k { let q = Int8(Int(rng.next() % 255) - 127); rec[4 + j] = UInt8(bitPattern: q); w[j] = Double(s * Float(q)) }
        case FOLIO_ROW_INT8_GROUPS:
            for gi in 0..<g {
                let s = Float16(rng.unit() * 0.01 + 1e-4); put(s, at: 2 * gi)
                for j in gi * c.group..<(gi + 1) * c.group {
                    let q = Int8(Int(rng.next() % 256) - 128)  // -128 included: the kernels must not assume -127
                    rec[2 * g + j] = UInt8(bitPattern: q); w[j] = Double(Float(s) * Float(q))
                }
            }
        case FOLIO_ROW_INT4_GROUPS:
            for gi in 0..<g {
                let s = Float16(rng.unit() * 0.1 + 1e-3), m = Float16(rng.unit() - 0.5); put(s, at: 4 * gi); put(m, at: 4 * gi + 2)
                for j in gi * c.group..<(gi + 1) * c.group {
                    let q = UInt8(rng.next() % 16)
                    rec[4 * g + j / 2] |= q << (4 * UInt8(j % 2)); w[j] = Double(Float(s) * Float(q) + Float(m))
                }
            }
        default:
            for gi in 0..<g {
                let s = Float16(rng.unit() * 0.01 + 1e-4), m = Float16(rng.unit() - 0.5); put(s, at: 4 * gi); put(m, at: 4 * gi + 2)
                for j in gi * c.group..<(gi + 1) * c.group {
                    let q = UInt8(rng.next() % 256); rec[4 * g + j] = q; w[j] = Double(Float(s) * Float(q) + Float(m))
                }
            }
        }
        return (rec, w)
    }

    /// Addressing: (rows per block, block, stride) for `rows` records of `size` bytes.
    static let layouts: [(String, @Sendable (Int) -> (Int, Int, Int))] = [
        ("dense", { size in (1, size, size) }),
        ("records", { size in (1, (size + 63) & ~63, (size + 63) & ~63) }),
        ("paged", { size in let st = (size + 3) & ~3; return (3, 3 * st + 40, st) }),
    ]

    @Test(arguments: cases) func kernelsMatchReference(_ c: Case) throws {
        var rng = Xorshift(s: 0x9E37_79B9_7F4A_7C15 ^ UInt64(c.cols * 131 + Int(c.kind) * 7 + c.group))
        let rows = 37
        for (name, layout) in Self.layouts {
            let size = Self.recordSize(c)
            let (rpb, block, stride) = layout(size)
            let total = ((rows + rpb - 1) / rpb) * block
            var bytes = [UInt8](repeating: 0xA5, count: total + 64)  // 0xA5 in the padding: a kernel that reads it shows
            var deq: [[Double]] = []
            for r in 0..<rows {
                let (rec, w) = Self.randomRecord(c, &rng)
                let at = (r / rpb) * block + (r % rpb) * stride
                bytes.replaceSubrange(at..<(at + size), with: rec)
                deq.append(w)
            }
            // Inputs of mixed scale with some zero blocks.
            var x = (0..<c.cols).map { j -> Float in (rng.unit() * 2 - 1) * (j % 5 == 0 ? 4 : 0.5) }
            if c.cols > 64 { for j in 32..<64 { x[j] = 0 } }
            let act = UnsafeMutableRawPointer.allocate(byteCount: folio_act_size(c.cols), alignment: 64)
            defer { act.deallocate() }
            folio_act_prepare(x, c.cols, act)
            var ref = [Float](repeating: 0, count: rows), vec = ref, port = ref, acc = [Float](repeating: 1, count: rows)
            var decoded = [Float](repeating: 0, count: rows * c.cols)
            bytes.withUnsafeBufferPointer { b in
                var m = folio_matrix(kind: c.kind, group: c.group, base: b.baseAddress!, rows: rows, cols: c.cols, rows_per_block: rpb, block: block, stride: stride)
                folio_matvec_ref(&m, 0, rows, x, act, &ref, 0)
                folio_matvec(&m, 0, rows, x, act, &vec, 0)
                folio_matvec_portable(&m, 0, rows, x, act, &port, 0)
                folio_matvec(&m, 3, rows - 2, x, act, &acc, 1)
                folio_matrix_decode(&m, 0, rows, &decoded)
            }
            // The quantized input: value j is d_b·q_j; |x_j - d_b·q_j| <= d_b / 2, with
            // d_b = max|x| / 32767 (int16 inputs) or / 32639 (int4's two int8 digits, folio_matvec.h).
            let levels: Double = Int(c.kind) == FOLIO_ROW_INT4_GROUPS ? 32639 : 32767
            let steps = (0..<((c.cols + 31) / 32)).map { b in Double(x[(b * 32)..<min(c.cols, b * 32 + 32)].map { abs($0) }.max()!) / levels }
            let intKind = Int(c.kind) >= FOLIO_ROW_INT8
            for r in 0..<rows {
                let exact = zip(deq[r], x).reduce(0.0) { $0 + $1.0 * Double($1.1) }
                let mag = zip(deq[r], x).reduce(0.0) { $0 + abs($1.0) * (abs(Double($1.1)) + 1e-3) }
                // Float32 sums of k terms against double: stated bound 1e-5 of Σ|terms|.
                let tol = 1e-5 * mag + 1e-30
                #expect(abs(Double(vec[r]) - Double(ref[r])) <= tol, "\(name) row \(r): vector \(vec[r]) vs reference \(ref[r])")
                #expect(abs(Double(port[r]) - Double(ref[r])) <= tol, "\(name) row \(r): portable \(port[r]) vs reference \(ref[r])")
                if r >= 3 && r < rows - 2 {
                    #expect(abs(Double(acc[r]) - (1 + Double(vec[r]))) <= tol + 1e-6, "\(name) row \(r): accumulate")
                } else {
                    #expect(acc[r] == 1, "\(name) row \(r) outside the range was written")
                }
                // Against the exact product of the stored weights: what quantizing x can cost.
                var bound = tol
                if intKind {
                    // |Σ s q_w (x - d q_x)| <= Σ |w - m| d_b / 2 (the min terms use the float sums of x).
                    for j in 0..<c.cols {
                        let mins: Double = Int(c.kind) == FOLIO_ROW_INT4_GROUPS || Int(c.kind) == FOLIO_ROW_AFFINE8_GROUPS
                            ? Double(Float16(bitPattern: UInt16(bytes[(r / rpb) * block + (r % rpb) * stride + 4 * (j / c.group) + 2])
                                             | UInt16(bytes[(r / rpb) * block + (r % rpb) * stride + 4 * (j / c.group) + 3]) << 8)) : 0
                        bound += abs(deq[r][j] - mins) * steps[j / 32] / 2 * 1.0001
                    }
                } else if Int(c.kind) == FOLIO_ROW_BF16 {
                    bound += mag * pow(2, -16)
                }
                #expect(abs(Double(ref[r]) - exact) <= bound, "\(name) row \(r): reference \(ref[r]) vs exact \(exact), bound \(bound)")
                for j in 0..<c.cols {
                    #expect(Double(decoded[r * c.cols + j]) == deq[r][j], "\(name) row \(r) value \(j) decoded \(decoded[r * c.cols + j]) vs \(deq[r][j])")
                }
            }
        }
    }

    /// Several inputs at once (a speculative pass, a short prompt): each input's values equal
    /// bit for bit what folio_matvec gives it alone, for every count of inputs up to 7 (one,
    /// two and three share a pass over the records; more go in groups over 16 records at a
    /// time), rows outside the range untouched, accumulation onto what is there.
    @Test(arguments: cases) func batchEqualsSingleInputs(_ c: Case) throws {
        var rng = Xorshift(s: 0x51ED_27A1_0B3F_9C47 ^ UInt64(c.cols * 17 + Int(c.kind) * 3 + c.group))
        let rows = 41, size = Self.recordSize(c), stride = (size + 63) & ~63
        var bytes = [UInt8](repeating: 0xA5, count: rows * stride + 64)
        for r in 0..<rows { bytes.replaceSubrange((r * stride)..<(r * stride + size), with: Self.randomRecord(c, &rng).0) }
        let actSize = folio_act_size(c.cols)
        for n in 1...7 {
            let x = (0..<(n * c.cols)).map { j -> Float in (rng.unit() * 2 - 1) * (j % 7 == 0 ? 3 : 0.25) }
            let acts = UnsafeMutableRawPointer.allocate(byteCount: actSize * n, alignment: 64)
            defer { acts.deallocate() }
            x.withUnsafeBufferPointer { xb in
                for i in 0..<n { folio_act_prepare(xb.baseAddress! + i * c.cols, c.cols, acts + i * actSize) }
            }
            var single = [Float](repeating: 0, count: n * rows), batch = [Float](repeating: 0.5, count: n * rows)
            let (lo, hi) = (2, rows - 3)
            bytes.withUnsafeBufferPointer { b in
                var m = folio_matrix(kind: c.kind, group: c.group, base: b.baseAddress!, rows: rows, cols: c.cols, rows_per_block: 1, block: stride, stride: stride)
                x.withUnsafeBufferPointer { xb in
                    single.withUnsafeMutableBufferPointer { sb in
                        for i in 0..<n { folio_matvec(&m, 0, rows, xb.baseAddress! + i * c.cols, acts + i * actSize, sb.baseAddress! + i * rows, 0) }
                    }
                    folio_matvec_batch(&m, lo, hi, n, xb.baseAddress!, c.cols, acts, actSize, &batch, rows, 1)
                }
            }
            for i in 0..<n {
                for r in 0..<rows {
                    let want: Float = r >= lo && r < hi ? 0.5 + single[i * rows + r] : 0.5
                    #expect(batch[i * rows + r] == want, "\(n) inputs: input \(i) row \(r) \(batch[i * rows + r]) vs \(want)")
                }
            }
        }
    }

    /// The vector preparation of inputs writes the same bytes as the plain loops, for widths
    /// with and without a tail block, odd and even block counts, zero blocks, values far
    /// apart in scale, subnormals, and halfway cases of the roundings.
    @Test func preparedInputsEqualThePortableLoops() {
        var rng = Xorshift(s: 0x7F4A_7C15_9E37_79B9)
        for cols in [1, 5, 16, 17, 31, 32, 33, 48, 64, 96, 288, 300, 768, 1000] {
            for trial in 0..<4 {
                var x = (0..<cols).map { j -> Float in
                    let u = rng.unit() * 2 - 1
                    switch (j + trial) % 9 {
                    case 0: return u * 1e-3
                    case 1: return u * 1e4
                    case 2: return Float(bitPattern: UInt32(rng.next() & 0x007F_FFFF))  // subnormal
                    case 3: return Float(Int(u * 64)) / 2  // halves: rounding ties
                    default: return u
                    }
                }
                if cols > 40, trial == 1 { for j in 0..<32 { x[j] = 0 } }
                let size = folio_act_size(cols)
                let a = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), b = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
                defer { a.deallocate(); b.deallocate() }
                memset(a, 0x5A, size); memset(b, 0x5A, size)
                folio_act_prepare(x, cols, a)
                folio_act_prepare_portable(x, cols, b)
                let same = memcmp(a, b, size) == 0
                #expect(same, "cols \(cols) trial \(trial): prepared inputs differ")
            }
        }
    }
}
