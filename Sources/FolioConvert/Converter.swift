import Folio

/// What happened to one tensor during a conversion.
public struct TensorReport: Sendable {
    public let name: String
    public let sourceDType: String
    public let scheme: String
    public let shape: [Int]
    public let bytesIn: Int
    public let bytesOut: Int
    public let paged: Bool
    /// Reconstruction error for lossy conversions (nil when bytes were kept exactly).
    public let error: ErrorStats?
    /// Why a requested scheme was not applied, if it was not.
    public var note: String? = nil
}

/// Converts checkpoints to Folio or safetensors in a stream: no tensor is held whole in
/// memory; source pages are released as they are consumed.
public struct Converter {
    public let options: ConversionOptions
    /// Called with (tensors done, tensors total).
    public var progress: ((Int, Int) -> Void)?

    public init(options: ConversionOptions, progress: ((Int, Int) -> Void)? = nil) {
        self.options = options
        self.progress = progress
    }

    /// Rows per step: about 4M values, at least one row.
    static func rowsPerStep(width: Int) -> Int { Swift.max(1, (4 << 20) / Swift.max(1, width)) }

    public func convert(from src: String, to dst: String) throws -> [TensorReport] {
        let checkpoint = try Checkpoint.open(src, keepQuantized: options.keepQuantized)
        if dst.hasSuffix(".folio") { return try writeFolio(checkpoint, to: dst) }
        if dst.hasSuffix(".safetensors") { return try writeSafetensors(checkpoint, to: dst) }
        throw ConvertError.badOption("destination '\(dst)' must end in .folio or .safetensors")
    }

    // MARK: Folio

    func writeFolio(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        let planner = ConversionPlanner(options: options, checkpoint: c)
        let decisions = try c.tensors.map { try planner.decide($0) }
        let plans = decisions.map {
            TensorPlan(name: $0.source.name, encoding: $0.target, shape: $0.source.shape, paged: $0.paged,
                       sourceDType: $0.target == $0.source.encoding ? $0.source.sourceDTypeHint : ($0.source.encoding.plainDType ?? $0.source.sourceDTypeHint))
        }
        let writer = try FolioWriter(path: dst, tensors: plans, files: c.files.map { ($0.name, $0.bytes.count) },
                                     metadata: c.metadata, pageSize: options.pageSize)
        do {
            for f in c.files { try f.bytes.withUnsafeBytes { try writer.writeFile(f.name, $0) } }
            var reports: [TensorReport] = []
            for (i, d) in decisions.enumerated() {
                let info = writer.header.tensors[i]
                reports.append(try writeTensor(d, info: info, writer: writer))
                d.source.release()
                progress?(i + 1, decisions.count)
            }
            try writer.finish()
            return reports
        } catch {
            writer.abort()
            throw error
        }
    }

