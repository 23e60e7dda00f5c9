import Folio

/// A sharded Folio model: the index (`NAME.folio.index.json`) and its open shards.
public struct FolioIndex: Sendable {
    public struct Part: Sendable {
        public let shard: String
        public let file: FolioFile
        public let tensor: TensorInfo
        /// Rows of the whole tensor that this part holds.
        public let rows: Range<Int>
    }

    public struct Entry: Sendable {
        public let name: String
        public let encoding: Encoding
        public let shape: [Int]
        public let parts: [Part]
    }

    public let path: String
    public let shards: [String: FolioFile]
    public let shardOrder: [String]
    public let entries: [Entry]
    public let metadata: [(String, String)]?
    public let files: [(name: String, bytes: [UInt8])]

    /// Opens and validates an index and every shard it names: each part exists with the
    /// declared encoding, parts of a split tensor cover its rows in order with matching
    /// row width, and no shard tensor is left out.
    public init(path: String) throws {
        let remote = RemoteLocation.isURL(path)
        let shown = remote ? RemoteLocation.display(path) : path
        self.path = shown
        let dir = FolioSharding.directory(of: path)
        func bad(_ field: String, _ reason: String) -> ConvertError { .badField(file: shown, field: field, reason: reason) }
        let json: JSONValue
        do {
            let text = remote ? try RemoteBytes.readWhole(url: path, limit: 256 << 20) : try FileSystem.read(path, limit: 256 << 20)
            json = try JSONParser.parse(text)
        } catch let e as JSONParseError {
            throw ConvertError.badFile(file: shown, reason: "not valid JSON: \(e)")
        }
        guard json["format"]?.stringValue == "folio-index" else { throw bad("format", "expected \"folio-index\"") }
        guard json["version"]?.intValue == 1 else { throw bad("version", "expected 1") }
        guard let shardList = json["shards"]?.arrayValue, !shardList.isEmpty else { throw bad("shards", "missing or empty") }
        var shards: [String: FolioFile] = [:]
        var order: [String] = []
        for s in shardList {
            guard let name = s.stringValue, !name.contains("/"), name.hasSuffix(".folio") else {
                throw bad("shards", "\(s.serialized()) is not a .folio file name in the index's folder")
            }
            guard shards[name] == nil else { throw bad("shards", "'\(name)' is listed twice") }
            // Shards lie beside the index: in its folder, or at its URL's sibling path.
            shards[name] = try FolioFile(path: remote ? RemoteLocation.sibling(of: path, named: name) : dir + "/" + name)
            order.append(name)
        }
        if let m = json["metadata"] {
            guard let pairs = m.objectValue else { throw bad("metadata", "expected an object of strings") }
            metadata = try pairs.map { k, v in
                guard let s = v.stringValue else { throw bad("metadata.\(k)", "expected a string") }
                return (k, s)
            }
        } else {
            metadata = nil
        }
        var files: [(name: String, bytes: [UInt8])] = []
        for (name, shard) in json["files"]?.objectValue ?? [] {
            guard let s = shard.stringValue, let f = shards[s], let bytes = f.fileBytes(named: name) else {
                throw bad("files.\(name)", "names a shard that does not hold this file")
            }
            files.append((name, bytes))
        }
        self.files = files
        guard let tensors = json["tensors"]?.arrayValue else { throw bad("tensors", "missing or not an array") }
        var used = Set<String>()
        var entries: [Entry] = []
        var names = Set<String>()
        for (i, t) in tensors.enumerated() {
            let field = "tensors[\(i)]"
            guard let name = t["name"]?.stringValue, names.insert(name).inserted else { throw bad("\(field).name", "missing or duplicate") }
            guard let dn = t["dtype"]?.stringValue, let enc = Encoding(name: dn), enc.name == dn else { throw bad("\(field).dtype", "unknown dtype") }
            guard let dims = t["shape"]?.arrayValue, dims.count <= FolioFormat.maxRank else { throw bad("\(field).shape", "missing or too long") }
            var shape: [Int] = []
            var count = 1
            for d in dims {
                guard let v = d.intValue, v <= FolioFormat.maxElements, case (let p, false) = count.multipliedReportingOverflow(by: v), p <= FolioFormat.maxElements else {
                    throw bad("\(field).shape", "invalid or overflowing dimension \(d.serialized())")
                }
                count = p
                shape.append(v)
            }
            let width = shape.last ?? 1
            let totalRows = shape.isEmpty ? 1 : (width == 0 ? 0 : count / width)
            guard let partList = t["parts"]?.arrayValue, !partList.isEmpty else { throw bad("\(field).parts", "missing or empty") }
            var parts: [Part] = []
            var next = 0
            for (j, p) in partList.enumerated() {
                let pf = "\(field).parts[\(j)]"
                guard let sn = p["shard"]?.stringValue, let file = shards[sn] else { throw bad("\(pf).shard", "not one of the listed shards") }
                guard let tn = p["tensor"]?.stringValue, let info = file.tensor(named: tn) else {
                    throw bad("\(pf).tensor", "shard '\(sn)' has no tensor '\(p["tensor"]?.stringValue ?? "?")'")
                }
                guard used.insert(sn + "\u{0}" + tn).inserted else { throw bad("\(pf).tensor", "used twice") }
                guard info.encoding == enc else { throw bad("\(pf)", "shard tensor is \(info.encoding.name), the index says \(dn)") }
                if let first = parts.first {
                    guard (first.tensor.paged == nil) == (info.paged == nil), first.tensor.rowWidth == info.rowWidth else {
                        throw bad(pf, "parts of one tensor must share a layout (paged or dense) and row width")
                    }
                }
                let rows: Range<Int>
                if let r = p["rows"]?.arrayValue {
                    guard r.count == 2, let lo = r[0].intValue, let hi = r[1].intValue, lo == next, hi > lo, hi <= totalRows,
                          info.shape == [hi - lo, width] else {
                        throw bad("\(pf).rows", "must continue at row \(next) and match the shard tensor's shape \(info.shape)")
                    }
                    rows = lo..<hi
                } else {
                    guard partList.count == 1, info.shape == shape else { throw bad(pf, "shard tensor shape \(info.shape) differs from \(shape)") }
                    rows = 0..<totalRows
                }
                next = rows.upperBound
                parts.append(Part(shard: sn, file: file, tensor: info, rows: rows))
            }
            guard next == totalRows else { throw bad("\(field).parts", "cover rows 0..<\(next) of \(totalRows)") }
            entries.append(Entry(name: name, encoding: enc, shape: shape, parts: parts))
        }
        for (sn, f) in shards {
            for t in f.tensors where !used.contains(sn + "\u{0}" + t.name) {
                throw ConvertError.badTensor(file: dir + "/" + sn, tensor: t.name, reason: "is not listed in the index \(path)")
            }
        }
        self.shards = shards
        shardOrder = order
        self.entries = entries
    }
}

