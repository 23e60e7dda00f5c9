import Folio

extension Converter {
    /// Converts `src` to a Folio file `dst` whose tensors are stored compressed, or to
    /// compressed shards and their index with `--max-shard-size` (shards are planned by their
    /// uncompressed sizes, so each stays within the limit). A plain .folio source that needs
    /// no other change is compressed directly; anything else is converted a file at a time
    /// to a scratch file beside its destination, which is then compressed into place.
    public func convert(from src: String, to dst: String, compression: CompressionOptions) throws -> (tensors: [TensorReport], compression: [CompressionReport]) {
        guard dst.hasSuffix(".folio") else { throw ConvertError.badOption("--compress needs a .folio destination, not '\(dst)'") }
        if src.hasSuffix(".folio"), options.embeddings == nil, options.rules.isEmpty, options.maxShardSize == nil {
            let f = try FolioFile(path: src)
            if f.header.pageSize == options.pageSize {
                let reports = try FolioCompressor.write(f, to: dst, options: compression, progress: progress)
                let tensors = zip(f.tensors, reports).map { t, r in
                    TensorReport(name: t.name, sourceDType: t.encoding.name, scheme: t.encoding.name, shape: t.shape, bytesIn: t.storedBytes,
                                 bytesOut: r.storedBytes, paged: t.paged != nil, error: nil)
                }
                return (tensors, reports)
            }
        }
        let checkpoint = try Checkpoint.open(src, keepQuantized: options.keepQuantized, carryTokenizer: true)
        for n in checkpoint.notes { notice?(n) }
        var reports: [CompressionReport] = []
        let tensors = try writeFolio(checkpoint, to: dst, compression: compression, compressed: &reports)
        return (tensors, reports)
    }
}
