/// A sharded Folio model: the index (`NAME.folio.index.json`) and its open shards, local
/// or at http(s) URLs (the shards beside the index).
public struct FolioIndex: Sendable {
    /// How an index file's name ends.
    public static let suffix = ".folio.index.json"

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
        let dir = Sys.dirname(path)
        func bad(_ field: String, _ reason: String) -> FolioError { .badIndex(file: shown, field: field, reason: reason) }
        let json: JSONValue
        do {
            let text = remote ? try RemoteBytes.readWhole(url: path, limit: 256 << 20) : try FileSystem.read(path, limit: 256 << 20)
            json = try JSONParser.parse(text)
        } catch let e as JSONParseError {
            throw FolioError.malformed(file: shown, reason: "not valid JSON: \(e)")
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
            // withFile throws (a remote shard's fetch error is reported, not taken for absence).
            guard let s = shard.stringValue, let f = shards[s], let bytes = try f.withFile(named: name, { Array($0) }) else {
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
                throw FolioError.badTensor(file: remote ? RemoteLocation.sibling(of: path, named: sn) : dir + "/" + sn, tensor: t.name, reason: "is not listed in the index \(path)")
            }
        }
        self.shards = shards
        shardOrder = order
        self.entries = entries
    }
}


/// A Folio model as one call opens it: a single file or a sharded index, local or remote.
public enum FolioModel: Sendable {
    case file(FolioFile)
    case index(FolioIndex)

    /// Opens `location` (a path or an http(s) URL): an index when its name ends in
    /// `.folio.index.json`, else one Folio file.
    public static func open(_ location: String) throws -> FolioModel {
        let name = RemoteLocation.isURL(location) ? RemoteLocation.display(location) : location
        return name.hasSuffix(FolioIndex.suffix) ? .index(try FolioIndex(path: location)) : .file(try FolioFile(path: location))
    }

    /// For messages.
    public var path: String {
        switch self {
        case let .file(f): return f.path
        case let .index(i): return i.path
        }
    }
}
