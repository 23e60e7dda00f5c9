import CFolioKernels

/// Running comparison of original and reconstructed values: RMSE, max |error|, cosine.
public struct ErrorStats: Sendable {
    public private(set) var count = 0
    var sumSq: Double = 0
    var sumRefSq: Double = 0
    var sumOutSq: Double = 0
    var dot: Double = 0
    public private(set) var maxAbsError: Double = 0

    public init() {}

    /// Adds `n` pairs. Partial sums are float32 within one call (a row or a batch; the C
    /// kernel vectorizes them) and float64 across calls.
    public mutating func add(reference a: UnsafePointer<Float>, result b: UnsafePointer<Float>, count n: Int) {
        var sums: (Double, Double, Double, Double) = (0, 0, 0, 0)
        var mx = maxAbsError
        withUnsafeMutableBytes(of: &sums) { s in
            folio_error_stats(a, b, n, s.baseAddress!.assumingMemoryBound(to: Double.self), &mx)
        }
        sumSq += sums.0; sumRefSq += sums.1; sumOutSq += sums.2; dot += sums.3
        maxAbsError = mx
        count += n
    }

    public mutating func merge(_ o: ErrorStats) {
        count += o.count; sumSq += o.sumSq; sumRefSq += o.sumRefSq; sumOutSq += o.sumOutSq; dot += o.dot
        maxAbsError = maxAbsError.isNaN || o.maxAbsError.isNaN ? .nan : Swift.max(maxAbsError, o.maxAbsError)
    }

    public var rmse: Double { count == 0 ? 0 : (sumSq / Double(count)).squareRoot() }
    /// RMSE relative to the RMS of the reference.
    public var relativeRMSE: Double { sumRefSq == 0 ? (sumSq == 0 ? 0 : .infinity) : (sumSq / sumRefSq).squareRoot() }
    public var cosine: Double {
        let den = (sumRefSq * sumOutSq).squareRoot()
        if den == 0 { return sumRefSq == sumOutSq ? 1 : 0 }
        return dot / den
    }
}

/// Summary statistics of a tensor's values (over dequantized float32 values).
public struct ValueStats: Sendable {
    public private(set) var count = 0
    public private(set) var min = Double.infinity
    public private(set) var max = -Double.infinity
    var sum: Double = 0
    var sumSq: Double = 0
    public private(set) var nan = 0
    public private(set) var inf = 0

    public init() {}

    public mutating func add(_ v: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n {
            let x = v[i]
            if x.isNaN { nan += 1; continue }
            if x.isInfinite { inf += 1; continue }
            let d = Double(x)
            if d < min { min = d }
            if d > max { max = d }
            sum += d; sumSq += d * d
            count += 1
        }
    }

    public var mean: Double { count == 0 ? 0 : sum / Double(count) }
    public var std: Double {
        guard count > 0 else { return 0 }
        let m = mean
        return Swift.max(0, sumSq / Double(count) - m * m).squareRoot()
    }
}
