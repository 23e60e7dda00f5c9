import Folio

/// The weights of a model in an open Folio file, looked up by the names the architecture
/// declares. Small tensors are read as float32; embedding tables are gathered row by row
/// from the mapping (dequantized on the fly), never loaded whole. Tracks which tensors were
/// used so that a model can refuse a file with weights it does not understand.
final class WeightStore: @unchecked Sendable {
    // @unchecked: `used` is only written while the model is being built, on one thread.
    let file: FolioFile
    let prefix: String
    private(set) var used = Set<String>()

    init(file: FolioFile, prefix: String) {
        self.file = file
        self.prefix = prefix
    }

    var path: String { file.path }

    func has(_ name: String) -> Bool { file.tensor(named: prefix + name) != nil }

    func info(_ name: String) throws -> TensorInfo {
        guard let t = file.tensor(named: prefix + name) else { throw InferenceError.missingWeight(file: file.path, tensor: prefix + name) }
        used.insert(t.name)
        return t
    }

    /// A tensor as float32 values, checking its shape.
    func dense(_ name: String, shape: [Int]) throws -> [Float] {
        let t = try info(name)
        guard t.shape == shape else {
            throw InferenceError.badWeight(file: file.path, tensor: t.name, reason: "has shape \(t.shape), the config implies \(shape)")
        }
        var out = [Float](repeating: 0, count: t.elementCount)
        if t.elementCount > 0 {
            try out.withUnsafeMutableBufferPointer { try file.readRows(t, start: 0, count: t.rowCount, into: $0.baseAddress!) }
        }
        return out
    }

    /// A tensor's float32 values without a copy when the file allows, checking its shape.
    func weight(_ name: String, shape: [Int]) throws -> Weight {
        let t = try info(name)
        guard t.shape == shape else {
            throw InferenceError.badWeight(file: file.path, tensor: t.name, reason: "has shape \(t.shape), the config implies \(shape)")
        }
        return try Weight(file: file, tensor: t)
    }

    /// An embedding table, gathered by rows.
    func table(_ name: String, rows: Int, width: Int) throws -> EmbeddingTable {
        let t = try info(name)
        guard t.shape == [rows, width] else {
            throw InferenceError.badWeight(file: file.path, tensor: t.name, reason: "has shape \(t.shape), the config implies \([rows, width])")
        }
        file.advise(t, .random)
        return EmbeddingTable(file: file, tensor: t)
    }

    /// Names of the file's tensors that the model did not use, except those `ignored` says
    /// are expected to be unused.
    func unused(ignoring ignored: (String) -> Bool) -> [String] {
        file.tensors.map(\.name).filter { !used.contains($0) && !ignored($0) }
    }
}

/// Rows of a (possibly quantized, possibly paged) table, read through the storage layer.
struct EmbeddingTable: Sendable {
    let file: FolioFile
    let tensor: TensorInfo
    var width: Int { tensor.rowWidth }
    var rows: Int { tensor.rowCount }

    /// Writes rows `ids` into `out` (ids.count x width floats).
    func gather(_ ids: [Int32], into out: UnsafeMutablePointer<Float>) throws {
        try file.gatherRows(tensor, rows: ids.map(Int.init), into: UnsafeMutableBufferPointer(start: out, count: ids.count * width))
    }
}
