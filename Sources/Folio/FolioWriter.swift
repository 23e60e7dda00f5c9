/// What the writer is told about a tensor before any data is written.
public struct TensorPlan: Sendable, Hashable {
    public var name: String
    public var encoding: Encoding
    public var shape: [Int]
    /// Paged layout (one page per row). Quantized encodings are always paged or records.
    public var paged: Bool
    /// For a quantized encoding: the records layout (records back to back, format version
    /// 3) instead of pages. Matrices that are multiplied whole use it; tables read by rows
    /// keep pages.
    public var records: Bool = false
    public var sourceDType: DType?

    public init(name: String, encoding: Encoding, shape: [Int], paged: Bool = false, sourceDType: DType? = nil) {
        self.name = name
        self.encoding = encoding
        self.shape = shape
        self.paged = paged || encoding.isQuantized
        self.sourceDType = sourceDType
    }
}

/// Streams a Folio file to disk: the layout is computed from the plan up front, so the
/// header is written first; data follows item by item (embedded files, then tensors, in
/// plan order) and the chunk checksums go into a trailer written last. Memory use is one
/// output buffer, whatever the model size. The file appears atomically on `finish`.
public final class FolioWriter {
    public let path: String
    public let header: FolioHeader
    private let out: AtomicOutput
    private let dataStart: Int
    private var items: [Item]
    private var current = 0
    private var written = 0  // bytes of the current item
    private var rowsWritten = 0
    private var data: DataStream
    private var scratch: [UInt8] = []

    enum Item {
        case file(EmbeddedFile)
        case tensor(TensorInfo)
        var offset: Int { switch self { case let .file(f): f.offset; case let .tensor(t): t.offset } }
        var nbytes: Int { switch self { case let .file(f): f.nbytes; case let .tensor(t): t.nbytes } }
        var name: String { switch self { case let .file(f): f.name; case let .tensor(t): t.name } }
    }

