/// Failures of reading a tokenizer.json: a field that is wrong, or a feature this library
/// does not implement. Each names the file and the field; `description` is one line.
public enum TokenizerError: Error, CustomStringConvertible, Sendable {
    case unsupported(file: String, reason: String)
    case badConfig(file: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .unsupported(file, reason): return "\(file): \(reason)"
        case let .badConfig(file, field, reason): return "\(file): field '\(field)': \(reason)"
        }
    }
}
