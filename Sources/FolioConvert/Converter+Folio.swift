import Dispatch
import Folio

/// One piece of a shard: a whole tensor, or a row range of a paged table split across shards.
struct ShardItem {
    let decision: Int
    /// nil for the whole tensor.
    let rows: Range<Int>?
    /// The tensor's name inside the shard file.
    let name: String
}

extension Converter {
    func writeFolio(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        var none: [CompressionReport] = []
        return try writeFolio(c, to: dst, compression: nil, compressed: &none)
    }

    /// Writes `c` as one Folio file, or as shards and an index with `--max-shard-size`. With
    /// `compression`, each file is first written plainly to a scratch file beside it and then
    /// compressed into place, so the scratch space needed is one file (one shard), and
    /// `compressed` receives the compressor's reports, named as the tensors inside the files.
    func writeFolio(_ c: Checkpoint, to dst: String, compression: CompressionOptions? = nil,
                    compressed: inout [CompressionReport]) throws -> [TensorReport] {
        let planner = ConversionPlanner(options: options, checkpoint: c)
        let decisions = try c.tensors.map { try planner.decide($0) }
        let plans = decisions.map { d -> TensorPlan in
            var p = TensorPlan(name: d.source.name, encoding: d.target, shape: d.source.shape, paged: d.paged,
                               sourceDType: d.target == d.source.encoding ? d.source.sourceDTypeHint : (d.source.encoding.plainDType ?? d.source.sourceDTypeHint))
            p.records = d.records
            return p
        }
        guard let maxShard = options.maxShardSize else {
            let items = decisions.indices.map { ShardItem(decision: $0, rows: nil, name: decisions[$0].source.name) }
            var stats: [Int: ErrorStats] = [:]
            var out: [Int: Int] = [:]
            try writeShard(dst, items: items, decisions: decisions, plans: plans, files: c.files, metadata: c.metadata,
                           compression: compression, compressed: &compressed, stats: &stats, bytesOut: &out, done: 0)
            return reports(decisions, stats: stats, bytesOut: out)
        }
        let shards = try FolioSharding.plan(plans, maxBytes: maxShard, pageSize: options.pageSize, path: dst)
        if shards.count <= 1 {
            var o = options
            o.maxShardSize = nil
            return try Converter(options: o, progress: progress).writeFolio(c, to: dst, compression: compression, compressed: &compressed)
        }
        let names = FolioSharding.shardNames(dst, count: shards.count)
        var stats: [Int: ErrorStats] = [:]
        var out: [Int: Int] = [:]
        var written: [String] = []
        // Shards of this run are useless without their index: they are removed on an error,
        // and on Ctrl-C until the index is in place.
        try FileSystem.withProvisionalFiles { provisional in
            do {
                var done = 0
                for (k, items) in shards.enumerated() {
                    let path = FolioSharding.directory(of: dst) + "/" + names[k]
                    // Before the shard exists, so that no moment is left between its rename and this.
                    provisional(path)
                    try writeShard(path, items: items, decisions: decisions, plans: plans, files: k == 0 ? c.files : [], metadata: c.metadata,
                                   compression: compression, compressed: &compressed, stats: &stats, bytesOut: &out, done: done)
                    written.append(path)
                    done += items.count
                }
                let index = FolioSharding.index(decisions: decisions, plans: plans, shards: shards, names: names, files: c.files, metadata: c.metadata)
                // The index too: a signal between its rename and the end of this scope then
                // removes the whole set, never the shards alone.
                provisional(FolioSharding.indexPath(dst))
                try FileSystem.writeAtomically(FolioSharding.indexPath(dst), Array(index.serialized(pretty: true).utf8) + [0x0A])
            } catch {
                for p in written { FileSystem.remove(p) }
                throw error
            }
        }
        return reports(decisions, stats: stats, bytesOut: out)
    }

    private func reports(_ decisions: [TensorDecision], stats: [Int: ErrorStats], bytesOut: [Int: Int]) -> [TensorReport] {
        decisions.enumerated().map { i, d in
            TensorReport(name: d.source.name, sourceDType: d.source.storedType, scheme: d.target.name, shape: d.source.shape,
                         bytesIn: d.source.storedBytes, bytesOut: bytesOut[i] ?? 0, paged: d.paged, error: stats[i], note: d.note)
        }
    }

