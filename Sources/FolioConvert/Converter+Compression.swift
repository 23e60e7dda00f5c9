import Folio

extension Converter {
    /// Converts `src` to a Folio file `dst` whose tensors are stored compressed. A plain
    /// .folio source that needs no other change is compressed directly; anything else is
    /// first converted to a scratch file beside `dst` (removed afterwards).
    public func convert(from src: String, to dst: String, compression: CompressionOptions) throws -> (tensors: [TensorReport], compression: [CompressionReport]) {
        guard dst.hasSuffix(".folio") else { throw ConvertError.badOption("--compress needs a .folio destination, not '\(dst)'") }
        guard options.maxShardSize == nil else { throw ConvertError.badOption("--compress cannot be combined with --max-shard-size") }
        if src.hasSuffix(".folio"), options.embeddings == nil, options.rules.isEmpty {
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
        return try FileSystem.withScratchFile(near: dst) { scratch in
            var tensors = try convert(from: src, to: scratch)
            let reports = try FolioCompressor.write(try FolioFile(path: scratch), to: dst, options: compression, progress: progress)
            let stored = Dictionary(reports.map { ($0.name, $0.storedBytes) }, uniquingKeysWith: { a, _ in a })
            tensors = tensors.map { r in
                TensorReport(name: r.name, sourceDType: r.sourceDType, scheme: r.scheme, shape: r.shape, bytesIn: r.bytesIn,
                             bytesOut: stored[r.name] ?? r.bytesOut, paged: r.paged, error: r.error, note: r.note)
            }
            return (tensors, reports)
        }
    }
}
