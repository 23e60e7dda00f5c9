import Foundation
import Testing
import CFolioMath

/// The vectorized elementwise functions against libm (float64 references), over a grid of
/// inputs that crosses every range boundary and a length with a tail.
@Suite struct MathKernelTests {
    static let inputs: [Float] = {
        var v: [Float] = [0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 3, -3, 9.5, -9.5, 20, -20, 87, -87, 87.5, -87.5, 88.3, -88.3, 100, -100,
                          .infinity, -.infinity]
        var x: Float = -30
        while x <= 30 { v.append(x); x += 0.0137 }
        return v
    }()

    @Test func geluMatchesErf() {
        var y = Self.inputs
        folio_gelu_erf(&y, y.count)
        for (x, got) in zip(Self.inputs, y) where x.isFinite {
            let want = 0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))
            #expect(abs(Double(got) - want) <= 1.5e-7 * max(1, abs(Double(x))) + 1e-37, "gelu(\(x)) = \(got), want \(want)")
        }
    }

    @Test func siluMatchesExp() {
        var g = Self.inputs.filter(\.isFinite)
        let up = g.map { _ in Float(1.5) }
        let x = g
        folio_silu_mul(&g, up, g.count)
        for (v, got) in zip(x, g) {
            let want = Double(v) / (1 + exp(-Double(v))) * 1.5
            #expect(abs(Double(got) - want) <= 4e-7 * abs(want) + 1e-30, "silu(\(v)) = \(got), want \(want)")
        }
    }

    @Test func softmaxMatchesExp() {
        // Rows of 13 (a tail of 5 after one vector), some entries -inf (masked).
        let width = 13, rows = Self.inputs.count / width
        var x = Array(Self.inputs.prefix(rows * width)).map { $0 == .infinity ? 1 : $0 }
        for r in 0..<rows where r % 3 == 0 { x[r * width + 11] = -.infinity }
        let src = x
        folio_softmax_rows(&x, rows, width)
        for r in 0..<rows {
            let row = src[(r * width)..<((r + 1) * width)].map(Double.init)
            let m = row.filter(\.isFinite).max()!
            let e = row.map { $0.isFinite ? exp($0 - m) : 0 }
            let s = e.reduce(0, +)
            for j in 0..<width {
                let want = e[j] / s, got = Double(x[r * width + j])
                #expect(abs(got - want) <= 1e-6 * want + 1e-37, "row \(r) col \(j): \(got) vs \(want)")
            }
        }
    }
}
