import ArgumentParser
import Folio
import FolioConvert

struct Rows: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print rows of a tensor, dequantized to float32.")

    @Argument(help: "File.") var file: String
    @Argument(help: "Tensor name.") var tensor: String
    @Argument(help: "Comma-separated row indices.") var rows: String
    @Flag(help: "Print {\"rows\": [[...], ...]}.") var json = false

    func validate() throws { _ = try indices() }

    func indices() throws -> [Int] {
        var indices: [Int] = []
        for part in rows.split(separator: ",", omittingEmptySubsequences: false) {
            guard let i = Int(part.trimmingSpaces), i >= 0 else {
                throw ValidationError("ROWS '\(rows)': '\(part)' is not a non-negative row index")
            }
            indices.append(i)
        }
        return indices
    }

    func run() throws {
        let indices = try indices()
        let values = try Inspector.rows(file, tensor: tensor, rows: indices)
        if json {
            emit(JSONValue.object([("rows", .array(values.map { .array($0.map { .double(Double($0)) }) }))]).serialized())
        } else {
            for (i, r) in zip(indices, values) { emit("\(i): " + r.map { "\($0)" }.joined(separator: " ")) }
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
