import Folio

/// Sharded Folio output: files `NAME-0000k-of-0000n.folio` beside an index
/// `NAME.folio.index.json`, in the manner of `model.safetensors.index.json`. A paged table
/// larger than a shard is split by row ranges (whole pages), each part stored under the name
/// `TENSOR@START-END`; the index maps every tensor to its parts.
public enum FolioSharding {
    public static let indexSuffix = FolioIndex.suffix

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    static func stem(_ dst: String) -> String {
        let base = dst.split(separator: "/").last.map(String.init) ?? dst
        return base.hasSuffix(".folio") ? String(base.dropLast(6)) : base
    }

    public static func indexPath(_ dst: String) -> String {
        directory(of: dst) + "/" + stem(dst) + indexSuffix
    }

    static func shardNames(_ dst: String, count: Int) -> [String] {
        func pad(_ v: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        return (1...count).map { "\(stem(dst))-\(pad($0))-of-\(pad(count)).folio" }
    }

    /// Parses "5GB", "500MB", "2GiB", "123456".
    public static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000),
                                      ("KB", 1000), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
        let t = text.uppercased()
        for (u, m) in units where t.hasSuffix(u) {
            guard let v = Double(t.dropLast(u.count)), v > 0, v * Double(m) < 1e18 else { return nil }
            return Int(v * Double(m))
        }
        guard let v = Int(t), v > 0 else { return nil }
        return v
    }

    /// Groups tensors into shards of at most `maxBytes` (a tensor that is larger on its own
    /// gets a shard of its own unless it is a paged matrix, which is split by pages).
    static func plan(_ plans: [TensorPlan], maxBytes: Int, pageSize: Int, path: String) throws -> [[ShardItem]] {
        var shards: [[ShardItem]] = [[]]
        var used = 0
        func add(_ item: ShardItem, _ bytes: Int) {
            if used > 0 && used + bytes > maxBytes { shards.append([]); used = 0 }
            shards[shards.count - 1].append(item)
            used += bytes
        }
        for (i, p) in plans.enumerated() {
            let bytes = try FolioWriter.storedSize(of: p, pageSize: pageSize)
            if bytes > maxBytes, p.paged, p.shape.count == 2, let layout = try FolioWriter.pagedLayout(of: p, pageSize: pageSize) {
                let pagesPerPart = max(1, maxBytes / layout.blockSize)
                let rowsPerPart = pagesPerPart * layout.rowsPerPage
                var start = 0
                let rows = p.shape[0]
                while start < rows {
                    let end = min(rows, start + rowsPerPart)
                    var part = p
                    part.shape = [end - start, p.shape[1]]
                    add(ShardItem(decision: i, rows: start..<end, name: "\(p.name)@\(start)-\(end)"), try FolioWriter.storedSize(of: part, pageSize: pageSize))
                    start = end
                }
            } else {
                add(ShardItem(decision: i, rows: nil, name: p.name), bytes)
            }
        }
        return shards.filter { !$0.isEmpty }
    }

    static func index(decisions: [TensorDecision], plans: [TensorPlan], shards: [[ShardItem]], names: [String],
                      files: [(name: String, bytes: [UInt8])], metadata: [(String, String)]?) -> JSONValue {
        var parts: [Int: [JSONValue]] = [:]
        var first: [Int: String] = [:]
        for (k, items) in shards.enumerated() {
            for item in items {
                var m: [(String, JSONValue)] = [("shard", .string(names[k])), ("tensor", .string(item.name))]
                if let r = item.rows { m.append(("rows", .array([.int(r.lowerBound), .int(r.upperBound)]))) }
                parts[item.decision, default: []].append(.object(m))
                if first[item.decision] == nil { first[item.decision] = names[k] }
            }
        }
        var members: [(String, JSONValue)] = [("format", .string("folio-index")), ("version", .int(1))]
        if let metadata { members.append(("metadata", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        members.append(("shards", .array(names.map { .string($0) })))
        members.append(("files", .object(files.map { ($0.name, .string(names[0])) })))
        members.append(("tensors", .array(plans.indices.map { i in
            .object([("name", .string(plans[i].name)), ("dtype", .string(plans[i].encoding.name)),
                     ("shape", .array(plans[i].shape.map { .int($0) })), ("parts", .array(parts[i] ?? []))])
        })))
        members.append(("weight_map", .object(plans.indices.map { (plans[$0].name, .string(first[$0] ?? names[0])) })))
        return .object(members)
    }
}
