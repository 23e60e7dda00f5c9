import Folio

/// Describes weight files of any supported format as one JSON document (the schema of
/// `folio inspect --json`), and computes value statistics and differences.
public enum Inspector {
    /// The layout keys of a paged table (`row_stride`, `rows_per_page`) or of a records
    /// tensor (`layout: "records"`, `row_stride`); dense tensors have none, so documents of
    /// version 1 and 2 files are unchanged.
    static func layoutMembers(_ p: PagedLayout) -> [(String, JSONValue)] {
        p.isRecords ? [("layout", .string("records")), ("row_stride", .int(p.rowStride))]
            : [("row_stride", .int(p.rowStride)), ("rows_per_page", .int(p.rowsPerPage))]
    }

    /// The inspect document for `path`. `filter` keeps tensors whose name matches; `stats`
    /// adds min/max/mean/std/nan/inf over dequantized values.
    public static func describe(_ path: String, filter: Glob? = nil, stats: Bool = false) throws -> JSONValue {
        guard !FileSystem.isDirectory(path) else {
            throw ConvertError.badFile(file: path, reason: "is a folder; inspect takes a .folio, .safetensors or .gguf file")
        }
        let checkpoint = try Checkpoint.open(path)
        var members: [(String, JSONValue)] = []
        var tensors: [JSONValue] = []
        let sources = checkpoint.tensors.filter { filter?.matches($0.name) ?? true }
        if checkpoint.format == .folioIndex {
            let index: FolioIndex
            if case let .index(i)? = checkpoint.opened { index = i } else { index = try FolioIndex(path: path) }
            let first = index.shards[index.shardOrder[0]]!
            members = [
                ("format", .string("folio-index")), ("version", .int(1)), ("page_size", .int(first.header.pageSize)),
                ("file_size", .int(index.shardOrder.reduce(0) { $0 + index.shards[$1]!.fileSize })),
                ("metadata", .object((index.metadata ?? []).map { ($0.0, .string($0.1)) })),
                ("shards", .array(index.shardOrder.map { .string($0) })),
            ]
            let wanted = Set(sources.map(\.name))
            for e in index.entries where wanted.contains(e.name) {
                let p0 = e.parts[0]
                var m: [(String, JSONValue)] = [
                    ("name", .string(e.name)), ("dtype", .string(e.encoding.name)), ("shape", .array(e.shape.map { .int($0) })),
                    ("shard", .string(p0.shard)), ("offset", .int(p0.file.absoluteOffset(of: p0.tensor))),
                    ("nbytes", .int(e.parts.reduce(0) { $0 + $1.tensor.nbytes })),
                ]
                if let p = p0.tensor.paged { m += Inspector.layoutMembers(p) }
                // As for one file: only tensors with a compressed part carry these.
                if let c = e.parts.lazy.compactMap({ $0.tensor.compression }).first {
                    m += [("stored_nbytes", .int(e.parts.reduce(0) { $0 + $1.tensor.storedBytes })), ("codec", .string(c.codec.rawValue)),
                          ("planes", .bool(c.planes)),
                          ("chunks", .int(e.parts.reduce(0) { $0 + ($1.tensor.compression?.chunkCount(nbytes: $1.tensor.nbytes) ?? 0) }))]
                }
                if e.parts.count > 1 {
                    m.append(("parts", .array(e.parts.map { p in
                        var part: [(String, JSONValue)] = [
                            ("shard", .string(p.shard)), ("tensor", .string(p.tensor.name)), ("offset", .int(p.file.absoluteOffset(of: p.tensor))),
                            ("nbytes", .int(p.tensor.nbytes)), ("rows", .array([.int(p.rows.lowerBound), .int(p.rows.upperBound)])),
                        ]
                        if let c = p.tensor.compression {
                            part += [("stored_nbytes", .int(c.storedBytes)), ("codec", .string(c.codec.rawValue)), ("planes", .bool(c.planes)),
                                     ("chunks", .int(c.chunkCount(nbytes: p.tensor.nbytes)))]
                        }
                        return .object(part)
                    })))
                }
                tensors.append(.object(m))
            }
        } else if checkpoint.format == .folio {
            let f: FolioFile
            if case let .folio(o)? = checkpoint.opened { f = o } else { f = try FolioFile(path: path) }
            members = [
                ("format", .string("folio")), ("version", .int(f.header.version)), ("page_size", .int(f.header.pageSize)),
                ("chunk_size", .int(f.header.chunkSize)), ("file_size", .int(f.fileSize)),
                ("metadata", .object((f.header.metadata ?? []).map { ($0.0, .string($0.1)) })),
            ]
            let wanted = Set(sources.map(\.name))
            for t in f.tensors where wanted.contains(t.name) {
                var m: [(String, JSONValue)] = [
                    ("name", .string(t.name)), ("dtype", .string(t.encoding.name)), ("shape", .array(t.shape.map { .int($0) })),
                    ("offset", .int(f.absoluteOffset(of: t))), ("nbytes", .int(t.nbytes)),
                ]
                if let p = t.paged { m += Inspector.layoutMembers(p) }
                if let s = t.sourceDType { m.append(("source_dtype", .string(s.rawValue))) }
                if let c = t.compression {
                    // Only compressed tensors carry these, so version 1 documents are unchanged.
                    m += [("stored_nbytes", .int(c.storedBytes)), ("codec", .string(c.codec.rawValue)), ("planes", .bool(c.planes)),
                          ("chunk_bytes", .int(c.chunkBytes)), ("chunks", .int(c.chunkCount(nbytes: t.nbytes)))]
                }
                tensors.append(.object(m))
            }
            members.append(("files", .array(f.header.files.map {
                .object([("name", .string($0.name)), ("offset", .int(f.header.dataOffset + $0.offset)), ("nbytes", .int($0.nbytes))])
            })))
        } else if checkpoint.format == .gguf {
            let f = try GGUFFile(path: path)
            members = [
                ("format", .string("gguf")), ("version", .int(f.header.version)), ("page_size", .null),
                ("alignment", .int(f.header.alignment)), ("file_size", .int(f.fileSize)),
                ("metadata", .object(f.header.metadata.map { ($0.0, $0.1.json) })),
            ]
            let wanted = Set(sources.map(\.name))
            for t in f.header.tensors where wanted.contains(t.name) {
                tensors.append(.object([
                    ("name", .string(t.name)), ("dtype", .string(t.type.name)), ("shape", .array(t.shape.map { .int($0) })),
                    ("offset", .int(f.header.dataStart + t.offset)), ("nbytes", .int(t.nbytes)),
                ]))
            }
        } else if checkpoint.format != .safetensors {
            // NumPy and PyTorch inputs: what the checkpoint says, without file offsets.
            members = [
                ("format", .string(checkpoint.format.rawValue)), ("version", .null), ("page_size", .null),
                ("file_size", .int(try FileSystem.size(path))),
                ("metadata", .object((checkpoint.metadata ?? []).map { ($0.0, .string($0.1)) })),
            ]
            for s in sources {
                tensors.append(.object([
                    ("name", .string(s.name)), ("dtype", .string(s.storedType)), ("shape", .array(s.shape.map { .int($0) })),
                    ("offset", .null), ("nbytes", .int(s.storedBytes)),
                ]))
            }
        } else {
            let f: SafetensorsFile
            if case let .safetensors(o)? = checkpoint.opened { f = o } else { f = try SafetensorsFile(path: path) }
            members = [
                ("format", .string("safetensors")), ("version", .null), ("page_size", .null), ("file_size", .int(f.fileSize)),
                ("metadata", .object((f.header.metadata ?? []).map { ($0.0, .string($0.1)) })),
            ]
            let wanted = Set(sources.map(\.name))
            for e in f.header.entries where wanted.contains(e.name) {
                tensors.append(.object([
                    ("name", .string(e.name)), ("dtype", .string(e.dtype.rawValue)), ("shape", .array(e.shape.map { .int($0) })),
                    ("offset", .int(f.header.dataStart + e.begin)), ("nbytes", .int(e.nbytes)),
                ]))
            }
        }
        if stats {
            let byName = Dictionary(uniqueKeysWithValues: sources.map { ($0.name, $0) })
            tensors = try tensors.map { t in
                guard case var .object(m) = t, let name = t["name"]?.stringValue, let s = byName[name] else { return t }
                let v = try valueStats(s)
                m.append(("stats", .object([
                    ("min", v.count > 0 ? .double(v.min) : .null), ("max", v.count > 0 ? .double(v.max) : .null),
                    ("mean", .double(v.mean)), ("std", .double(v.std)), ("nan", .int(v.nan)), ("inf", .int(v.inf)),
                ])))
                return .object(m)
            }
        }
        members.append(("tensors", .array(tensors)))
        return .object(members)
    }