    /// Plans the layout, validates it, and writes the preamble and header.
    public init(path: String, tensors: [TensorPlan], files: [(name: String, nbytes: Int)] = [], metadata: [(String, String)]? = nil,
                pageSize: Int = FolioFormat.defaultPageSize, chunkSize: Int = FolioFormat.defaultChunkSize) throws {
        self.path = path
        guard pageSize >= FolioFormat.minPageSize, pageSize <= FolioFormat.maxPageSize, pageSize & (pageSize - 1) == 0 else {
            throw FolioError.invalidUse(file: path, reason: "page size \(pageSize) is not a power of two in \(FolioFormat.minPageSize)...\(FolioFormat.maxPageSize)")
        }
        guard chunkSize >= FolioFormat.minChunkSize, chunkSize <= FolioFormat.maxChunkSize, chunkSize & (chunkSize - 1) == 0 else {
            throw FolioError.invalidUse(file: path, reason: "chunk size \(chunkSize) is not a power of two in \(FolioFormat.minChunkSize)...\(FolioFormat.maxChunkSize)")
        }
        guard tensors.count <= FolioFormat.maxTensors, files.count <= FolioFormat.maxFiles else {
            throw FolioError.invalidUse(file: path, reason: "too many tensors or files (limits \(FolioFormat.maxTensors) and \(FolioFormat.maxFiles))")
        }
        if let metadata {
            var keys = Set<String>()
            for (k, _) in metadata where !keys.insert(k).inserted {
                throw FolioError.invalidUse(file: path, reason: "metadata key '\(k)' appears twice")
            }
        }
        for name in tensors.map(\.name) + files.map(\.name) where name.isEmpty || name.utf8.count > FolioFormat.maxNameBytes {
            throw FolioError.invalidUse(file: path, reason: "name '\(name.prefix(64))' must have 1...\(FolioFormat.maxNameBytes) bytes")
        }
        for f in files {
            if let p = EmbeddedFile.pathProblem(f.name) { throw FolioError.invalidUse(file: path, reason: "embedded file '\(f.name)' \(p)") }
        }
        var cursor = 0
        var fileEntries: [EmbeddedFile] = []
        var names = Set<String>()
        for f in files {
            guard names.insert("file:" + f.name).inserted else { throw FolioError.invalidUse(file: path, reason: "embedded file '\(f.name)' is listed twice") }
            guard let at = alignUp(cursor, FolioFormat.denseAlignment) else { throw FolioError.invalidUse(file: path, reason: "layout overflow") }
            guard f.nbytes >= 0, case (let end, false) = at.addingReportingOverflow(f.nbytes), end <= Int.max / 2 else {
                throw FolioError.invalidUse(file: path, reason: "embedded file '\(f.name)' has an invalid size \(f.nbytes)")
            }
            fileEntries.append(EmbeddedFile(name: f.name, offset: at, nbytes: f.nbytes))
            cursor = end
        }
        var infos: [TensorInfo] = []
        for t in tensors {
            guard names.insert("tensor:" + t.name).inserted else {
                throw FolioError.badTensor(file: path, tensor: t.name, reason: "duplicate tensor name")
            }
            guard t.shape.count <= FolioFormat.maxRank else {
                throw FolioError.badTensor(file: path, tensor: t.name, reason: "rank \(t.shape.count) exceeds the limit of \(FolioFormat.maxRank)")
            }
            var count = 1
            for d in t.shape {
                let (p, o) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, d <= FolioFormat.maxElements, !o, p <= FolioFormat.maxElements else {
                    throw FolioError.badTensor(file: path, tensor: t.name, reason: "shape \(t.shape) is invalid or too large")
                }
                count = p
            }
            let width = t.shape.last ?? 1
            var layout: PagedLayout? = nil
            let nbytes: Int
            if t.paged {
                guard !t.shape.isEmpty else { throw FolioError.badTensor(file: path, tensor: t.name, reason: "a 0-d tensor cannot be paged or quantized") }
                guard let l = try FolioWriter.pagedLayout(of: t, pageSize: pageSize), let n = l.byteCount(rows: count == 0 ? 0 : count / width) else {
                    throw FolioError.badTensor(file: path, tensor: t.name, reason: "cannot be laid out in pages of \(pageSize) bytes")
                }
                layout = l
                nbytes = n
            } else {
                guard let d = t.encoding.plainDType else { throw FolioError.badTensor(file: path, tensor: t.name, reason: "a quantized tensor must be paged") }
                nbytes = count * d.size
            }
            guard let at = alignUp(cursor, layout?.startAlignment(pageSize: pageSize) ?? FolioFormat.denseAlignment) else {
                throw FolioError.invalidUse(file: path, reason: "layout overflow")
            }
            guard case (let end, false) = at.addingReportingOverflow(nbytes), end <= Int.max / 2 else {
                throw FolioError.badTensor(file: path, tensor: t.name, reason: "the file would exceed the maximum data size")
            }
            infos.append(TensorInfo(name: t.name, encoding: t.encoding, shape: t.shape, offset: at, nbytes: nbytes, paged: layout, sourceDType: t.sourceDType))
            cursor = end
        }
        let json = FolioWriter.headerJSON(pageSize: pageSize, chunkSize: chunkSize, dataSize: cursor, metadata: metadata, tensors: infos, files: fileEntries)
        var headerBytes = Array(json.serialized().utf8)
        let unpadded = FolioFormat.preambleSize + headerBytes.count
        guard let end = alignUp(unpadded, pageSize) else { throw FolioError.invalidUse(file: path, reason: "layout overflow") }
        headerBytes.append(contentsOf: repeatElement(0x20, count: end - unpadded))
        guard headerBytes.count <= FolioFormat.maxHeaderLength else {
            throw FolioError.invalidUse(file: path, reason: "header of \(headerBytes.count) bytes exceeds the limit of \(FolioFormat.maxHeaderLength)")
        }
        let hash = Checksum.xxh3(headerBytes)
        let version = FolioFormat.version(for: infos)
        header = FolioHeader(version: version, pageSize: pageSize, chunkSize: chunkSize, dataOffset: end, dataSize: cursor,
                             metadata: metadata, tensors: infos, files: fileEntries, headerHash: hash)
        dataStart = end
        items = fileEntries.map { .file($0) } + infos.map { .tensor($0) }

        out = try AtomicOutput(destination: path)
        data = DataStream(out: out, dataStart: end, chunkSize: chunkSize)
        var pre = FolioFormat.magic
        pre += le(version) + le(UInt32(0)) + le(UInt64(headerBytes.count)) + le(hash)
        try out.write(pre)
        try out.write(headerBytes)
        try advanceToItemStart()
    }

    /// The paged layout a plan gets, or nil for dense plans.
    public static func pagedLayout(of t: TensorPlan, pageSize: Int) throws -> PagedLayout? {
        guard t.paged, !t.shape.isEmpty else { return nil }
        let width = t.shape.last ?? 1
        if let p = t.encoding.rowProblem(width: width) { throw FolioError.badTensor(file: "", tensor: t.name, reason: "cannot use \(t.encoding.name): \(p)") }
        guard let rec = t.encoding.recordSize(width: width),
              let l = t.records && t.encoding.isQuantized ? PagedLayout(recordsOf: rec)
                  : PagedLayout(recordSize: rec, alignment: t.encoding.recordAlignment, pageSize: pageSize) else {
            throw FolioError.badTensor(file: "", tensor: t.name, reason: "cannot be laid out in pages of \(pageSize) bytes")
        }
        return l
    }

