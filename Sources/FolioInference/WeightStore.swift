import Folio

/// The weights of a model in an open Folio file, looked up by the names the architecture
/// declares. Small tensors are read as float32; embedding tables are gathered row by row
/// from the mapping (dequantized on the fly), never loaded whole. Tracks which tensors were
/// used so that a model can refuse a file with weights it does not understand.
final class WeightStore: @unchecked Sendable {
    // @unchecked: `used` is only written while the model is being built, on one thread.
    let source: ModelSource
    let prefix: String
    /// Maps the names a model asks for to the names stored (GGUF's `blk.N.attn_q.weight` for
    /// `model.layers.N.self_attn.q_proj.weight`); names without a mapping are used as they are.
    let rename: @Sendable (String) -> String
    private(set) var used = Set<String>()

    init(source: ModelSource, prefix: String, rename: @escaping @Sendable (String) -> String = { $0 }) {
        self.source = source
        self.prefix = prefix
        self.rename = rename
    }

    convenience init(file: FolioFile, prefix: String) { self.init(source: file, prefix: prefix) }

    var path: String { source.path }

    func has(_ name: String) -> Bool { source.parts(of: rename(prefix + name)) != nil }

    /// The tensor's pieces, checking the whole shape.
    func parts(_ name: String, shape: [Int]) throws -> [TensorPart] {
        let stored = rename(prefix + name)
        guard let parts = source.parts(of: stored), let first = parts.first else {
            throw InferenceError.missingWeight(file: path, tensor: stored)
        }
        used.insert(stored)
        let rows = parts.reduce(0) { $0 + $1.tensor.rowCount }
        let whole = first.tensor.shape.count >= 1 ? [rows] + first.tensor.shape.dropFirst() : first.tensor.shape
        guard (parts.count == 1 ? first.tensor.shape : whole) == shape else {
            throw InferenceError.badWeight(file: path, tensor: stored, reason: "has shape \(parts.count == 1 ? first.tensor.shape : whole), the config implies \(shape)")
        }
        return parts
    }

    /// A tensor as float32 values, checking its shape. A table split across shards is read
    /// part by part into one array.
    func dense(_ name: String, shape: [Int]) throws -> [Float] {
        let parts = try parts(name, shape: shape)
        let count = parts.reduce(0) { $0 + $1.tensor.elementCount }
        var out = [Float](repeating: 0, count: count)
        guard count > 0 else { return out }
        try out.withUnsafeMutableBufferPointer { b in
            var at = 0
            for p in parts where p.tensor.elementCount > 0 {
                try p.file.readRows(p.tensor, start: 0, count: p.tensor.rowCount, into: b.baseAddress! + at)
                at += p.tensor.elementCount
            }
        }
        return out
    }

    /// A tensor's float32 values without a copy when the file allows (one piece stored as
    /// aligned float32), otherwise decoded, checking its shape.
    func weight(_ name: String, shape: [Int]) throws -> Weight {
        let parts = try parts(name, shape: shape)
        guard parts.count == 1 else { return Weight(copying: try dense(name, shape: shape)) }
        return try Weight(file: parts[0].file, tensor: parts[0].tensor)
    }

    /// A weight matrix [rows, cols] read in place in its stored encoding (decoded to an owned
    /// float32 copy only when split across shards or stored compressed), checking its shape.
    func matrix(_ name: String, shape: [Int]) throws -> Matrix {
        precondition(shape.count == 2)
        let parts = try parts(name, shape: shape)
        guard parts.count == 1 else { return Matrix(copying: try dense(name, shape: shape), rows: shape[0], cols: shape[1]) }
        return try Matrix(file: parts[0].file, tensor: parts[0].tensor)
    }

    /// An embedding table, gathered by rows (from several shards when it is split).
    func table(_ name: String, rows: Int, width: Int) throws -> EmbeddingTable {
        let parts = try parts(name, shape: [rows, width])
        for p in parts { p.file.advise(p.tensor, .random) }
        return EmbeddingTable(parts: parts, rows: rows, width: width)
    }

