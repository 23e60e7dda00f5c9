import COpenBLAS
import Foundation

/// Dense float32 kernels over row-major matrices; matrix products go to OpenBLAS.
enum Math {
    /// `y[m, n] = x[m, k] · w[n, k]^T (+ bias[n])`: a linear layer with PyTorch's [out, in] weights.
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight w: UnsafePointer<Float>, outFeatures n: Int,
                       bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        if let bias {
            for r in 0..<m { (y + r * n).update(from: bias, count: n) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, x, Int32(k), w, Int32(k),
                    bias == nil ? 0 : 1, y, Int32(n))
    }

    /// LayerNorm over rows of `n` values, in place: (x - mean) / sqrt(var + eps) * gamma + beta.
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width n: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
        for r in 0..<rows {
            let v = x + r * n
            var mean: Float = 0
            for i in 0..<n { mean += v[i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { let d = v[i] - mean; variance += d * d }
            variance /= Float(n)
            let inv = 1 / (variance + eps).squareRoot()
            for i in 0..<n { v[i] = (v[i] - mean) * inv * gamma[i] + beta[i] }
        }
    }

    /// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in place.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let r: Float = 0.70710678118654752440
        for i in 0..<count { x[i] = 0.5 * x[i] * (1 + erff(x[i] * r)) }
    }

    /// Softmax of each row, in place (a row of -inf everywhere but one entry is fine).
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width n: Int) {
        for r in 0..<rows {
            let v = x + r * n
            var m = -Float.infinity
            for i in 0..<n { m = max(m, v[i]) }
            var s: Float = 0
            for i in 0..<n { let e = expf(v[i] - m); v[i] = e; s += e }
            let inv = 1 / s
            for i in 0..<n { v[i] *= inv }
        }
    }
}

extension Math {
    /// c[m, n] = alpha · a[m, k] · b[n, k]^T (strided rows).
    static func matmulNT(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, alpha: Float,
                         into c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// c[m, n] = a[m, k] · b[k, n] (strided rows).
    static func matmulNN(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int,
                         into c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }
}
