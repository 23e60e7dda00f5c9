import Foundation
import ArgumentParser
import Folio
import FolioConvert
import FolioInference

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity and bits per byte of a causal language model over a text or token file.",
        discussion: "FILE is UTF-8 text (tokenized with the model's tokenizer, special tokens of its template added) or, with --token-ids, token ids separated by commas or whitespace. Windows of --window tokens every --stride tokens score each token once (the Hugging Face sliding-window recipe).")

    @Argument(help: "The .folio model (or a sharded model's index).") var model: String
    @Argument(help: "The text or token-id file.") var file: String
    @Flag(name: .customLong("token-ids"), help: "FILE holds token ids, not text.") var tokenIDs = false
    @Option(help: "Tokens per window (default: the model's position limit, at most 1024).") var window: Int?
    @Option(help: "Tokens between window starts (default: half the window).") var stride: Int?
    @Option(help: "longcat_flash_ngram semantics: checkpoint or mlx-lm.") var semantics: String = "checkpoint"
    @Flag(help: "Print one JSON document.") var json = false
    @Option(help: "Threads to split the work over (default: every core).") var threads: Int?

    func validate() throws {
        if let window, window < 2 { throw ValidationError("--window must be at least 2") }
        if let stride, stride < 1 { throw ValidationError("--stride must be positive") }
        if let threads, threads < 1 || threads > 64 { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        if let threads { Inference.setThreads(threads) }
        try requireFolioModel(model)
        let g = try TextGenerator(source: try FolioModel.open(model), semantics: semantics)
        let bytes = try FileSystem.read(file)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw CLIError("\(file): not valid UTF-8") }
        let ids: [Int32]
        if tokenIDs {
            ids = try text.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map { s in
                guard let v = Int32(s), v >= 0 else { throw CLIError("\(file): '\(s.prefix(20))' is not a token id") }
                return v
            }
        } else {
            ids = try g.encode(text)
        }
        let w = window ?? min(g.positionLimit, 1024)
        let r = try g.perplexity(ids, window: w, stride: stride ?? max(1, w / 2))
        if json {
            var fields: [(String, JSONValue)] = [
                ("tokens", .int(r.tokens)), ("scored", .int(r.scored)), ("mean_nll", .double(r.meanNLL)),
                ("perplexity", .double(r.perplexity)), ("window", .int(r.window)), ("stride", .int(r.stride)),
            ]
            if !tokenIDs { fields += [("bytes", .int(bytes.count)), ("bits_per_byte", .double(r.bitsPerByte(bytes.count)))] }
            emit(JSONValue.object(fields).serialized())
        } else {
            var line = "\(r.scored) tokens scored: mean NLL \(fmt(r.meanNLL, 6)) nats, perplexity \(fmt(r.perplexity, 4))"
            if !tokenIDs { line += ", \(fmt(r.bitsPerByte(bytes.count), 4)) bits per byte" }
            emit(line + " (window \(r.window), stride \(r.stride))")
        }
    }
}
