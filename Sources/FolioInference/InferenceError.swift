/// Failures of the inference layer: unsupported models, bad configs, bad input text. Each
/// names the file or field; `description` is one line for the user.
public enum InferenceError: Error, CustomStringConvertible, Sendable {
    case unsupported(file: String, reason: String)
    case badConfig(file: String, field: String, reason: String)
    case missingWeight(file: String, tensor: String)
    case badWeight(file: String, tensor: String, reason: String)
    case badInput(String)

    public var description: String {
        switch self {
        case let .unsupported(file, reason): return "\(file): \(reason)"
        case let .badConfig(file, field, reason): return "\(file): field '\(field)': \(reason)"
        case let .missingWeight(file, tensor): return "\(file): the model needs tensor '\(tensor)', which the file does not have"
        case let .badWeight(file, tensor, reason): return "\(file): tensor '\(tensor)': \(reason)"
        case let .badInput(reason): return reason
        }
    }
}