    /// Statistics over every (dequantized) value of a tensor, streamed by rows.
    public static func valueStats(_ s: SourceTensor) throws -> ValueStats {
        var v = ValueStats()
        let width = s.rowWidth, rows = s.shape.isEmpty ? 1 : s.rowCount
        guard width > 0, rows > 0 else { return v }
        let step = Converter.rowsPerStep(width: width)
        var buf = [Float](repeating: 0, count: Swift.min(rows, step) * width)
        var r = 0
        while r < rows {
            let n = Swift.min(step, rows - r)
            try buf.withUnsafeMutableBufferPointer { b in
                try s.readRows(start: r, count: n, into: b.baseAddress!)
                v.add(b.baseAddress!, count: n * width)
            }
            r += n
        }
        s.release()
        return v
    }

    /// Rows of a tensor, dequantized to float32. Every index is checked first.
    public static func rows(_ path: String, tensor: String, rows: [Int]) throws -> [[Float]] {
        let c = try Checkpoint.open(path)
        guard let s = c.tensors.first(where: { $0.name == tensor }) else {
            throw ConvertError.badTensor(file: path, tensor: tensor, reason: "no such tensor")
        }
        let count = s.shape.isEmpty ? 1 : s.rowCount
        for r in rows where r < 0 || r >= count {
            throw ConvertError.badTensor(file: path, tensor: tensor, reason: "row \(r) is out of range (the tensor has \(count) rows of \(s.rowWidth) values)")
        }
        return try rows.map { r in
            var out = [Float](repeating: 0, count: s.rowWidth)
            if s.rowWidth > 0 { try out.withUnsafeMutableBufferPointer { try s.readRows(start: r, count: 1, into: $0.baseAddress!) } }
            return out
        }
    }

