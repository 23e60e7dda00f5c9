import CFolioKernels
import CFolioMath
import Dispatch
import Foundation

struct SendableRaw: @unchecked Sendable {
    let x: UnsafePointer<Float>
    let w: UnsafePointer<Float>
    let b: UnsafePointer<Float>?
    let y: UnsafeMutablePointer<Float>
}

struct SendableMut: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>
}

/// One output of `Math.linears`: y[m, matrix.rows] = x · matrix^T (+ bias).
struct LinearOutput: @unchecked Sendable {
    let matrix: Matrix
    let bias: UnsafePointer<Float>?
    let out: UnsafeMutablePointer<Float>
    var count: Int { matrix.rows }
}

/// Inputs [rows, cols] quantized for folio_mm against matrices of one kind's levels.
final class IntegerInputs: @unchecked Sendable {
    // @unchecked: written once in init, then only read.
    let bytes: UnsafeMutableRawPointer
    let rows: Int

    init(_ x: UnsafePointer<Float>, rows: Int, cols: Int, kind: Int32) {
        self.rows = rows
        bytes = .allocate(byteCount: max(64, folio_mm_inputs_size(rows, cols)), alignment: 64)
        // Groups of 16 inputs split over the cores.
        let groups = (rows + 15) / 16, parts = min(Math.cores, groups)
        let job = SendableRaw(x: x, w: x, b: nil, y: bytes.assumingMemoryBound(to: Float.self))
        Math.parallelParts(parts) { p in
            folio_mm_prepare_part(kind, job.x, rows, cols, job.y, groups * p / parts * 16, groups * (p + 1) / parts * 16)
        }
    }

    deinit { bytes.deallocate() }
}

/// Pointers of one product, for the workers.
private struct Product: @unchecked Sendable {
    let x: UnsafePointer<Float>
    let acts: UnsafeMutableRawPointer?
    let actSize: Int
}

/// Settings of the inference runtime that hold for the whole process.
public enum Inference {
    /// The number of cores available to this process.
    public static let availableCores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    nonisolated(unsafe) private static var chosen = 0

    /// Threads that split the work of every model (the caller's thread included), as
    /// llama.cpp's `--threads`; 0 (the default) means every core. Set it before loading a model.
    public static func setThreads(_ n: Int) { chosen = max(0, n) }
    static var threads: Int { chosen > 0 ? chosen : availableCores }
}

/// Dense float32 kernels over row-major matrices; matrix products go to OpenBLAS.
///
/// OpenBLAS (loaded at run time, folio_blas.h) runs single-threaded and Folio splits the work over the cores itself: OpenBLAS's
/// own threads busy-wait between calls and fight the attention workers for the cores.
enum Math {
    /// Opens OpenBLAS (once), or says why it cannot be used.
    static func requireBLAS(for file: String) throws {
        guard folio_blas_load() == 0 else {
            throw InferenceError.unsupported(file: file, reason: "libopenblas.so.0 cannot be loaded (install libopenblas0, Debian's libopenblas-dev)")
        }
    }

    /// The cores the work is split over: every core unless `Inference.setThreads` says fewer.
    static var cores: Int { Inference.threads }
    static let setUp: Void = { precondition(folio_blas_load() == 0, "OpenBLAS was checked when the model was loaded") }()

    /// Runs `body(p)` for p in 0..<parts (at most 64), on the calling thread and the spinning
    /// pool of the storage layer's lookups (folio_parallel): a decoding step has dozens of
    /// parallel regions of tens of microseconds each, too short to wake sleeping threads for.
    static func parallelParts(_ parts: Int, _ body: @Sendable (Int) -> Void) {
        _ = setUp
        if parts <= 1 { if parts == 1 { body(0) }; return }
        withoutActuallyEscaping(body) { b in
            var f = b
            withUnsafeMutablePointer(to: &f) { ptr in
                folio_parallel(parts, { ctx, p, _ in ctx!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(p) }, ptr)
            }
        }
    }

