import Foundation
import Folio

/// What happened to one tensor during a conversion.
public struct TensorReport: Sendable {
    public let name: String
    public let sourceDType: String
    public let scheme: String
    public let shape: [Int]
    public let bytesIn: Int
    public let bytesOut: Int
    public let paged: Bool
    /// Reconstruction error for lossy conversions (nil when bytes were kept exactly).
    public var error: ErrorStats?
    /// Why a requested scheme was not applied, if it was not.
    public var note: String? = nil

    public init(name: String, sourceDType: String, scheme: String, shape: [Int], bytesIn: Int, bytesOut: Int, paged: Bool,
                error: ErrorStats?, note: String? = nil) {
        self.name = name
        self.sourceDType = sourceDType
        self.scheme = scheme
        self.shape = shape
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.paged = paged
        self.error = error
        self.note = note
    }
}

/// Converts checkpoints to Folio or safetensors in a stream: no tensor is held whole in
/// memory; source pages are released as they are consumed.
public struct Converter {
    public let options: ConversionOptions
    /// Called with (tensors done, tensors total).
    public var progress: ((Int, Int) -> Void)?
    /// Called with each thing about the source the user should know (a tokenizer not carried).
    public var notice: ((String) -> Void)?
    /// Writes a checkpoint as GGUF (`.gguf` destinations); the command line sets it to the
    /// runner's llama-family export, which knows the architectures.
    public var ggufExporter: ((Checkpoint, String) throws -> [TensorReport])?

    public init(options: ConversionOptions, progress: ((Int, Int) -> Void)? = nil) {
        self.options = options
        self.progress = progress
    }

    /// Rows per step: about 4M values, at least one row.
    static func rowsPerStep(width: Int) -> Int { Swift.max(1, (4 << 20) / Swift.max(1, width)) }

    public func convert(from src: String, to dst: String) throws -> [TensorReport] {
        let checkpoint = try Checkpoint.open(src, keepQuantized: options.keepQuantized, carryTokenizer: true)
        for n in checkpoint.notes { notice?(n) }
        if dst.hasSuffix(".folio") { return try writeFolio(checkpoint, to: dst) }
        if dst.hasSuffix(".safetensors") { return try writeSafetensors(checkpoint, to: dst) }
        if dst.hasSuffix("/") || FileSystem.isDirectory(dst) { return try writeFolder(checkpoint, to: dst) }
        if dst.hasSuffix(".gguf") { return try writeGGUF(checkpoint, to: dst) }
        throw ConvertError.badOption("destination '\(dst)' must end in .folio, .safetensors, .gguf or / (a Hugging Face folder)")
    }

    /// GGUF output: the checkpoint as it is, or, when schemes are asked for, quantized into a
    /// scratch .folio first (whose per-tensor errors the reports keep).
    func writeGGUF(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        guard let export = ggufExporter else { throw ConvertError.badOption("GGUF output is not available in this build") }
        guard options.maxShardSize == nil else { throw ConvertError.badOption("--max-shard-size: GGUF output is written as one file") }
        if options.embeddings == nil && options.rules.isEmpty && options.weights == nil { return try export(c, dst) }
        return try FileSystem.withScratchFile(near: dst) { scratch in
            let quantized = try writeFolio(c, to: scratch)
            var reports = try export(try Checkpoint.open(scratch, carryTokenizer: true), dst)
            let errors = Dictionary(quantized.map { ($0.name, $0.error) }, uniquingKeysWith: { a, _ in a })
            for i in reports.indices { reports[i].error = errors[reports[i].name] ?? nil }
            return reports
        }
    }

    /// A Hugging Face model folder: the tensors as `model.safetensors` (or shards with an
    /// index, under --max-shard-size), and every file the source carries (config.json,
    /// generation_config.json, tokenizer files, sentence-transformers module folders) beside
    /// them, each file written atomically (weight files of an earlier export in the folder
    /// are removed first; other files are replaced when carried again).
    func writeFolder(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        let dir = dst.hasSuffix("/") ? String(dst.dropLast()) : dst
        for f in c.files {
            let parts = f.name.split(separator: "/", omittingEmptySubsequences: false)
            guard !f.name.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw ConvertError.badFile(file: c.path, reason: "carried file name '\(f.name)' would be written outside the folder")
            }
        }
        func isWeights(_ name: String) -> Bool {
            name.hasPrefix("model.safetensors") || (name.hasPrefix("model-") && name.hasSuffix(".safetensors"))
        }
        if let clash = c.files.first(where: { isWeights($0.name) }) {
            throw ConvertError.badFile(file: c.path, reason: "carried file '\(clash.name)' has the name of the folder's weights")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Weights of an earlier export would be loaded instead of (or beside) these: removed first.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where isWeights(name) {
            try FileManager.default.removeItem(atPath: dir + "/" + name)
        }
        let reports = try writeSafetensors(c, to: dir + "/model.safetensors")
        for f in c.files {
            let path = dir + "/" + f.name
            let parent = (path as NSString).deletingLastPathComponent
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            try FileSystem.writeAtomically(path, f.bytes)
        }
        return reports
    }
}
