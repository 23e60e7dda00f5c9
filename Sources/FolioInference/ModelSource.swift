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
    /// Fetches the carried files of a remote model up front, so that a network failure is
    /// reported as such rather than read as a missing file by `fileBytes`.
    func fetchFiles() throws
}

extension ModelSource {
    public func fetchFiles() throws {}
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
    public func fetchFiles() throws {
        for f in header.files { _ = try withFile(named: f.name) { _ in () } }
    }
    public var tensorNames: [String] { tensors.map(\.name) }
    public var metadataPairs: [(String, String)] { header.metadata ?? [] }
    public func parts(of name: String) -> [TensorPart]? {
        tensor(named: name).map { [TensorPart(file: self, tensor: $0, firstRow: 0)] }
    }
}

/// A sharded model's index as a source of tensors for the runner: its tensors' parts (a
/// table split by rows across shards has several) and its carried files.
extension FolioIndex: ModelSource {
    public var tensorNames: [String] { entries.map(\.name) }
    public var metadataPairs: [(String, String)] { metadata ?? [] }

    public func fileBytes(named name: String) -> [UInt8]? {
        files.first { $0.name == name }?.bytes
    }

    public func parts(of name: String) -> [TensorPart]? {
        guard let e = entries.first(where: { $0.name == name }) else { return nil }
        return e.parts.map { TensorPart(file: $0.file, tensor: $0.tensor, firstRow: $0.rows.lowerBound) }
    }
}

/// One call for any model: a file or an index, local or remote (`FolioModel.open`).
extension FolioModel: ModelSource {
    private var source: ModelSource {
        switch self {
        case let .file(f): return f
        case let .index(i): return i
        }
    }
    public var tensorNames: [String] { source.tensorNames }
    public var metadataPairs: [(String, String)] { source.metadataPairs }
    public func fileBytes(named name: String) -> [UInt8]? { source.fileBytes(named: name) }
    public func parts(of name: String) -> [TensorPart]? { source.parts(of: name) }
    public func fetchFiles() throws { try source.fetchFiles() }
}
