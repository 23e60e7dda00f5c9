import Folio

extension Checkpoint {
    /// Files of a model folder that travel with the weights: configs and tokenizers.
    static let carriedExtensions = [".json", ".txt", ".model", ".tiktoken", ".jinja"]
    static let carriedFileLimit = 64 << 20

    /// Opens a Hugging Face model folder: config.json plus `model.safetensors`, or shards
    /// listed in `model.safetensors.index.json`; failing those, the PyTorch equivalents
    /// `pytorch_model.bin` or `pytorch_model.bin.index.json` (read by the restricted
    /// unpickler). Every tensor the index names must be in its shard, and every tensor of a
    /// shard must be in the index.
    static func openFolder(_ path: String, index explicitIndex: String? = nil) throws -> Checkpoint {
        let dir = path.hasSuffix("/") ? String(path.dropLast()) : path
        let names = try FileSystem.list(dir)
        guard explicitIndex != nil || names.contains("config.json") else {
            throw ConvertError.badFolder(path: dir, reason: "not a Hugging Face model folder: config.json is missing")
        }
        var shards: [String] = []
        var weightMap: [(String, String)] = []
        var indexName = explicitIndex.map { String($0.split(separator: "/").last ?? "") } ?? "model.safetensors.index.json"
        var shardSuffix = ".safetensors"
        if explicitIndex == nil, !names.contains(indexName), !names.contains("model.safetensors") {
            if names.contains("pytorch_model.bin.index.json") { indexName = "pytorch_model.bin.index.json" }
            if names.contains("pytorch_model.bin") || names.contains("pytorch_model.bin.index.json") { shardSuffix = ".bin" }
        }
        if indexName.hasSuffix(".bin.index.json") { shardSuffix = ".bin" }
        if names.contains(indexName) {
            let indexPath = dir + "/" + indexName
            let json: JSONValue
            do { json = try JSONParser.parse(try FileSystem.read(indexPath, limit: 256 << 20)) } catch let e as JSONParseError {
                throw ConvertError.badFile(file: indexPath, reason: "not valid JSON: \(e)")
            }
            guard let map = json["weight_map"]?.objectValue else {
                throw ConvertError.badField(file: indexPath, field: "weight_map", reason: "missing or not an object")
            }
            for (tensor, shard) in map {
                guard let s = shard.stringValue, !s.contains("/"), s.hasSuffix(shardSuffix) else {
                    throw ConvertError.badField(file: indexPath, field: "weight_map.\(tensor)", reason: "expected a \(shardSuffix) file name in this folder")
                }
                weightMap.append((tensor, s))
                if !shards.contains(s) { shards.append(s) }
            }
            shards.sort()
        } else if names.contains("model.safetensors") {
            shards = ["model.safetensors"]
        } else if names.contains("pytorch_model.bin") {
            shards = ["pytorch_model.bin"]
        } else {
            throw ConvertError.badFolder(path: dir, reason: "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json")
        }
        var tensors: [SourceTensor] = []
        var metadata: [(String, String)]? = nil
        var shardOf: [String: String] = [:]
        for shard in shards {
            let p = dir + "/" + shard
            guard FileSystem.exists(p) else { throw ConvertError.badFolder(path: dir, reason: "shard '\(shard)' named by the index is missing") }
            let c = shardSuffix == ".bin" ? try openPyTorch(p) : try openSafetensors(p)
            if metadata == nil { metadata = c.metadata }
            for t in c.tensors {
                if let other = shardOf[t.name] {
                    throw ConvertError.badTensor(file: p, tensor: t.name, reason: "also present in shard '\(other)'")
                }
                shardOf[t.name] = shard
                tensors.append(t)
            }
        }
        if !weightMap.isEmpty {
            let indexPath = dir + "/" + indexName
            for (tensor, shard) in weightMap where shardOf[tensor] != shard {
                throw ConvertError.badTensor(file: indexPath, tensor: tensor, reason: shardOf[tensor] == nil
                    ? "listed in the index but absent from '\(shard)'" : "listed in '\(shard)' but found in '\(shardOf[tensor]!)'")
            }
            let listed = Set(weightMap.map(\.0))
            for t in tensors where !listed.contains(t.name) {
                throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "not listed in \(indexName)")
            }
        }
        var files: [(name: String, bytes: [UInt8])] = []
        func carry(_ rel: String) throws {
            guard carriedExtensions.contains(where: { rel.hasSuffix($0) }), !rel.hasSuffix(".safetensors.index.json"), !rel.hasSuffix(FolioSharding.indexSuffix) else { return }
            files.append((rel, try FileSystem.read(dir + "/" + rel, limit: carriedFileLimit)))
        }
        for name in names where !name.hasPrefix(".") {
            if FileSystem.isDirectory(dir + "/" + name) {
                for sub in try FileSystem.list(dir + "/" + name) where !sub.hasPrefix(".") && !FileSystem.isDirectory(dir + "/" + name + "/" + sub) {
                    try carry(name + "/" + sub)
                }
            } else {
                try carry(name)
            }
        }
        return Checkpoint(path: dir, format: .huggingFace, tensors: tensors, metadata: metadata, files: files)
    }
}
