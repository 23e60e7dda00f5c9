import Folio

extension Converter {
    // MARK: safetensors

    func writeSafetensors(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        let planner = ConversionPlanner(options: options, checkpoint: c)
        var plans: [SafetensorsWriter.Plan] = []
        var targets: [Encoding] = []
        var kept: [(String, String)] = []
        for t in c.tensors {
            var target = t.encoding
            let decision = try planner.decide(t)
            target = decision.target
            if target.isQuantized && target != t.encoding {
                throw ConvertError.badOption("tensor '\(t.name)': quantization to \(target.name) needs a .folio destination (safetensors holds plain dtypes)")
            }
            if target.isQuantized, options.keepQuantized, let rec = t.recordSize {
                // Row records as a U8 [rows, record] tensor, described in __metadata__.
                targets.append(target)
                plans.append(.init(name: t.name, dtype: .u8, shape: [t.rowCount, rec]))
                kept.append((KeptQuantized.key(t.name), KeptQuantized.value(scheme: target, shape: t.shape, sourceDType: t.sourceDTypeHint)))
                continue
            }
            if target.isQuantized { target = .plain(.f32) }
            if target != t.encoding, !(t.encoding.isQuantized || (t.encoding.plainDType?.isFloatingPoint ?? false)) {
                throw ConvertError.badTensor(file: t.file, tensor: t.name, reason: "is \(t.encoding.name); only floating-point tensors can be cast to \(target.name)")
            }
            targets.append(target)
            plans.append(.init(name: t.name, dtype: target.plainDType!, shape: t.shape))
        }
        let metadata = kept.isEmpty ? c.metadata : (c.metadata ?? []) + kept
        let sizes = plans.map { $0.shape.reduce(1, *) * $0.dtype.size }
        var groups: [[Int]] = [[]]
        if let maxShard = options.maxShardSize {
            var used = 0
            for i in plans.indices {
                if used > 0 && used + sizes[i] > maxShard { groups.append([]); used = 0 }
                groups[groups.count - 1].append(i)
                used += sizes[i]
            }
        } else {
            groups = [Array(plans.indices)]
        }
        if groups.count <= 1 {
            return try writeSafetensorsFile(c, to: dst, indices: Array(plans.indices), plans: plans, targets: targets, metadata: metadata, done: 0)
        }
        // Sharded: model-0000k-of-0000n.safetensors and model.safetensors.index.json, as
        // transformers writes them; carried files (config, tokenizer) go beside them.
        let dir = FolioSharding.directory(of: dst)
        let base = dst.split(separator: "/").last.map(String.init) ?? dst
        let stem = String(base.dropLast(".safetensors".count))
        func pad(_ v: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        let names = (1...groups.count).map { "\(stem)-\(pad($0))-of-\(pad(groups.count)).safetensors" }
        var reports: [TensorReport] = []
        var written: [String] = []
        // Shards are removed on an error, and on Ctrl-C until the index is in place.
        try FileSystem.withProvisionalFiles { provisional in
            do {
                var done = 0
                for (k, g) in groups.enumerated() {
                    let path = dir + "/" + names[k]
                    // Before the shard exists, so that no moment is left between its rename and this.
                    provisional(path)
                    reports += try writeSafetensorsFile(c, to: path, indices: g, plans: plans, targets: targets, metadata: metadata, done: done)
                    written.append(path)
                    done += g.count
                }
                var weightMap: [(String, JSONValue)] = []
                for (k, g) in groups.enumerated() { for i in g { weightMap.append((plans[i].name, .string(names[k]))) } }
                let index = JSONValue.object([
                    ("metadata", .object([("total_size", .int(sizes.reduce(0, +)))])), ("weight_map", .object(weightMap)),
                ])
                for f in c.files {
                    let target = dir + "/" + f.name
                    try FileSystem.makeDirectories(FolioSharding.directory(of: target))
                    try FileSystem.writeAtomically(target, f.bytes)
                }
                provisional(dir + "/" + stem + ".safetensors.index.json")  // as in writeFolio
                try FileSystem.writeAtomically(dir + "/" + stem + ".safetensors.index.json", Array(index.serialized(pretty: true).utf8) + [0x0A])
            } catch {
                for p in written { FileSystem.remove(p) }
                throw error
            }
        }
        return reports
    }

    private func writeSafetensorsFile(_ c: Checkpoint, to dst: String, indices: [Int], plans: [SafetensorsWriter.Plan], targets: [Encoding],
                                      metadata: [(String, String)]?, done: Int) throws -> [TensorReport] {
        let writer = try SafetensorsWriter(path: dst, tensors: indices.map { plans[$0] }, metadata: metadata)
        do {
            var reports: [TensorReport] = []
            for (k, i) in indices.enumerated() {
                let t = c.tensors[i]
                let target = targets[i]
                let outBytes = plans[i].shape.reduce(1, *) * plans[i].dtype.size
                var stats: ErrorStats? = nil
                if target == t.encoding, t.denseDType != nil {
                    try t.forEachDensePiece { try writer.append($0) }
                } else if target == t.encoding, let rec = t.recordSize {
                    let step = Converter.rowsPerStep(width: t.rowWidth)
                    var r = 0
                    while r < t.rowCount {
                        let n = Swift.min(step, t.rowCount - r)
                        var buf = [UInt8](repeating: 0, count: n * rec)
                        try buf.withUnsafeMutableBytes { b in
                            try t.copyRecords(start: r, count: n, into: b.baseAddress!)
                            try writer.append(UnsafeRawBufferPointer(b))
                        }
                        r += n
                    }
                } else {
                    // Dequantize or cast through float32.
                    let width = t.rowWidth, rows = t.shape.isEmpty ? 1 : t.rowCount
                    let step = Converter.rowsPerStep(width: width)
                    var values = [Float](repeating: 0, count: Swift.max(1, Swift.min(rows, step) * width))
                    var bytes = [UInt8](repeating: 0, count: values.count * plans[i].dtype.size)
                    var e = ErrorStats()
                    var back = [Float](repeating: 0, count: values.count)
                    var r = 0
                    while r < rows && width > 0 {
                        let n = Swift.min(step, rows - r)
                        try values.withUnsafeMutableBufferPointer { v in
                            try t.readRows(start: r, count: n, into: v.baseAddress!)
                            let part = UnsafeBufferPointer(rebasing: v[0..<(n * width)])
                            try bytes.withUnsafeMutableBytes { b in
                                try RowCodec.encode(target, part, into: b.baseAddress!)
                                let out = UnsafeRawBufferPointer(rebasing: b[0..<(n * width * plans[i].dtype.size)])
                                if !t.encoding.isQuantized {
                                    back.withUnsafeMutableBufferPointer { bb in
                                        plans[i].dtype.toFloat(out.baseAddress!, count: n * width, into: bb.baseAddress!)
                                    }
                                    e.add(reference: v.baseAddress!, result: back, count: n * width)
                                }
                                try writer.append(out)
                            }
                        }
                        r += n
                    }
                    // Casts are lossy; dequantizing a source block format to F32 is exact.
                    if target != t.encoding && !t.encoding.isQuantized { stats = e }
                }
                reports.append(TensorReport(name: t.name, sourceDType: t.storedType, scheme: target.name, shape: t.shape,
                                            bytesIn: t.storedBytes, bytesOut: outBytes, paged: false, error: stats))
                t.release()
                progress?(done + k + 1, c.tensors.count)
            }
            try writer.finish()
            return reports
        } catch {
            writer.abort()
            throw error
        }
    }
}