    /// Starts the pool's workers (one per core but the caller's) now, without waiting for
    /// them: the first parallel region would otherwise create them and wait for their first run.
    static func startWorkers() {
        _ = setUp
        folio_parallel_start(cores)
    }

    /// Runs `body(i)` for i in 0..<count in one contiguous range per core.
    static func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
        let parts = min(count, cores)
        if parts <= 1 { for i in 0..<count { body(i) }; return }
        parallelParts(parts) { p in for i in (count * p / parts)..<(count * (p + 1) / parts) { body(i) } }
    }

    /// Runs `body(lo, hi)` over `count` rows split into one block per core.
    static func parallelRows(_ count: Int, minRows: Int = 16, _ body: @Sendable (Int, Int) -> Void) {
        let blocks = min(cores, max(1, count / minRows))
        if blocks == 1 { _ = setUp; body(0, count); return }
        parallelParts(blocks) { b in body(count * b / blocks, count * (b + 1) / blocks) }
    }

    /// `y[m, n] = x[m, k] · w[n, k]^T (+ bias[n])`: a linear layer with PyTorch's [out, in] weights.
    /// Split by output features, one GEMM per core on its own part of the weights (split by
    /// rows, every core packed the whole weight matrix again: 2 threads ran prefill slower
    /// than 1 on the 112M model); by rows only when there are too few output features.
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight w: UnsafePointer<Float>, outFeatures n: Int,
                       bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        let p = SendableRaw(x: x, w: w, b: bias, y: y)
        if cores == 1 || n < 64 * cores {
            parallelRows(m) { lo, hi in
                let rows = hi - lo
                guard rows > 0 else { return }
                let yy = p.y + lo * n
                if let bias = p.b {
                    for r in 0..<rows { (yy + r * n).update(from: bias, count: n) }
                }
                folio_sgemm(1, Int32(rows), Int32(n), Int32(k), 1, p.x + lo * k, Int32(k), p.w, Int32(k),
                            p.b == nil ? 0 : 1, yy, Int32(n))
            }
            return
        }
        _ = setUp
        let blocks = cores
        parallelParts(blocks) { b in
            // Column blocks on 16-value boundaries keep each core's weight rows apart.
            let lo = (n * b / blocks) & ~15, hi = b == blocks - 1 ? n : (n * (b + 1) / blocks) & ~15
            let cols = hi - lo
            guard cols > 0 else { return }
            if let bias = p.b {
                for r in 0..<m { (p.y + r * n + lo).update(from: bias + lo, count: cols) }
            }
            if m == 1 {
                folio_gemv(p.w + lo * k, cols, k, p.x, p.y + lo, p.b == nil ? 0 : 1)
            } else {
                folio_sgemm(1, Int32(m), Int32(cols), Int32(k), 1, p.x, Int32(k), p.w + lo * k, Int32(k),
                            p.b == nil ? 0 : 1, p.y + lo, Int32(n))
            }
        }
    }

    /// Inputs of at most this many rows go to the matrix-vector kernels (each record read once
    /// for up to three input rows, folio_matvec_batch, so the weights stream once); more rows decode weight tiles for
    /// a matrix-matrix product. 6 covers a speculative pass over 5 proposals: on the trained
    /// n-gram model such a pass ran 771 -> 1084 tokens/s against the tile path (400 tokens
    /// with --lookup --draft-tokens 5, AMD EPYC Zen 4, 2 threads).
    static let vectorRows = 6

    /// `y[m, n] = x[m, k] · w[n, k]^T (+ bias[n])` for a weight matrix in any stored encoding.
    static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, matrix w: Matrix, bias: UnsafePointer<Float>?,
                       into y: UnsafeMutablePointer<Float>) {
        precondition(w.cols == k, "matrix of \(w.cols) columns applied to \(k) features")
        if m > vectorRows, let f = w.float32Rows {
            linear(x, rows: m, inFeatures: k, weight: f, outFeatures: w.rows, bias: bias, into: y)
        } else if m > vectorRows, w.integerProducts {
            let prep = IntegerInputs(x, rows: m, cols: k, kind: w.storage.kind)
            integerLinear(prep, matrix: w, bias: bias, into: y)
        } else if m > vectorRows {
            tiled(x, rows: m, inFeatures: k, matrix: w, bias: bias, into: y)
        } else {
            linears(x, rows: m, inFeatures: k, [LinearOutput(matrix: w, bias: bias, out: y)])
        }
    }

    /// One linear layer per output of `outputs`, all on the same input `x` [m, k] (q, k and v;
    /// gate and up). For a few rows, a single dispatch whose work is the outputs' rows side by
    /// side, split evenly over the cores, so that each core streams its share of every weight
    /// through the matrix-vector kernels (the input prepared once for all of them).
    static func linears(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, _ outputs: [LinearOutput]) {
        if m > vectorRows {
            // Inputs quantized once for every integer-coded output of the same levels (q, k
            // and v; gate and up).
            var prepared: [Int32: IntegerInputs] = [:]
            for o in outputs {
                guard o.matrix.integerProducts else {
                    linear(x, rows: m, inFeatures: k, matrix: o.matrix, bias: o.bias, into: o.out)
                    continue
                }
                let levels = folio_mm_levels(o.matrix.storage.kind)
                let prep = prepared[levels] ?? IntegerInputs(x, rows: m, cols: k, kind: o.matrix.storage.kind)
                prepared[levels] = prep
                integerLinear(prep, matrix: o.matrix, bias: o.bias, into: o.out)
            }
            return
        }
        _ = setUp
        let actSize = folio_act_size(k)
        let prepared = outputs.contains { $0.matrix.needsPreparedInput }
        let acts = prepared ? UnsafeMutableRawPointer.allocate(byteCount: actSize * m, alignment: 64) : nil
        defer { acts?.deallocate() }
        if let acts { for r in 0..<m { folio_act_prepare(x + r * k, k, acts + r * actSize) } }
        let job = Product(x: x, acts: acts, actSize: actSize)
        let total = outputs.reduce(0) { $0 + $1.count }
        let starts = outputs.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        let parts = total >= 64 ? cores : 1
        parallelParts(parts) { b in
            // Row ranges on 16-row boundaries keep each core's weight rows apart.
            let lo = (total * b / parts) & ~15, hi = b == parts - 1 ? total : (total * (b + 1) / parts) & ~15
            for (i, o) in outputs.enumerated() {
                let a = max(lo, starts[i]) - starts[i], e = min(hi, starts[i + 1]) - starts[i]
                guard e > a else { continue }
                let n = o.count
                withUnsafePointer(to: o.matrix.storage) { w in
                    for r in 0..<m {
                        if let bias = o.bias { (o.out + r * n + a).update(from: bias + a, count: e - a) }
                    }
                    // Each weight record is read once for up to three input rows (the
                    // kernels' registers), and again from L1 for the next three.
                    folio_matvec_batch(w, a, e, m, job.x, k, job.acts, job.actSize, o.out, n, o.bias == nil ? 0 : 1)
                }
            }
        }
    }

    /// Many rows against an integer-coded matrix by integer dot products from its records
    /// (folio_mm): the rows split over the cores in multiples of 4, the inputs quantized once.
    static func integerLinear(_ inputs: IntegerInputs, matrix w: Matrix, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        _ = setUp
        let n = w.rows, m = inputs.rows
        let parts = min(cores, max(1, n / 64))
        let p = SendableRaw(x: y, w: y, b: bias, y: y)
        parallelParts(parts) { part in
            let lo = (n * part / parts) & ~3, hi = part == parts - 1 ? n : (n * (part + 1) / parts) & ~3
            guard hi > lo else { return }
            if let bias = p.b { for r in 0..<m { (p.y + r * n + lo).update(from: bias + lo, count: hi - lo) } }
            withUnsafePointer(to: w.storage) { ws in
                let rc = folio_mm(ws, lo, hi, m, inputs.bytes, p.y, n, p.b == nil ? 0 : 1)
                precondition(rc == 0, "folio_mm refused a matrix that Matrix.integerProducts accepted (\(rc))")
            }
        }
    }

    /// Many rows against a matrix not stored as float32: each core decodes tiles of the
    /// weights (at most 1 MiB of float32 each, so a tile stays in cache) and multiplies all
    /// of x by them; no float32 copy of the whole matrix exists at any time.
    static func tiled(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, matrix w: Matrix, bias: UnsafePointer<Float>?,
                      into y: UnsafeMutablePointer<Float>) {
        _ = setUp
        let n = w.rows
        // Tiles of at most 1 MiB of float32, as many as a multiple of the cores so that every
        // core gets the same share (k and v projections are often a single such tile).
        let maxTile = max(16, ((1 << 18) / max(1, k)) & ~15)
        let parts = min(cores, max(1, n / 16))
        let wanted = ((n + maxTile - 1) / maxTile + parts - 1) / parts * parts
        let tile = min(n, max(16, ((n + wanted - 1) / wanted + 15) & ~15))
        let tiles = (n + tile - 1) / tile
        let p = SendableRaw(x: x, w: x, b: bias, y: y)
        parallelParts(parts) { part in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: tile * k)
            defer { scratch.deallocate() }
            withUnsafePointer(to: w.storage) { ws in
                for t in (tiles * part / parts)..<(tiles * (part + 1) / parts) {
                    let lo = t * tile, hi = min(n, lo + tile), count = hi - lo
                    folio_matrix_decode(ws, lo, hi, scratch)
                    if let bias = p.b { for r in 0..<m { (p.y + r * n + lo).update(from: bias + lo, count: count) } }
                    folio_sgemm(1, Int32(m), Int32(count), Int32(k), 1, p.x, Int32(k), scratch, Int32(k),
                                p.b == nil ? 0 : 1, p.y + lo, Int32(n))
                }
            }
        }
    }

    /// RMSNorm of each row: x / sqrt(mean(x²) + eps) · weight, written to `out` (may be `x`).
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width n: Int, weight: UnsafePointer<Float>, eps: Float,
                        into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let v = x + r * n, o = out + r * n
            var s: Float = 0
            for i in 0..<n { s += v[i] * v[i] }
            let inv = 1 / (s / Float(n) + eps).squareRoot()
            for i in 0..<n { o[i] = v[i] * inv * weight[i] }
        }
    }

    /// gate = silu(gate) · up, elementwise (SwiGLU).
    static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        folio_silu_mul(gate, up, count)
    }

    /// y += x, elementwise.
    static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
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

    /// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in place (vectorized erf, absolute error below
    /// 1.5e-7: folio_math.h).
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let p = SendableMut(p: x)
        parallelRows(count, minRows: 4096) { lo, hi in
            folio_gelu_erf(p.p + lo, hi - lo)
        }
    }

    /// Softmax of each row, in place (a row of -inf everywhere but one entry is fine).
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width n: Int) {
        folio_softmax_rows(x, rows, n)
    }
}

extension Math {
    /// c[m, n] = alpha · a[m, k] · b[n, k]^T (strided rows).
    static func matmulNT(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, alpha: Float,
                         into c: UnsafeMutablePointer<Float>, ldc: Int) {
        folio_sgemm(1, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// c[m, n] = a[m, k] · b[k, n] (strided rows).
    static func matmulNN(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int,
                         into c: UnsafeMutablePointer<Float>, ldc: Int) {
        folio_sgemm(0, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }
}