    private func writeTensor(_ d: TensorDecision, info: TensorInfo, writer: FolioWriter) throws -> TensorReport {
        let s = d.source
        func report(_ e: ErrorStats?) -> TensorReport {
            TensorReport(name: s.name, sourceDType: s.storedType, scheme: d.target.name, shape: s.shape,
                         bytesIn: s.storedBytes, bytesOut: info.nbytes, paged: info.paged != nil, error: e, note: d.note)
        }
        let width = s.rowWidth, rows = s.rowCount
        if d.target == s.encoding, info.paged == nil, s.denseDType != nil {
            // Dense to dense, same dtype: bit-exact copy.
            try s.forEachDensePiece { try writer.appendDense($0) }
            return report(nil)
        }
        if d.target == s.encoding, let p = info.paged, s.recordSize != nil || s.denseDType != nil {
            // Same encoding into pages: copy records bit-exactly.
            let step = Converter.rowsPerStep(width: width)
            var buf = [UInt8](repeating: 0, count: Swift.min(rows, step) * p.recordSize)
            var r = 0
            while r < rows {
                let n = Swift.min(step, rows - r)
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
            return report(nil)
        }
        // Re-encode through float32, measuring the error of lossy targets.
        let lossy = d.target != s.encoding
        var stats = ErrorStats()
        let step = Converter.rowsPerStep(width: width)
        let chunkRows = Swift.min(Swift.max(rows, 0), step)
        var values = [Float](repeating: 0, count: Swift.max(1, chunkRows * width))
        var back = [Float](repeating: 0, count: Swift.max(1, width))
        let record = info.paged?.recordSize ?? (width * (d.target.plainDType?.size ?? 4))
        var rec = [UInt8](repeating: 0, count: Swift.max(1, record))
        if s.shape.isEmpty {
            // 0-d: a single value.
            try values.withUnsafeMutableBufferPointer { v in
                try s.readRows(start: 0, count: 1, into: v.baseAddress!)
                try writer.appendRows(UnsafeBufferPointer(rebasing: v[0..<1]))
                if lossy {
                    try rec.withUnsafeMutableBytes { rb in
                        try RowCodec.encode(d.target, UnsafeBufferPointer(rebasing: v[0..<1]), into: rb.baseAddress!)
                        RowCodec.decode(d.target, record: rb.baseAddress!, width: 1, into: &back)
                    }
                    stats.add(reference: v.baseAddress!, result: back, count: 1)
                }
            }
            return report(lossy ? stats : nil)
        }
        var r = 0
        while r < rows {
            let n = Swift.min(step, rows - r)
            try values.withUnsafeMutableBufferPointer { v in
                try s.readRows(start: r, count: n, into: v.baseAddress!)
                let part = UnsafeBufferPointer(rebasing: v[0..<(n * width)])
                if info.paged != nil && width > 0 {
                    // Encode here, measure, and hand the records to the writer.
                    for k in 0..<n {
                        let row = UnsafeBufferPointer(rebasing: v[(k * width)..<((k + 1) * width)])
                        do {
                            try rec.withUnsafeMutableBytes { rb in
                                try RowCodec.encode(d.target, row, into: rb.baseAddress!)
                                back.withUnsafeMutableBufferPointer { bb in
                                    RowCodec.decode(d.target, record: rb.baseAddress!, width: width, into: bb.baseAddress!)
                                }
                            }
                        } catch let e as RowCodecIssue {
                            throw ConvertError.badTensor(file: s.file, tensor: s.name, reason: e.explain(row: r + k))
                        }
                        if lossy { stats.add(reference: row.baseAddress!, result: back, count: width) }
                        try rec.withUnsafeBytes { try writer.appendRawRows(UnsafeRawBufferPointer(rebasing: $0[..<record])) }
                    }
                } else {
                    if lossy {
                        var buf = [UInt8](repeating: 0, count: n * width * (d.target.plainDType?.size ?? 4))
                        try buf.withUnsafeMutableBytes { b in
                            try RowCodec.encode(d.target, part, into: b.baseAddress!)
                            var dec = [Float](repeating: 0, count: n * width)
                            RowCodec.decode(d.target, record: b.baseAddress!, width: n * width, into: &dec)
                            stats.add(reference: part.baseAddress!, result: dec, count: n * width)
                            try writer.appendDense(UnsafeRawBufferPointer(b))
                        }
                    } else {
                        try writer.appendRows(part)
                    }
                }
            }
            r += n
        }
        return report(lossy ? stats : nil)
    }

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
        let writer = try SafetensorsWriter(path: dst, tensors: plans, metadata: metadata)
        do {
            var reports: [TensorReport] = []
            for (i, t) in c.tensors.enumerated() {
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
                    if target != t.encoding { stats = e }
                }
                reports.append(TensorReport(name: t.name, sourceDType: t.storedType, scheme: target.name, shape: t.shape,
                                            bytesIn: t.storedBytes, bytesOut: outBytes, paged: false, error: stats))
                t.release()
                progress?(i + 1, c.tensors.count)
            }
            try writer.finish()
            return reports
        } catch {
            writer.abort()
            throw error
        }
    }
}