/// A tensor stored as row ranges in several Folio files.
struct ConcatRowsStorage: TensorStorage {
    let parts: [FolioIndex.Part]
    var supportsConcurrentReads: Bool { true }

    var storedBytes: Int { parts.reduce(0) { $0 + $1.tensor.nbytes } }
    var recordSize: Int? { parts.first?.tensor.paged?.recordSize }
    var isPaged: Bool { parts.first?.tensor.paged != nil }
    var isRecords: Bool { parts.first?.tensor.paged?.isRecords == true }
    var denseDType: DType? { parts.first.flatMap { $0.tensor.paged == nil ? $0.tensor.encoding.plainDType : nil } }
    var sourceDType: DType? { parts.first?.tensor.sourceDType }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        for p in parts { try FolioStorage(file: p.file, tensor: p.tensor).forEachDensePiece(piece: piece, body) }
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        for p in parts {
            let r = max(range.lowerBound, offset)..<min(range.upperBound, offset + p.tensor.nbytes)
            if !r.isEmpty {
                try p.file.withLogicalBytes(of: p.tensor, range: (r.lowerBound - offset)..<(r.upperBound - offset)) { try body($0) }
            }
            offset += p.tensor.nbytes
        }
    }

    /// Visits the parts overlapping rows `start..<start+count`, with local ranges.
    private func each(_ start: Int, _ count: Int, _ body: (FolioIndex.Part, Int, Int, Int) throws -> Void) rethrows {
        for p in parts {
            let lo = max(start, p.rows.lowerBound), hi = min(start + count, p.rows.upperBound)
            if lo < hi { try body(p, lo - p.rows.lowerBound, hi - lo, lo - start) }
        }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        try each(start, count) { p, local, n, at in
            try FolioStorage(file: p.file, tensor: p.tensor).readRows(start: local, count: n, width: width, encoding: encoding, into: out + at * width)
        }
    }

    func copyRecords(start: Int, count: Int, into out: UnsafeMutableRawPointer) throws {
        let rec = recordSize ?? 0
        try each(start, count) { p, local, n, at in
            try FolioStorage(file: p.file, tensor: p.tensor).copyRecords(start: local, count: n, into: out + at * rec)
        }
    }

    func release() { for p in parts { p.file.release(p.tensor) } }
}

extension Checkpoint {
    static func openFolioIndex(_ path: String) throws -> Checkpoint {
        let index = try FolioIndex(path: path)
        let tensors = index.entries.map { e -> SourceTensor in
            if e.parts.count == 1, let p = e.parts.first {
                return SourceTensor(name: e.name, encoding: e.encoding, shape: e.shape, file: path, storage: FolioStorage(file: p.file, tensor: p.tensor))
            }
            return SourceTensor(name: e.name, encoding: e.encoding, shape: e.shape, file: path, storage: ConcatRowsStorage(parts: e.parts))
        }
        var c = Checkpoint(path: index.path, format: .folioIndex, tensors: tensors, metadata: index.metadata, files: index.files)
        c.opened = .index(index)
        return c
    }
}