    /// Writes one Folio file holding `items`, compressed through a scratch file when asked.
    private func writeShard(_ path: String, items: [ShardItem], decisions: [TensorDecision], plans: [TensorPlan],
                            files: [(name: String, bytes: [UInt8])], metadata: [(String, String)]?,
                            compression: CompressionOptions?, compressed: inout [CompressionReport],
                            stats: inout [Int: ErrorStats], bytesOut: inout [Int: Int], done: Int) throws {
        guard let compression else {
            return try writeShard(path, items: items, decisions: decisions, plans: plans, files: files, metadata: metadata,
                                  stats: &stats, bytesOut: &bytesOut, done: done)
        }
        let reports = try FileSystem.withScratchFile(near: path) { scratch in
            try writeShard(scratch, items: items, decisions: decisions, plans: plans, files: files, metadata: metadata,
                           stats: &stats, bytesOut: &bytesOut, done: done)
            return try FolioCompressor.write(try FolioFile(path: scratch), to: path, options: compression)
        }
        // The file holds `items` in order, so report k is item k.
        for (item, r) in zip(items, reports) {
            bytesOut[item.decision, default: 0] += r.storedBytes - r.logicalBytes
        }
        compressed += reports
    }

    /// Writes one plain Folio file holding `items`.
    private func writeShard(_ path: String, items: [ShardItem], decisions: [TensorDecision], plans: [TensorPlan],
                            files: [(name: String, bytes: [UInt8])], metadata: [(String, String)]?,
                            stats: inout [Int: ErrorStats], bytesOut: inout [Int: Int], done: Int) throws {
        let shardPlans = items.map { item -> TensorPlan in
            var p = plans[item.decision]
            p.name = item.name
            if let r = item.rows { p.shape = [r.count, p.shape.last ?? 1] }
            return p
        }
        let writer = try FolioWriter(path: path, tensors: shardPlans, files: files.map { ($0.name, $0.bytes.count) },
                                     metadata: metadata, pageSize: options.pageSize, chunkSize: options.chunkSize)
        do {
            for f in files { try f.bytes.withUnsafeBytes { try writer.writeFile(f.name, $0) } }
            for (k, item) in items.enumerated() {
                let d = decisions[item.decision]
                let info = writer.header.tensors[k]
                let rows = item.rows ?? 0..<(d.source.shape.isEmpty ? 1 : d.source.rowCount)
                if let e = try writeTensor(d, rows: rows, info: info, writer: writer) {
                    var merged = stats[item.decision] ?? ErrorStats()
                    merged.merge(e)
                    stats[item.decision] = merged
                }
                bytesOut[item.decision, default: 0] += info.nbytes
                d.source.release()
                progress?(done + k + 1, decisions.count)
            }
            try writer.finish()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Writes rows `rows` of a tensor; returns the reconstruction error of lossy targets.
    private func writeTensor(_ d: TensorDecision, rows: Range<Int>, info: TensorInfo, writer: FolioWriter) throws -> ErrorStats? {
        let s = d.source
        let width = s.rowWidth
        if d.target == s.encoding, info.paged == nil, s.denseDType != nil, rows.count == (s.shape.isEmpty ? 1 : s.rowCount) {
            // Dense to dense, same dtype: bit-exact copy.
            try s.forEachDensePiece { try writer.appendDense($0) }
            return nil
        }
        if d.target == s.encoding, let p = info.paged, s.recordSize != nil || s.denseDType != nil {
            // Same encoding into pages: copy records bit-exactly.
            let step = Converter.rowsPerStep(width: width)
            var buf = [UInt8](repeating: 0, count: Swift.min(rows.count, step) * p.recordSize)
            var r = rows.lowerBound
            while r < rows.upperBound {
                let n = Swift.min(step, rows.upperBound - r)
                try buf.withUnsafeMutableBytes { b in
                    if s.recordSize != nil {
                        try s.copyRecords(start: r, count: n, into: b.baseAddress!)
                    } else {
                        try s.forDenseRows(start: r, count: n) { raw in b.baseAddress!.copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
                    }
                    try writer.appendRawRows(UnsafeRawBufferPointer(rebasing: b[..<(n * p.recordSize)]))
                }
                r += n
            }
            return nil
        }
        // Re-encode through float32, measuring the error of lossy targets.
        let lossy = d.target != s.encoding
        var stats = ErrorStats()
        let w = s.shape.isEmpty ? 1 : width
        guard w > 0 else { return lossy ? stats : nil }
        let step = Converter.rowsPerStep(width: w)
        let record = info.paged?.recordSize ?? (w * (d.target.plainDType?.size ?? 4))
        var values = [Float](repeating: 0, count: Swift.min(rows.count, step) * w)
        var encoded = [UInt8](repeating: 0, count: Swift.min(rows.count, step) * record)
        var r = rows.lowerBound
        while r < rows.upperBound {
            let n = Swift.min(step, rows.upperBound - r)
            try values.withUnsafeMutableBufferPointer { v in
                // Sources that allow it are read by the encoding threads themselves.
                let concurrent = s.storage.supportsConcurrentReads
                if !concurrent { try s.readRows(start: r, count: n, into: v.baseAddress!) }
                try encoded.withUnsafeMutableBytes { e in
                    let part = try RowEncoder.encode(d.target, values: v, rows: n, width: w, record: record,
                                                     into: e.baseAddress!, measure: lossy, firstRow: r, tensor: s, read: concurrent)
                    stats.merge(part)
                    let bytes = UnsafeRawBufferPointer(rebasing: e[..<(n * record)])
                    if info.paged != nil { try writer.appendRawRows(bytes) } else { try writer.appendDense(bytes) }
                }
            }
            r += n
        }
        return lossy ? stats : nil
    }
}

/// Encodes batches of rows on every core, measuring reconstruction error as it goes.
enum RowEncoder {
    static let threads = max(1, FileSystem.processorCount)

    static func encode(_ target: Encoding, values: UnsafeMutableBufferPointer<Float>, rows: Int, width: Int, record: Int,
                       into out: UnsafeMutableRawPointer, measure: Bool, firstRow: Int, tensor: SourceTensor, read: Bool = false) throws -> ErrorStats {
        let slices = rows >= 64 ? min(threads, rows / 32) : 1
        let results = UnsafeMutableBufferPointer<Result<ErrorStats, ConvertError>>.allocate(capacity: slices)
        results.initialize(repeating: .success(ErrorStats()))
        defer { results.deallocate() }
        // The slices write disjoint rows of `out` and their own element of `results`.
        let shared = Unchecked((base: values.baseAddress!, out: out, results: results, tensor: tensor))
        let work: @Sendable (Int) -> Void = { k in
            let (base, out, results, tensor) = shared.value
            let lo = rows * k / slices, hi = rows * (k + 1) / slices
            if read, hi > lo {
                do {
                    try tensor.readRows(start: firstRow + lo, count: hi - lo, into: base + lo * width)
                } catch let e as ConvertError {
                    results[k] = .failure(e)
                    return
                } catch {
                    results[k] = .failure(.badTensor(file: tensor.file, tensor: tensor.name, reason: "\(error)"))
                    return
                }
            }
            var stats = ErrorStats()
            var back = [Float](repeating: 0, count: measure ? width : 0)
            for i in lo..<hi {
                let row = UnsafeBufferPointer(start: UnsafePointer(base + i * width), count: width)
                let rec = out + i * record
                do {
                    try RowCodec.encode(target, row, into: rec)
                } catch let e as RowCodecIssue {
                    results[k] = .failure(.badTensor(file: tensor.file, tensor: tensor.name, reason: e.explain(row: firstRow + i)))
                    return
                } catch {
                    results[k] = .failure(.badTensor(file: tensor.file, tensor: tensor.name, reason: "\(error)"))
                    return
                }
                if measure {
                    back.withUnsafeMutableBufferPointer { b in
                        RowCodec.decode(target, record: rec, width: width, into: b.baseAddress!)
                        stats.add(reference: row.baseAddress!, result: b.baseAddress!, count: width)
                    }
                }
            }
            results[k] = .success(stats)
        }
        if slices == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: slices, execute: work) }
        var total = ErrorStats()
        for r in results {
            switch r {
            case let .success(s): total.merge(s)
            case let .failure(e): throw e
            }
        }
        return total
    }
}

/// A value shared with worker threads under a discipline the compiler cannot check (the
/// workers touch disjoint parts).
struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
