import ArgumentParser
import Folio
import FolioConvert

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compare the tensors of two files after dequantization.")

    @Argument(help: "First file.") var a: String
    @Argument(help: "Second file.") var b: String
    @Flag(help: "Print one JSON document.") var json = false
    @Option(help: "Also write pictures into this folder: per tensor both files' value histograms, the error histogram, the RMS error of every row and the largest error of every group of 32, and an overview page, index.html.") var plot: String?

    func run() throws {
        if let plot {
            let page = try WeightPlots.diff(a, b, into: plot)
            FileSystem.writeStderr("diff: pictures in \(plot), overview \(page)\n")
        }
        let d = try Inspector.diff(a, b)
        if json {
            emit(JSONValue.object([
                ("tensors", .array(d.common.map { t in
                    var m: [(String, JSONValue)] = [("name", .string(t.name))]
                    if let e = t.stats {
                        m += [("rmse", .double(e.rmse)), ("max_abs_error", .double(e.maxAbsError)), ("cosine", .double(e.cosine))]
                    } else {
                        m += [("shape_a", .array(t.shapeA.map { .int($0) })), ("shape_b", .array(t.shapeB.map { .int($0) }))]
                    }
                    return .object(m)
                })),
                ("only_in_a", .array(d.onlyA.map { .string($0) })), ("only_in_b", .array(d.onlyB.map { .string($0) })),
            ]).serialized())
            return
        }
        for t in d.common {
            if let e = t.stats {
                emit("\(t.name): rmse \(fmt(e.rmse))  max_abs_error \(fmt(e.maxAbsError))  cosine \(fmt(e.cosine, 6))")
            } else {
                emit("\(t.name): shape \(t.shapeA) vs \(t.shapeB)")
            }
        }
        for n in d.onlyA { emit("only in \(a): \(n)") }
        for n in d.onlyB { emit("only in \(b): \(n)") }
    }
}
