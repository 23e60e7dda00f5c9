import Testing
@testable import Folio

/// Reference decoders written from the spec (Formats/FOLIO.md section 6), one value at a
/// time, to check the vectorized ones.
enum ReferenceDecode {
    static func f16(_ p: UnsafeRawPointer, _ off: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: off, as: UInt16.self)))
    }

    static func decode(_ e: Encoding, _ rec: [UInt8], width: Int) -> [Float] {
        rec.withUnsafeBytes { b in
            let p = b.baseAddress!
            switch e {
            case .int8(nil):
                let s = p.loadUnaligned(fromByteOffset: 0, as: Float.self)
                return (0..<width).map { s * Float(Int8(bitPattern: rec[4 + $0])) }
            case let .int8(g?):
                let G = width / g
                return (0..<width).map { i in f16(p, 2 * (i / g)) * Float(Int8(bitPattern: rec[2 * G + i])) }
            case let .int4(g):
                let G = width / g
                return (0..<width).map { i in
                    let byte = rec[4 * G + i / 2]
                    let q = i % 2 == 0 ? byte & 0xF : byte >> 4
                    return f16(p, 4 * (i / g)) * Float(q) + f16(p, 4 * (i / g) + 2)
                }
            case let .affine8(g):
                let G = width / g
                return (0..<width).map { i in f16(p, 4 * (i / g)) * Float(rec[4 * G + i]) + f16(p, 4 * (i / g) + 2) }
            case let .int3(g), let .int2(g):
                // The packed bytes read as one little-endian bit string: code i in bits [b*i, b*i + b).
                let b = if case .int3 = e { 3 } else { 2 }
                let G = width / g
                return (0..<width).map { i in
                    var q = 0
                    for k in 0..<b {
                        let bit = b * i + k
                        if rec[4 * G + bit / 8] & (1 << (bit % 8)) != 0 { q |= 1 << k }
                    }
                    return f16(p, 4 * (i / g)) * Float(q) + f16(p, 4 * (i / g) + 2)
                }
            case let .plain(d):
                var out = [Float](repeating: 0, count: width)
                d.toFloat(p, count: width, into: &out)
                return out
            }
        }
    }
}

func relativeRMSE(_ x: [Float], _ y: [Float]) -> Double {
    var e = 0.0, r = 0.0
    for (a, b) in zip(x, y) { e += Double(a - b) * Double(a - b); r += Double(a) * Double(a) }
    return (e / r).squareRoot()
}

func encodeDecode(_ e: Encoding, _ x: [Float]) throws -> (record: [UInt8], values: [Float]) {
    var rec = [UInt8](repeating: 0xAA, count: e.recordSize(width: x.count)!)
    try x.withUnsafeBufferPointer { xb in try rec.withUnsafeMutableBytes { try RowCodec.encode(e, xb, into: $0.baseAddress!) } }
    var out = [Float](repeating: .nan, count: x.count)
    rec.withUnsafeBytes { RowCodec.decode(e, record: $0.baseAddress!, width: x.count, into: &out) }
    return (rec, out)
}

@Suite struct QuantizationTests {
    static let schemes: [Encoding] = [.int8(group: nil)] + Encoding.allowedGroups.flatMap {
        [.int8(group: $0), .int4(group: $0), .affine8(group: $0), .int3(group: $0), .int2(group: $0)]
    }

    @Test func recordSizesFollowTheSpec() {
        #expect(Encoding.int8(group: nil).recordSize(width: 256) == 260)
        #expect(Encoding.int8(group: 32).recordSize(width: 256) == 256 + 16)
        #expect(Encoding.int4(group: 32).recordSize(width: 256) == 32 + 128)
        #expect(Encoding.affine8(group: 64).recordSize(width: 256) == 16 + 256)
        #expect(Encoding.int3(group: 32).recordSize(width: 256) == 32 + 96)
        #expect(Encoding.int2(group: 16).recordSize(width: 256) == 64 + 64)
        #expect(Encoding.plain(.bf16).recordSize(width: 256) == 512)
        #expect(MemoryLayout<Float16>.size == 2)
    }

    @Test func schemeNamesParse() {
        #expect(Encoding(name: "int4") == .int4(group: 32))
        #expect(Encoding(name: "int8/g128") == .int8(group: 128))
        #expect(Encoding(name: "int4/g48") == nil)
        #expect(Encoding(name: "int4/g032") == nil)
        #expect(Encoding(name: "f16") == .plain(.f16))
        #expect(Encoding(name: "int3/g64") == .int3(group: 64) && Encoding(name: "int2/g16") == .int2(group: 16))
        #expect(Encoding(name: "int3") == nil && Encoding(name: "int2/g8") == nil)
    }

