import Folio

/// Where a model's tensors and carried files come from: one .folio file, or the shards of a
/// sharded model's index (`NAME.folio.index.json`), where a large paged table can be split
/// by rows across shards.
public protocol ModelSource: Sendable {
    /// For messages.
    var path: String { get }
    var tensorNames: [String] { get }
    /// A carried file (config.json, tokenizer.json, ...).
    func fileBytes(named name: String) -> [UInt8]?
    /// The file's string metadata (for a model converted from GGUF, its key-value pairs as
    /// `gguf.KEY` = JSON text).
    var metadataPairs: [(String, String)] { get }
    /// The pieces of a tensor in row order, each with the first row of the whole tensor it
    /// holds; nil when the tensor does not exist.
    func parts(of name: String) -> [TensorPart]?
}

/// One piece of a tensor: rows `firstRow ..< firstRow + tensor.rowCount` of the whole.
public struct TensorPart: Sendable {
    public let file: FolioFile
    public let tensor: TensorInfo
    public let firstRow: Int
    public init(file: FolioFile, tensor: TensorInfo, firstRow: Int) {
        self.file = file
        self.tensor = tensor
        self.firstRow = firstRow
    }
}

extension FolioFile: ModelSource {
    public var tensorNames: [String] { tensors.map(\.name) }
    public var metadataPairs: [(String, String)] { header.metadata ?? [] }
    public func parts(of name: String) -> [TensorPart]? {
        tensor(named: name).map { [TensorPart(file: self, tensor: $0, firstRow: 0)] }
    }
}
