import Folio

/// Failures of the converter and of the foreign-format readers. Each names the file and
/// the tensor or field at fault; `description` is one line for the user.
public enum ConvertError: Error, CustomStringConvertible, Sendable {
    case badFile(file: String, reason: String)
    case badField(file: String, field: String, reason: String)
    case badTensor(file: String, tensor: String, reason: String)
    case badFolder(path: String, reason: String)
    case badOption(String)
    case unsupported(file: String, reason: String)

    public var description: String {
        switch self {
        case let .badFile(file, reason): return "\(file): \(reason)"
        case let .badField(file, field, reason): return "\(file): field '\(field)': \(reason)"
        case let .badTensor(file, tensor, reason): return "\(file): tensor '\(tensor)': \(reason)"
        case let .badFolder(path, reason): return "\(path): \(reason)"
        case let .badOption(reason): return reason
        case let .unsupported(file, reason): return "\(file): \(reason)"
        }
    }
}