    /// Bytes a plan occupies in the data region (without alignment padding).
    public static func storedSize(of t: TensorPlan, pageSize: Int) throws -> Int {
        var count = 1
        for d in t.shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard d >= 0, !o, p <= FolioFormat.maxElements else { throw FolioError.badTensor(file: "", tensor: t.name, reason: "shape \(t.shape) is invalid or too large") }
            count = p
        }
        if let l = try pagedLayout(of: t, pageSize: pageSize) {
            guard let n = l.byteCount(rows: count == 0 ? 0 : count / (t.shape.last ?? 1)) else {
                throw FolioError.badTensor(file: "", tensor: t.name, reason: "too large")
            }
            return n
        }
        return count * (t.encoding.plainDType?.size ?? 1)
    }

    /// The header JSON for a planned layout (page_size, chunk_size, data_size, metadata,
    /// tensors, files). Key order is fixed so that equal plans give equal bytes.
    static func headerJSON(pageSize: Int, chunkSize: Int, dataSize: Int, metadata: [(String, String)]?, tensors: [TensorInfo], files: [EmbeddedFile]) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("page_size", .int(pageSize)), ("chunk_size", .int(chunkSize)), ("data_size", .int(dataSize)),
        ]
        if let metadata { members.append(("metadata", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        members.append(("tensors", .array(tensors.map { t in
            var m: [(String, JSONValue)] = [
                ("name", .string(t.name)), ("dtype", .string(t.encoding.name)),
                ("shape", .array(t.shape.map { .int($0) })), ("offset", .int(t.offset)), ("nbytes", .int(t.nbytes)),
            ]
            if let p = t.paged, p.isRecords {
                m += [("layout", .string("records")), ("row_stride", .int(p.rowStride))]
            } else if let p = t.paged {
                m += [("layout", .string("paged")), ("row_stride", .int(p.rowStride)), ("rows_per_page", .int(p.rowsPerPage))]
            }
            if let s = t.sourceDType { m.append(("source_dtype", .string(s.rawValue))) }
            if let c = t.compression { m += c.headerMembers }
            return .object(m)
        })))
        if !files.isEmpty {
            members.append(("files", .array(files.map { .object([("name", .string($0.name)), ("offset", .int($0.offset)), ("nbytes", .int($0.nbytes))]) })))
        }
        return .object(members)
    }

    private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        withUnsafeBytes(of: v.littleEndian) { Array($0) }
    }

    /// The item that the next bytes belong to.
    public var currentItemName: String? { current < items.count ? items[current].name : nil }

    // MARK: Data

    /// Data bytes go through here: hashed per chunk and buffered.
    private func emit(_ bytes: UnsafeRawBufferPointer) throws { try data.emit(bytes) }

    private func emitZeros(_ count: Int) throws {
        guard count > 0 else { return }
        let zeros = [UInt8](repeating: 0, count: min(count, 1 << 16))
        var left = count
        try zeros.withUnsafeBytes { z throws in
            while left > 0 {
                let n = min(left, z.count)
                try emit(UnsafeRawBufferPointer(rebasing: z[..<n]))
                left -= n
            }
        }
    }

    /// Skips finished (and empty) items and pads up to the start of the next one.
    private func advanceToItemStart() throws {
        while current < items.count && written == items[current].nbytes {
            current += 1
            written = 0
            rowsWritten = 0
        }
        if current < items.count {
            let target = dataStart + items[current].offset
            if out.position < target, written == 0 { try emitZeros(target - out.position) }
        }
    }

    private func currentTensor(_ name: String?) throws -> TensorInfo {
        guard current < items.count, case let .tensor(t) = items[current] else {
            throw FolioError.invalidUse(file: path, reason: "no tensor is expected now (next item: \(currentItemName ?? "none"))")
        }
        if let name, name != t.name {
            throw FolioError.invalidUse(file: path, reason: "expected data for '\(t.name)', got '\(name)'")
        }
        return t
    }

    /// Writes the whole content of the next embedded file.
    public func writeFile(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        guard current < items.count, case let .file(f) = items[current], f.name == name, bytes.count == f.nbytes else {
            throw FolioError.invalidUse(file: path, reason: "embedded file '\(name)' is not the next item or has the wrong size")
        }
        try emit(bytes)
        written = f.nbytes
        try advanceToItemStart()
    }

    /// Appends raw bytes of a dense tensor, in its stored dtype.
    public func appendDense(_ bytes: UnsafeRawBufferPointer, tensor name: String? = nil) throws {
        if bytes.isEmpty { return }
        let t = try currentTensor(name)
        guard t.paged == nil else { throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' is paged; append rows instead") }
        guard bytes.count <= t.nbytes - written else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' holds \(t.nbytes) bytes; \(written + bytes.count) were given")
        }
        try emit(bytes)
        written += bytes.count
        try advanceToItemStart()
    }

    /// Appends whole rows of float32 values: encoded to the tensor's dtype (dense) or to its
    /// row records (paged, quantized or not).
    public func appendRows(_ values: UnsafeBufferPointer<Float>, tensor name: String? = nil) throws {
        if values.isEmpty { return }
        let t = try currentTensor(name)
        let width = t.rowWidth
        guard width > 0 ? values.count % width == 0 : values.isEmpty else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)': \(values.count) values are not whole rows of \(width)")
        }
        let rows = width > 0 ? values.count / width : 0
        guard rows <= t.rowCount - rowsWritten else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' has \(t.rowCount) rows; more were given")
        }
        if let p = t.paged {
            if scratch.count < p.recordSize { scratch = [UInt8](repeating: 0, count: p.recordSize) }
            for r in 0..<rows {
                let row = UnsafeBufferPointer(rebasing: values[(r * width)..<((r + 1) * width)])
                let target = p.rowOffset(rowsWritten)
                if target > written { try emitZeros(target - written); written = target }
                try scratch.withUnsafeMutableBytes { s throws in
                    do { try RowCodec.encode(t.encoding, row, into: s.baseAddress!) } catch let e as RowCodecIssue {
                        throw FolioError.encode(file: path, tensor: t.name, reason: e.explain(row: rowsWritten))
                    }
                    try emit(UnsafeRawBufferPointer(rebasing: s[..<p.recordSize]))
                }
                written += p.recordSize
                rowsWritten += 1
            }
        } else {
            guard let d = t.encoding.plainDType else { throw FolioError.invalidUse(file: path, reason: "unreachable: dense quantized tensor") }
            let bytes = values.count * d.size
            if scratch.count < bytes { scratch = [UInt8](repeating: 0, count: bytes) }
            try scratch.withUnsafeMutableBytes { s throws in
                do { try RowCodec.encode(t.encoding, values, into: s.baseAddress!) } catch let e as RowCodecIssue {
                    throw FolioError.encode(file: path, tensor: t.name, reason: e.explain(row: rowsWritten))
                }
                try emit(UnsafeRawBufferPointer(rebasing: s[..<bytes]))
            }
            written += bytes
            rowsWritten += rows
        }
        try advanceToItemStart()
    }

    /// Appends whole row records already encoded (by `RowCodec.encode`, or copied from
    /// another file) for a paged table; for a dense tensor, its raw bytes.
    public func appendRawRows(_ bytes: UnsafeRawBufferPointer, tensor name: String? = nil) throws {
        if bytes.isEmpty { return }
        let t = try currentTensor(name)
        guard let p = t.paged else { try appendDense(bytes, tensor: name); return }
        guard bytes.count % p.recordSize == 0 else {
            throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)': raw rows must be whole records of \(p.recordSize) bytes")
        }
        let rows = bytes.count / p.recordSize
        guard rows <= t.rowCount - rowsWritten else { throw FolioError.invalidUse(file: path, reason: "tensor '\(t.name)' has \(t.rowCount) rows; more were given") }
        for r in 0..<rows {
            let target = p.rowOffset(rowsWritten)
            if target > written { try emitZeros(target - written); written = target }
            try emit(UnsafeRawBufferPointer(rebasing: bytes[(r * p.recordSize)..<((r + 1) * p.recordSize)]))
            written += p.recordSize
            rowsWritten += 1
        }
        try advanceToItemStart()
    }

    /// Writes the checksum trailer and publishes the file. Throws if any item is incomplete.
    public func finish() throws {
        guard current == items.count else {
            out.abort()
            throw FolioError.invalidUse(file: path, reason: "'\(items[current].name)' was not completely written (\(written) of \(items[current].nbytes) bytes)")
        }
        // Empty tensors at the end still occupy their aligned start.
        try emitZeros(dataStart + header.dataSize - out.position)
        precondition(data.hashes.count + (data.cursor % header.chunkSize != 0 ? 1 : 0) == header.chunkCount, "chunk accounting")
        try data.finish()
        try out.commit()
    }

    /// Drops the partial file; the destination is untouched.
    public func abort() { out.abort() }
}
