/// Every failure of the storage layer. Each case names the file and the culprit, and its
/// `description` is one line written for the user.
public enum FolioError: Error, CustomStringConvertible, Sendable {
    /// A system call failed.
    case system(SystemError)
    /// The file is not a Folio file, or its fixed parts are damaged or truncated.
    case malformed(file: String, reason: String)
    /// A header field is missing, of the wrong type or out of range.
    case badHeader(file: String, field: String, reason: String)
    /// A field of a sharded model's index is missing or wrong.
    case badIndex(file: String, field: String, reason: String)
    /// A tensor entry is inconsistent (dtype, shape, offsets, layout).
    case badTensor(file: String, tensor: String, reason: String)
    /// A checksum did not match.
    case checksum(file: String, reason: String)
    /// A tensor or embedded file asked for by name is not in the file.
    case notFound(file: String, name: String)
    /// A row index outside the tensor.
    case rowOutOfRange(file: String, tensor: String, row: Int, rows: Int)
    /// Values could not be encoded with the requested scheme.
    case encode(file: String, tensor: String, reason: String)
    /// The caller used the API wrongly with data from outside (for example writing
    /// more bytes than a tensor holds).
    case invalidUse(file: String, reason: String)
    /// Reading a remote file failed: the server refused, broke off, sent bytes that fail
    /// their checksum, ignored the byte range or changed the file between two requests.
    case remote(url: String, reason: String)

    public var description: String {
        switch self {
        case let .system(e): return e.description
        case let .malformed(file, reason): return "\(file): \(reason)"
        case let .badHeader(file, field, reason): return "\(file): header field '\(field)': \(reason)"
        case let .badIndex(file, field, reason): return "\(file): field '\(field)': \(reason)"
        case let .badTensor(file, tensor, reason): return "\(file): tensor '\(tensor)': \(reason)"
        case let .checksum(file, reason): return "\(file): \(reason)"
        case let .notFound(file, name): return "\(file): no tensor or file named '\(name)'"
        case let .rowOutOfRange(file, tensor, row, rows):
            return "\(file): tensor '\(tensor)': row \(row) is out of range (the tensor has \(rows) rows)"
        case let .encode(file, tensor, reason): return "\(file): tensor '\(tensor)': \(reason)"
        case let .invalidUse(file, reason): return "\(file): \(reason)"
        case let .remote(url, reason): return "\(url): \(reason)"
        }
    }
}

extension RowCodecIssue {
    /// A user-facing explanation for row `row` of a tensor.
    public func explain(row: Int) -> String {
        switch self {
        case let .nonFinite(i): return "row \(row) value \(i) is NaN or infinite and cannot be quantized"
        case let .scaleOverflow(m): return "row \(row) has magnitude \(m), too large for float16 scales"
        case let .notEncodableFromFloat(d): return "cannot encode float values as \(d.rawValue)"
        }
    }
}
