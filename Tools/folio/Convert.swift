import ArgumentParser
import Folio
import FolioConvert
import FolioInference

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint to Folio, safetensors, GGUF or a Hugging Face folder.",
        discussion: """
        SRC: a .safetensors file, a Hugging Face model folder (config.json with model.safetensors \
        or sharded model-*.safetensors and model.safetensors.index.json, or pytorch_model*.bin), \
        a .gguf file, a PyTorch .bin/.pt/.pth file, a NumPy .npy/.npz file, or a .folio file \
        or sharded index (.folio.index.json).
        DST: ends in .folio (Folio), .safetensors (quantized tensors are dequantized to float32) .gguf (GGUF v3 for llama.cpp, llama and mistral models: int8/gN as Q8_0 and int4/gN as Q4_1 without loss, F32/F16/BF16 as stored, anything else as F32, the tokenizer and chat template carried) or / (a Hugging Face model folder: model.safetensors and every carried file: config, tokenizer, generation and sentence-transformers files).
        Schemes: f32, f16, bf16, int8, int8/gN, int4 (= int4/g32), int4/gN, affine8/gN, and for embedding tables int3/gN and int2/gN; N in 16, 32, 64, 128, 256.
        """)

    @Argument(help: "Source checkpoint.") var src: String
    @Argument(help: "Destination (.folio, .safetensors, .gguf or a folder/).") var dst: String
    @Option(help: "Scheme for every embedding table (token and n-gram embeddings).") var embeddings: String?
    @Option(help: "Preset for a model's matrices: int8 (linear weights and the output layer int8/g32) or int4 (linear weights int4/g32, output layer int8/g32). Embedding tables only looked up get the preset's scheme, paged; norms and biases are kept; --quantize and --embeddings win over it. Quantized matrices are stored as records back to back (format version 3).") var weights: String?
    @Option(help: "GLOB=SCHEME for tensors whose name matches GLOB (repeatable; first match wins).") var quantize: [String] = []
    @Option(help: "Page size of the paged layout in bytes (power of two, 4096 to 64 MiB).") var pageSize: Int = 4096
    @Option(help: "Checksum chunk size in bytes (power of two, 4096 to 1 MiB; default 1 MiB). Remote reads fetch whole chunks: for tables read over HTTP, use the page size.") var chunkSize: Int = 1 << 20
    @Flag(help: "In safetensors output, keep quantized tensors as U8 row records described in __metadata__ (folio.quantized.NAME) instead of dequantizing them to float32.") var keepQuantized = false
    @Option(help: "Split the output into shards of about this size in tensor bytes (e.g. 5GB, 500MB, 2GiB; headers and alignment come on top): NAME-0000k-of-0000n files and an index (NAME.folio.index.json or NAME.safetensors.index.json). A paged table larger than a shard is split by rows.") var maxShardSize: String?
    @Option(help: "Store tensors compressed (Folio format version 2): lz4, zstd, lz4:LEVEL (1-12) or zstd:LEVEL (1-22), in independently compressed chunks. Without it a .folio destination gets the plain, mmap-ready layout (so converting a compressed file unpacks it).") var compress: String?
    @Flag(inversion: .prefixedNo, help: "With --compress: split 16- and 32-bit floats into byte planes before compressing, always (--byte-planes) or never (--no-byte-planes); by default per tensor, where it makes the tensor smaller.") var bytePlanes: Bool?
    @Option(help: "With --compress: target bytes per chunk, rounded down to whole rows or pages.") var chunkBytes: Int = CompressionOptions.defaultChunkBytes
    @Option(help: "With --compress: keep a chunk raw unless compression saves at least this many percent of it.") var minSaving: Double = 100 * CompressionOptions.defaultMinSaving
    @Option(help: "With --compress: threads compressing chunks.") var threads: Int = 2
    @Flag(help: "Print a JSON summary.") var json = false

    func validate() throws {
        guard pageSize >= 4096, pageSize <= 1 << 26, pageSize & (pageSize - 1) == 0 else {
            throw ValidationError("--page-size \(pageSize) must be a power of two between 4096 and 67108864")
        }
        guard dst.hasSuffix(".folio") || dst.hasSuffix(".safetensors") || dst.hasSuffix(".gguf") || dst.hasSuffix("/") || FileSystem.isDirectory(dst) else {
            throw ValidationError("DST '\(dst)' must end in .folio, .safetensors, .gguf or / (a Hugging Face model folder)")
        }
        if let c = compress {
            guard CompressionOptions.parse(c) != nil else {
                throw ValidationError("--compress '\(c)' must be lz4, zstd, lz4:LEVEL (1-12) or zstd:LEVEL (1-22)")
            }
            guard dst.hasSuffix(".folio") else { throw ValidationError("--compress needs a .folio destination") }
            guard chunkBytes >= 1, chunkBytes <= TensorCompression.maxChunkBytes else {
                throw ValidationError("--chunk-bytes \(chunkBytes) must be in 1...\(TensorCompression.maxChunkBytes)")
            }
            guard minSaving >= 0, minSaving < 100 else { throw ValidationError("--min-saving \(minSaving) must be in 0..<100") }
            guard threads >= 1, threads <= 256 else { throw ValidationError("--threads \(threads) must be in 1...256") }
        }
    }

    func run() throws {
        guard chunkSize >= 4096, chunkSize <= 1 << 20, chunkSize & (chunkSize - 1) == 0 else {
            throw ValidationError("--chunk-size \(chunkSize) must be a power of two between 4096 and 1048576")
        }
        var options = ConversionOptions(pageSize: pageSize, keepQuantized: keepQuantized)
        options.chunkSize = chunkSize
        if let e = embeddings { options.embeddings = try ConversionOptions.parseScheme(e, option: "--embeddings") }
        options.rules = try quantize.map { try ConversionOptions.parseRule($0) }
        if let w = weights { options.weights = try WeightsPreset.parse(w) }
        if let m = maxShardSize {
            guard let bytes = FolioSharding.parseSize(m) else { throw ValidationError("--max-shard-size '\(m)' is not a size such as 5GB, 500MB or 1048576") }
            options.maxShardSize = bytes
        }
        let progress = Progress("converting")
        var converter = Converter(options: options, progress: { progress.update($0, $1) })
        converter.notice = { FileSystem.writeStderr("folio: note: \($0)\n") }
        converter.ggufExporter = { try GGUFExport.write($0, to: $1) }
        let start = FileSystem.monotonicSeconds()
        var reports: [TensorReport]
        if let c = compress, var co = CompressionOptions.parse(c) {
            co.planes = bytePlanes.map { $0 ? .on : .off } ?? .auto
            co.chunkBytes = chunkBytes
            co.minSaving = minSaving / 100
            co.threads = threads
            reports = try converter.convert(from: src, to: dst, compression: co).tensors
        } else {
            reports = try converter.convert(from: src, to: dst)
        }
        let seconds = FileSystem.monotonicSeconds() - start
        // A rule that matches no tensor is most likely a typo in its glob: said on stderr.
        for (rule, parsed) in zip(quantize, options.rules) where !reports.contains(where: { parsed.0.matches($0.name) }) {
            FileSystem.writeStderr("folio: note: --quantize '\(rule)' matched no tensor of \(src)\n")
        }
        let bytesIn = reports.reduce(0) { $0 + $1.bytesIn }, bytesOut = reports.reduce(0) { $0 + $1.bytesOut }
        if json {
            let tensors: [JSONValue] = reports.map { r in
                var m: [(String, JSONValue)] = [
                    ("name", .string(r.name)), ("source_dtype", .string(r.sourceDType)), ("scheme", .string(r.scheme)),
                    ("shape", .array(r.shape.map { .int($0) })), ("bytes_in", .int(r.bytesIn)), ("bytes_out", .int(r.bytesOut)),
                ]
                if let n = r.note { m.append(("note", .string(n))) }
                if let e = r.error {
                    m += [("rmse", .double(e.rmse)), ("max_abs_error", .double(e.maxAbsError)), ("cosine", .double(e.cosine)),
                          ("relative_rmse", .double(e.relativeRMSE))]
                }
                return .object(m)
            }
            emit(JSONValue.object([
                ("source", .string(src)), ("destination", .string(dst)), ("bytes_in", .int(bytesIn)), ("bytes_out", .int(bytesOut)),
                ("seconds", .double(seconds)), ("tensors", .array(tensors)),
            ]).serialized())
        } else {
            for r in reports { if let n = r.note { FileSystem.writeStderr("folio: note: \(r.name): \(n)\n") } }
            let quantized = reports.filter { $0.error != nil }
            for r in quantized {
                let e = r.error!
                emit("\(r.name): \(r.sourceDType) -> \(r.scheme)  rmse \(fmt(e.rmse))  max_abs_error \(fmt(e.maxAbsError))  cosine \(fmt(e.cosine, 6))")
            }
            var written = dst
            if options.maxShardSize != nil {
                let base = String(dst.split(separator: "/").last ?? "")
                let dir = dst.contains("/") ? String(dst[..<dst.lastIndex(of: "/")!]) : "."
                let index = dst.hasSuffix(".folio") ? FolioSharding.indexPath(dst) : dir + "/" + base.dropLast(".safetensors".count) + ".safetensors.index.json"
                if !FileSystem.exists(dst), FileSystem.exists(index) { written = "\(index) and its shards" }
            }
            emit("wrote \(written): \(reports.count) tensors, \(bytesIn) -> \(bytesOut) bytes in \(fmt(seconds, 2)) s")
        }
    }
}

func fmt(_ v: Double, _ digits: Int = 4) -> String {
    guard v.isFinite else { return "\(v)" }
    if v != 0 && abs(v) < 1e-3 {
        var e = 0
        var m = abs(v)
        while m < 1 { m *= 10; e -= 1 }
        return (v < 0 ? "-" : "") + fmt(m, 3) + "e\(e)"
    }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (v * p).rounded() / p
    return "\(r)"
}