    @Test func gaussianErrorIsWithinBounds() throws {
        var g = Gaussian(seed: 1)
        var x: [Float] = [], y8: [Float] = [], y4: [Float] = []
        for _ in 0..<512 {
            let row = g.values(256)
            x += row
            y8 += try encodeDecode(.int8(group: nil), row).values
            y4 += try encodeDecode(.int4(group: 32), row).values
        }
        #expect(relativeRMSE(x, y8) <= 0.008)
        #expect(relativeRMSE(x, y4) <= 0.09)
    }

    @Test(arguments: QuantizationTests.schemes)
    func vectorDecodeMatchesReference(_ e: Encoding) throws {
        var g = Gaussian(seed: 7)
        for width in [256, 512, 1024] {
            var row = g.values(width)
            row[3] = 40  // an outlier
            let (rec, fast) = try encodeDecode(e, row)
            let ref = ReferenceDecode.decode(e, rec, width: width)
            #expect(fast == ref)
        }
    }

    @Test(arguments: QuantizationTests.schemes)
    func errorIsNoWorseThanPlainMinMax(_ e: Encoding) throws {
        // The range search must never lose to the plain min/max (or max|x|) choice it starts from.
        var g = Gaussian(seed: 11)
        for _ in 0..<50 {
            let row = g.values(256)
            let (_, y) = try encodeDecode(e, row)
            let naive = naiveDecode(e, row)
            #expect(sqErr(row, y) <= sqErr(row, naive) * (1 + 1e-6))
        }
    }

    func sqErr(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } }

    func naiveDecode(_ e: Encoding, _ x: [Float]) -> [Float] {
        func half(_ v: Float) -> Float { Float(Float16(v)) }
        switch e {
        case .int8(nil):
            let s = x.map(abs).max()! / 127
            return x.map { s * ($0 / s).rounded() }
        case let .int8(g?):
            return stride(from: 0, to: x.count, by: g).flatMap { i -> [Float] in
                let part = Array(x[i..<(i + g)]); let s = half(part.map(abs).max()! / 127)
                return part.map { s * min(127, max(-127, ($0 / s).rounded())) }
            }
        case let .int4(g), let .affine8(g), let .int3(g), let .int2(g):
            let top: Float = switch e { case .int4: 15; case .int3: 7; case .int2: 3; default: 255 }
            return stride(from: 0, to: x.count, by: g).flatMap { i -> [Float] in
                let part = Array(x[i..<(i + g)]); let lo = half(part.min()!); let s = half((part.max()! - part.min()!) / top)
                return part.map { s * min(top, max(0, (($0 - lo) / s).rounded())) + lo }
            }
        case .plain: return x
        }
    }

    @Test func zeroRowsAreExactAndConstantRowsNearlySo() throws {
        for e in QuantizationTests.schemes {
            #expect(try encodeDecode(e, [Float](repeating: 0, count: 256)).values == [Float](repeating: 0, count: 256))
            let c = try encodeDecode(e, [Float](repeating: 0.3, count: 256)).values
            if case .int8 = e {
                // A float16 scale cannot always hit 0.3/q exactly; the error stays below one float16 ulp.
                #expect(c.allSatisfy { abs($0 - 0.3) <= 0.3 / 1024 })
            } else {
                // Affine schemes store the value itself as the minimum (float16-rounded).
                #expect(c == [Float](repeating: Float(Float16(0.3)), count: 256))
            }
        }
    }

    @Test func nonFiniteValuesAreRejected() {
        var row = [Float](repeating: 1, count: 64)
        row[5] = .nan
        #expect(throws: RowCodecIssue.self) { try encodeDecode(.int8(group: nil), row) }
        row[5] = .infinity
        #expect(throws: RowCodecIssue.self) { try encodeDecode(.int4(group: 32), row) }
        row[5] = 1e30
        #expect(throws: RowCodecIssue.self) { try encodeDecode(.int4(group: 32), row) }
    }

    @Test func castsRoundTripRepresentableValues() throws {
        let x: [Float] = [0, -0, 1, -2.5, 65504, 1e-3, .infinity]
        for d in [DType.f16, .bf16, .f32] {
            let y = try encodeDecode(.plain(d), x).values
            #expect(zip(x, y).allSatisfy { d == .f32 ? $0 == $1 : abs($0 - $1) <= abs($0) * 0.01 || ($0.isInfinite && $0 == $1) })
        }
        #expect(Convert.floatToBF16(1.00390625) == 0x3F80)  // ties to even
        #expect(Convert.floatToBF16(.nan) & 0x7F80 == 0x7F80)
    }
}
