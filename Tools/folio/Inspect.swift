import ArgumentParser
import Folio
import FolioConvert

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the header and tensors of a .folio or .safetensors file.")

    @Argument(help: "File to inspect.") var file: String
    @Flag(help: "Print one JSON document.") var json = false
    @Option(help: "Only tensors whose name matches this glob.") var tensor: String?
    @Flag(help: "Add min, max, mean, std and NaN/Inf counts over the dequantized values.") var stats = false
    @Option(help: "Also write pictures into this folder: a PNG histogram of each floating-point tensor's values (and each row's quantization step for quantized ones) and an overview page, index.html.") var plot: String?

    func run() throws {
        if let plot {
            let page = try WeightPlots.inspect(file, filter: tensor.map(Glob.init), into: plot)
            FileSystem.writeStderr("inspect: pictures in \(plot), overview \(page)\n")
        }
        let doc = try Inspector.describe(file, filter: tensor.map(Glob.init), stats: stats)
        if json { emit(doc.serialized()); return }
        var lines: [String] = []
        let format = doc["format"]?.stringValue ?? "?"
        var head = "\(file): \(format)"
        if let v = doc["version"]?.intValue { head += " v\(v)" }
        if let p = doc["page_size"]?.intValue { head += ", page size \(p)" }
        head += ", \(doc["file_size"]?.intValue ?? 0) bytes, \(doc["tensors"]?.arrayValue?.count ?? 0) tensors"
        lines.append(head)
        for (k, v) in doc["metadata"]?.objectValue ?? [] {
            var text = v.stringValue ?? v.serialized()
            if text.count > 120 { text = String(text.prefix(117)) + "..." }
            lines.append("  metadata \(k) = \(text)")
        }
        for f in doc["files"]?.arrayValue ?? [] {
            lines.append("  file \(f["name"]?.stringValue ?? "") (\(f["nbytes"]?.intValue ?? 0) bytes)")
        }
        for t in doc["tensors"]?.arrayValue ?? [] {
            let shape = (t["shape"]?.arrayValue ?? []).map { $0.serialized() }.joined(separator: ", ")
            var line = "  \(t["name"]?.stringValue ?? "")  \(t["dtype"]?.stringValue ?? "")  [\(shape)]"
            if let o = t["offset"]?.intValue { line += "  offset \(o)" }
            line += "  \(t["nbytes"]?.intValue ?? 0) bytes"
            if let c = t["codec"]?.stringValue, let stored = t["stored_nbytes"]?.intValue {
                let ratio = Double(stored) / Double(max(1, t["nbytes"]?.intValue ?? 1))
                line += "  stored \(stored) bytes (\(c)\(t["planes"]?.boolValue == true ? ", byte planes" : ""), \(t["chunks"]?.intValue ?? 0) chunks, \(fmt(100 * ratio, 1))%)"
            }
            if let s = t["shard"]?.stringValue { line += "  in \(s)" }
            if let rs = t["row_stride"]?.intValue, let rpp = t["rows_per_page"]?.intValue { line += "  paged: stride \(rs), \(rpp) rows/page" }
            if let rs = t["row_stride"]?.intValue, t["layout"]?.stringValue == "records" { line += "  records: stride \(rs)" }
            if let s = t["stats"] {
                line += "  min \(s["min"]?.serialized() ?? "") max \(s["max"]?.serialized() ?? "") mean \(s["mean"]?.serialized() ?? "") std \(s["std"]?.serialized() ?? "") nan \(s["nan"]?.serialized() ?? "") inf \(s["inf"]?.serialized() ?? "")"
            }
            lines.append(line)
        }
        emit(lines.joined(separator: "\n"))
    }
}
