import Folio
#if canImport(Glibc)
import Glibc  // logf only
#endif

/// Synthetic embedding tables for benchmarks: normally distributed values, quantized with a
/// scheme and streamed into the paged layout.
public enum SyntheticTables {
    /// Writes `tables` tables named `ngram_embeddings.N.weight` of `rows` x `dim` values.
    /// Rows are generated and encoded in batches, so memory stays flat at any size.
    public static func write(path: String, tables: Int, rows: Int, dim: Int, scheme: Encoding, seed: UInt64,
                             pageSize: Int = FolioFormat.defaultPageSize, chunkSize: Int = FolioFormat.defaultChunkSize, progress: ((Int, Int) -> Void)? = nil) throws {
        guard tables > 0, rows > 0, dim > 0 else { throw ConvertError.badOption("--tables, --rows and --dim must be positive") }
        if let p = scheme.rowProblem(width: dim) { throw ConvertError.badOption("--scheme \(scheme.name): \(p)") }
        let plans = (0..<tables).map {
            TensorPlan(name: "ngram_embeddings.\($0).weight", encoding: scheme, shape: [rows, dim], paged: true, sourceDType: .f32)
        }
        let writer = try FolioWriter(path: path, tensors: plans, metadata: [
            ("generator", "folio bench tables"), ("seed", String(seed)), ("distribution", "normal(0, 1)"),
        ], pageSize: pageSize, chunkSize: chunkSize)
        do {
            var rng = NormalGenerator(seed: seed)
            let batch = Swift.max(1, (1 << 20) / dim)
            var values = [Float](repeating: 0, count: batch * dim)
            let totalBatches = tables * ((rows + batch - 1) / batch)
            var done = 0
            for _ in 0..<tables {
                var r = 0
                while r < rows {
                    let n = Swift.min(batch, rows - r)
                    values.withUnsafeMutableBufferPointer { v in rng.fill(v.baseAddress!, count: n * dim) }
                    try values.withUnsafeBufferPointer { try writer.appendRows(UnsafeBufferPointer(rebasing: $0[0..<(n * dim)])) }
                    r += n
                    done += 1
                    progress?(done, totalBatches)
                }
            }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
    }
}

/// Fast seeded standard-normal values (xoshiro256** and the polar Box-Muller method).
public struct NormalGenerator: Sendable {
    var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    public mutating func fill(_ out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            var u: Float, v: Float, q: Float
            repeat {
                u = 2 * uniform() - 1
                v = 2 * uniform() - 1
                q = u * u + v * v
            } while q >= 1 || q == 0
            let f = (-2 * logf(q) / q).squareRoot()
            out[i] = u * f
            if i + 1 < count { out[i + 1] = v * f }
            i += 2
        }
    }
}