    /// Marks the stored tensors that `skip` picks as deliberately unused (a model's
    /// multi-token-prediction layers, known only once its config is read).
    func ignore(_ skip: (String) -> Bool) {
        for name in source.tensorNames where skip(name) { used.insert(name) }
    }

    /// Names of the source's tensors that the model did not use, except those `ignored` says
    /// are expected to be unused.
    func unused(ignoring ignored: (String) -> Bool) -> [String] {
        source.tensorNames.filter { !used.contains($0) && !ignored($0) }
    }
}

/// Rows of a (possibly quantized, possibly paged, possibly sharded) table, read through the
/// storage layer's lookup kernel.
struct EmbeddingTable: Sendable {
    let parts: [TensorPart]
    let rows: Int
    let width: Int

    /// Writes rows `ids` into `out` (ids.count x width floats).
    func gather(_ ids: [Int32], into out: UnsafeMutablePointer<Float>) throws {
        try gather(rows: ids.map(Int64.init), into: out)
    }

    /// Rows `ids` of every table side by side, `ids` being [n, tables.count] (token-major):
    /// table k's row for token i to out + i * stride + k * width (tables of one width).
    /// When every table is one tensor of one file, the storage layer fetches the rows of all
    /// tables together (a decode step's lookups overlap) on `threads` threads.
    static func gather(_ tables: [EmbeddingTable], rows ids: [Int64], into out: UnsafeMutablePointer<Float>, stride: Int,
                       threads: Int) throws {
        guard let first = tables.first else { return }
        let t = tables.count, n = ids.count / t, width = first.width
        if tables.allSatisfy({ $0.parts.count == 1 && $0.parts[0].file === first.parts[0].file && $0.width == width }), stride == t * width {
            try ids.withUnsafeBufferPointer {
                try first.parts[0].file.gatherRows(tables.map { $0.parts[0].tensor }, rows: $0, into: out, stride: width, threads: threads)
            }
            return
        }
        for (k, table) in tables.enumerated() {
            try table.gather(rows: (0..<n).map { ids[$0 * t + k] }, into: out + k * table.width, stride: stride)
        }
    }

    /// Asks the kernel to start reading the pages that hold rows `ids` (ids outside the table
    /// are skipped; the gather reports them). For a table that is not in the page cache, the
    /// reads of a whole step are then in flight together instead of one page fault at a time.
    func willNeed(rows ids: some Sequence<Int64>) {
        for r in ids where r >= 0 && r < Int64(rows) {
            let p = parts[part(of: r)]
            p.file.willNeed(p.tensor, rows: CollectionOfOne(Int(r) - p.firstRow))
        }
    }

    /// The index of the part that holds row `r` (0 <= r < rows).
    private func part(of r: Int64) -> Int {
        var lo = 0, hi = parts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if Int64(parts[mid].firstRow) <= r { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    func gather(rows ids: [Int64], into out: UnsafeMutablePointer<Float>, stride: Int? = nil) throws {
        let stride = stride ?? width
        if parts.count == 1 {
            try ids.withUnsafeBufferPointer { try parts[0].file.gatherRows(parts[0].tensor, rows: $0, into: out, stride: stride, accumulate: false) }
            return
        }
        // Rows grouped by shard, gathered, then put in place.
        var local: [[Int64]] = Array(repeating: [], count: parts.count), slot: [[Int]] = Array(repeating: [], count: parts.count)
        for (i, r) in ids.enumerated() {
            guard r >= 0, r < Int64(rows) else { throw InferenceError.badInput("row \(r) is outside the table (0..<\(rows))") }
            let k = part(of: r)
            local[k].append(r - Int64(parts[k].firstRow))
            slot[k].append(i)
        }
        for (k, p) in parts.enumerated() where !local[k].isEmpty {
            var tmp = [Float](repeating: 0, count: local[k].count * width)
            try local[k].withUnsafeBufferPointer { r in
                try tmp.withUnsafeMutableBufferPointer { try p.file.gatherRows(p.tensor, rows: r, into: $0.baseAddress!, stride: width, accumulate: false) }
            }
            tmp.withUnsafeBufferPointer { src in
                for (j, i) in slot[k].enumerated() { (out + i * stride).update(from: src.baseAddress! + j * width, count: width) }
            }
        }
    }
}