    /// Per-tensor comparison of two files after dequantization.
    public struct Difference: Sendable {
        public let name: String
        public let shapeA: [Int]
        public let shapeB: [Int]
        public let stats: ErrorStats?
    }

    public static func diff(_ a: String, _ b: String) throws -> (common: [Difference], onlyA: [String], onlyB: [String]) {
        let ca = try Checkpoint.open(a), cb = try Checkpoint.open(b)
        let bByName = Dictionary(cb.tensors.map { ($0.name, $0) }, uniquingKeysWith: { x, _ in x })
        let aNames = Set(ca.tensors.map(\.name))
        var common: [Difference] = []
        for ta in ca.tensors {
            guard let tb = bByName[ta.name] else { continue }
            guard ta.shape == tb.shape else {
                common.append(Difference(name: ta.name, shapeA: ta.shape, shapeB: tb.shape, stats: nil))
                continue
            }
            var e = ErrorStats()
            let width = ta.rowWidth, rows = ta.shape.isEmpty ? 1 : ta.rowCount
            if width > 0 && rows > 0 {
                let step = Converter.rowsPerStep(width: width)
                var x = [Float](repeating: 0, count: Swift.min(rows, step) * width), y = x
                var r = 0
                while r < rows {
                    let n = Swift.min(step, rows - r)
                    try x.withUnsafeMutableBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { yb in
                            try ta.readRows(start: r, count: n, into: xb.baseAddress!)
                            try tb.readRows(start: r, count: n, into: yb.baseAddress!)
                            e.add(reference: xb.baseAddress!, result: yb.baseAddress!, count: n * width)
                        }
                    }
                    r += n
                }
            }
            ta.release(); tb.release()
            common.append(Difference(name: ta.name, shapeA: ta.shape, shapeB: tb.shape, stats: e))
        }
        return (common, ca.tensors.map(\.name).filter { bByName[$0] == nil }, cb.tensors.map(\.name).filter { !aNames.contains($0) })
    }
}
