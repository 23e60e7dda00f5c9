import CFolioKernels
import CFolioMath
import Folio

/// A weight matrix [rows, cols] (PyTorch's [out, in]) as the file stores it: float32, float16,
/// bfloat16, int8 per row or per group, int4/gN or affine8/gN row records, dense, back to back
/// or paged, read in place from the mapping by the kernels of folio_matvec.h. Models ask
/// `Math.linear` for products and never see the values. A tensor the kernels cannot address
/// in place (compressed, split across shards, or of another dtype) is decoded once into an
/// owned float32 copy.
final class Matrix: @unchecked Sendable {
    // @unchecked: immutable after init; the bytes are only read.
    let rows: Int
    let cols: Int
    let storage: folio_matrix
    /// What the file stores (for messages and benchmarks).
    let encodingName: String
    private let file: FolioFile?
    private let owned: UnsafeMutablePointer<Float>?

    init(copying values: [Float], rows: Int, cols: Int) {
        precondition(values.count == rows * cols)
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, values.count))
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { p.update(from: b, count: values.count) } }
        owned = p
        file = nil
        self.rows = rows
        self.cols = cols
        encodingName = "f32 (copy)"
        storage = folio_matrix(kind: Int32(FOLIO_ROW_F32), group: 0, base: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), rows: rows,
                               cols: cols, rows_per_block: 1, block: 4 * cols, stride: 4 * cols)
    }

    convenience init(file: FolioFile, tensor t: TensorInfo) throws {
        let cols = t.rowWidth, rows = t.rowCount
        // The product kernels quantize inputs in blocks of 32 that never span two groups.
        let group: Int? = { switch t.encoding { case let .int8(g): return g; case let .int4(g), let .affine8(g): return g; default: return nil } }()
        if let g = group, g % 32 != 0 {
            throw InferenceError.badWeight(file: file.path, tensor: t.name, reason: "\(t.encoding.name) is a table encoding (rows looked up); a matrix multiplied in place needs groups of 32 or more")
        }
        if t.compression == nil, let (kind, group) = FolioFile.kernelKind(t.encoding), rows > 0, cols > 0,
           let base = try file.withBytes(of: t, { $0.baseAddress }) {
            let m: folio_matrix
            if let p = t.paged {
                m = folio_matrix(kind: kind, group: group, base: base.assumingMemoryBound(to: UInt8.self), rows: rows, cols: cols,
                                 rows_per_block: p.rowsPerPage, block: p.blockSize, stride: p.rowStride)
            } else {
                let size = t.encoding.plainDType!.size * cols
                m = folio_matrix(kind: kind, group: group, base: base.assumingMemoryBound(to: UInt8.self), rows: rows, cols: cols,
                                 rows_per_block: 1, block: size, stride: size)
            }
            self.init(storage: m, file: file, name: t.encoding.name)
            // Fill the mapping's page tables now (MADV_POPULATE_READ), as llama.cpp maps its
            // weights with MAP_POPULATE: the first pass would otherwise fault per 4 KiB.
            file.advise(t, .populate)
            return
        }
        var values = [Float](repeating: 0, count: rows * cols)
        if !values.isEmpty { try values.withUnsafeMutableBufferPointer { try file.readRows(t, start: 0, count: rows, into: $0.baseAddress!) } }
        self.init(copying: values, rows: rows, cols: cols)
    }

    private init(storage: folio_matrix, file: FolioFile, name: String) {
        self.storage = storage
        self.file = file
        owned = nil
        rows = storage.rows
        cols = storage.cols
        encodingName = name
    }

    deinit { owned?.deallocate() }

    /// The rows as float32 in place (float32 rows back to back, 4-byte aligned), for BLAS.
    var float32Rows: UnsafePointer<Float>? {
        guard storage.kind == Int32(FOLIO_ROW_F32), storage.rows_per_block == 1, storage.stride == 4 * cols,
              Int(bitPattern: storage.base) % 4 == 0 else { return nil }
        return UnsafeRawPointer(storage.base).assumingMemoryBound(to: Float.self)
    }

    /// Whether products of many inputs go through the integer kernel (folio_mm): an integer
    /// encoding it takes, on a CPU with VNNI. Else prefill decodes weight tiles for sgemm.
    var integerProducts: Bool {
        withUnsafePointer(to: storage) { folio_mm_supported($0) != 0 } && folio_mm_vector() != 0
    }

    /// Whether products need the input prepared (quantized, or split for bfloat16).
    var needsPreparedInput: Bool { storage.kind != Int32(FOLIO_ROW_F32) && storage.kind != Int32(FOLIO_ROW_F16) }
}
