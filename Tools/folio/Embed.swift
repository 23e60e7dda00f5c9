import ArgumentParser
import Folio
import FolioConvert
import FolioInference

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sentence embeddings from an encoder model (bert, roberta, xlm-roberta, distilbert, mpnet, modernbert; e.g. all-MiniLM-L6-v2).",
        discussion: "MODEL is a .folio file (or the index of its shards) converted from a sentence-transformers model folder; pooling, normalization and max_seq_length come from the files it carries.")

    @Argument(help: "The .folio model, or a sharded model's NAME.folio.index.json.") var model: String
    @Option(name: .customLong("text"), help: "A text to embed (repeatable).") var texts: [String] = []
    @Option(help: "A file of texts to embed, one per line.") var file: String?
    @Option(help: "Texts per batch.") var batchSize: Int = 32
    @Flag(help: "Print {\"embeddings\": [[...], ...]}.") var json = false
    @Flag(help: "Report load time and texts per second on stderr.") var timing = false

    func validate() throws {
        guard !texts.isEmpty || file != nil else { throw ValidationError("give at least one --text or a --file") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    func run() throws {
        try checkArgumentsAreUTF8()
        var all = texts
        if let file {
            let bytes = try FileSystem.read(file)
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw CLIError("\(file): not valid UTF-8 text")
            }
            all += text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        }
        let t0 = FileSystem.monotonicSeconds()
        try requireFolioModel(model)
        let embedder = try SentenceEmbedder(source: try FolioModel.open(model))
        let t1 = FileSystem.monotonicSeconds()
        let vectors = try embedder.embed(all, batchSize: batchSize)
        let t2 = FileSystem.monotonicSeconds()
        if timing {
            FileSystem.writeStderr("embed: load \(fmt(t1 - t0, 3)) s, \(all.count) texts in \(fmt(t2 - t1, 3)) s, \(fmt(Double(all.count) / max(t2 - t1, 1e-9), 1)) texts/s (batch \(batchSize))\n")
        }
        if json {
            emit(JSONValue.object([("embeddings", .array(vectors.map { .array($0.map { .double(Double($0)) }) }))]).serialized())
        } else {
            for v in vectors { emit(v.map { "\($0)" }.joined(separator: " ")) }
        }
    }

    /// Swift repairs invalid UTF-8 in arguments silently; a text that is not UTF-8 must be an
    /// error instead of a different text.
    func checkArgumentsAreUTF8() throws {
        for i in 1..<Int(CommandLine.argc) {
            guard let p = CommandLine.unsafeArgv[i] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlenFolio(p))
            guard String(validating: bytes, as: UTF8.self) != nil else {
                throw CLIError("argument \(i) is not valid UTF-8 text")
            }
        }
    }
}

/// Length of a C string without importing libc here.
func strlenFolio(_ p: UnsafePointer<CChar>) -> Int {
    var n = 0
    while p[n] != 0 { n += 1 }
    return n
}
