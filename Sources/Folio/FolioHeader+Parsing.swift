extension FolioHeader {
    /// Parses and fully validates the fixed parts and the header of a Folio file held in
    /// `bytes` (the whole file, typically memory-mapped). `file` names it in errors.
    ///
    /// On return every tensor's offsets lie inside the data region, no two overlap, sizes
    /// match dtypes and shapes, paged tables follow the canonical layout, the header checksum
    /// matches and the file ends where the header says, with the end marker. Only the header
    /// and the last 8 bytes are read, so opening costs the same for any data size; the
    /// chunk-hash table and the data chunks are checked by `FolioFile.verify`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> FolioHeader {
        let size = bytes.count
        func malformed(_ r: String) -> FolioError { .malformed(file: file, reason: r) }

        guard size >= FolioFormat.magic.count, zip(FolioFormat.magic, bytes).allSatisfy({ $0 == $1 }) else {
            throw malformed("not a Folio file (bad magic bytes)")
        }
        guard size >= FolioFormat.preambleSize else {
            throw malformed("truncated: \(size) bytes, shorter than the \(FolioFormat.preambleSize)-byte preamble")
        }
        let version = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
        guard FolioFormat.readableVersions.contains(version) else {
            throw malformed("unsupported format version \(version) (this reader knows versions \(FolioFormat.readableVersions.map(String.init).joined(separator: ", ")))")
        }
        let flags = bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian
        guard flags == 0 else { throw malformed("unknown flags 0x\(String(flags, radix: 16)) in the preamble") }
        let headerLength = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian
        guard headerLength > 0, headerLength <= UInt64(FolioFormat.maxHeaderLength) else {
            throw malformed("header length \(headerLength) is out of range (1...\(FolioFormat.maxHeaderLength))")
        }
        let headerEnd = FolioFormat.preambleSize + Int(headerLength)
        guard headerEnd <= size else {
            throw malformed("truncated: the header needs \(headerEnd) bytes, the file has \(size)")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[FolioFormat.preambleSize..<headerEnd])
        let storedHash = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self).littleEndian
        let actualHash = Checksum.xxh3(headerBytes)
        guard storedHash == actualHash else {
            throw FolioError.checksum(file: file, reason: "header checksum mismatch (stored \(hex(storedHash)), computed \(hex(actualHash))): the header is damaged")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(headerBytes) } catch {
            throw malformed("header is not valid JSON: \(error)")
        }
        var h = try HeaderFields(json: json, file: file, version: version)
        // The JSON is padded with spaces so that data starts on a page boundary.
        guard headerEnd % h.pageSize == 0 else {
            throw FolioError.badHeader(file: file, field: "page_size", reason: "data would start at byte \(headerEnd), not a multiple of the page size \(h.pageSize)")
        }
        h.dataOffset = headerEnd
        try h.validateLayout()

        let chunks = h.dataSize == 0 ? 0 : (h.dataSize - 1) / h.chunkSize + 1
        let (trailer, o1) = headerEnd.addingReportingOverflow(h.dataSize)
        let (expected, o2) = trailer.addingReportingOverflow(chunks * 8 + FolioFormat.footerSize)
        guard !o1, !o2 else { throw FolioError.badHeader(file: file, field: "data_size", reason: "\(h.dataSize) is too large") }
        guard size == expected else {
            if size < expected {
                throw malformed("truncated: header describes \(expected) bytes, the file has \(size)")
            }
            throw malformed("file has \(size - expected) unexpected bytes after the end (expected \(expected) bytes)")
        }
        let end = UnsafeRawBufferPointer(rebasing: bytes[(size - 8)..<size])
        guard zip(FolioFormat.endMagic, end).allSatisfy({ $0 == $1 }) else {
            throw malformed("bad end marker (expected \"FOLIOEND\" in the last 8 bytes): the file is truncated or damaged")
        }
        return FolioHeader(
            version: version, pageSize: h.pageSize, chunkSize: h.chunkSize, dataOffset: headerEnd,
            dataSize: h.dataSize, metadata: h.metadata, tensors: h.tensors, files: h.files, headerHash: storedHash)
    }
}

func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// The header's JSON fields, checked one by one.
struct HeaderFields {
    let file: String
    /// Compression fields (section 15) are only known in version 2.
    var version: UInt32 = FolioFormat.version
    var pageSize = 0
    var chunkSize = 0
    var dataSize = 0
    var dataOffset = 0
    var metadata: [(String, String)]? = nil
    var tensors: [TensorInfo] = []
    var files: [EmbeddedFile] = []

    init(json: JSONValue, file: String, version: UInt32 = FolioFormat.version) throws {
        self.file = file
        self.version = version
        guard let members = json.objectValue else {
            throw FolioError.malformed(file: file, reason: "header is not a JSON object")
        }
        let known: Set<String> = ["page_size", "chunk_size", "data_size", "metadata", "tensors", "files"]
        for (k, _) in members where !known.contains(k) {
            throw FolioError.badHeader(file: file, field: k, reason: "unknown field (version 1 defines: \(known.sorted().joined(separator: ", ")))")
        }
        pageSize = try int(json, "page_size")
        guard pageSize >= FolioFormat.minPageSize, pageSize <= FolioFormat.maxPageSize, pageSize & (pageSize - 1) == 0 else {
            throw FolioError.badHeader(file: file, field: "page_size", reason: "\(pageSize) must be a power of two in \(FolioFormat.minPageSize)...\(FolioFormat.maxPageSize)")
        }
        chunkSize = try int(json, "chunk_size")
        guard chunkSize >= FolioFormat.minChunkSize, chunkSize <= FolioFormat.maxChunkSize, chunkSize & (chunkSize - 1) == 0 else {
            throw FolioError.badHeader(file: file, field: "chunk_size", reason: "\(chunkSize) must be a power of two in \(FolioFormat.minChunkSize)...\(FolioFormat.maxChunkSize)")
        }
        dataSize = try int(json, "data_size")
        guard dataSize <= Int.max / 2 else { throw FolioError.badHeader(file: file, field: "data_size", reason: "\(dataSize) is too large") }

        if let m = json["metadata"] {
            guard let pairs = m.objectValue else { throw FolioError.badHeader(file: file, field: "metadata", reason: "expected an object of strings") }
            var m: [(String, String)] = []
            for (k, v) in pairs {
                guard let s = v.stringValue else { throw FolioError.badHeader(file: file, field: "metadata.\(k)", reason: "expected a string value") }
                m.append((k, s))
            }
            metadata = m
        }
        guard let list = json["tensors"]?.arrayValue else {
            throw FolioError.badHeader(file: file, field: "tensors", reason: json["tensors"] == nil ? "missing" : "expected an array")
        }
        guard list.count <= FolioFormat.maxTensors else {
            throw FolioError.badHeader(file: file, field: "tensors", reason: "\(list.count) tensors exceed the limit of \(FolioFormat.maxTensors)")
        }
        var names = Set<String>()
        for (i, entry) in list.enumerated() {
            let t = try tensor(entry, index: i)
            guard names.insert(t.name).inserted else {
                throw FolioError.badTensor(file: file, tensor: t.name, reason: "duplicate tensor name")
            }
            tensors.append(t)
        }
        if let f = json["files"] {
            guard let list = f.arrayValue else { throw FolioError.badHeader(file: file, field: "files", reason: "expected an array") }
            var fileNames = Set<String>()
            guard list.count <= FolioFormat.maxFiles else {
                throw FolioError.badHeader(file: file, field: "files", reason: "\(list.count) files exceed the limit of \(FolioFormat.maxFiles)")
            }
            for (i, entry) in list.enumerated() {
                let field = "files[\(i)]"
                guard let members = entry.objectValue else { throw FolioError.badHeader(file: file, field: field, reason: "expected an object") }
                for (k, _) in members where !["name", "offset", "nbytes"].contains(k) {
                    throw FolioError.badHeader(file: file, field: "\(field).\(k)", reason: "unknown field")
                }
                let name = try nameField(entry, field: field)
                if let problem = EmbeddedFile.pathProblem(name) {
                    throw FolioError.badHeader(file: file, field: "\(field).name", reason: "'\(name)' \(problem)")
                }
                guard fileNames.insert(name).inserted else {
                    throw FolioError.badHeader(file: file, field: field, reason: "duplicate file name '\(name)'")
                }
                let offset = try int(entry, "offset", in: field)
                let nbytes = try int(entry, "nbytes", in: field)
                guard offset % FolioFormat.denseAlignment == 0 else {
                    throw FolioError.badHeader(file: file, field: "\(field).offset", reason: "\(offset) is not a multiple of \(FolioFormat.denseAlignment)")
                }
                files.append(EmbeddedFile(name: name, offset: offset, nbytes: nbytes))
            }
        }
    }

    private func int(_ obj: JSONValue, _ key: String, in parent: String? = nil) throws -> Int {
        let field = parent.map { "\($0).\(key)" } ?? key
        guard let v = obj[key] else { throw FolioError.badHeader(file: file, field: field, reason: "missing") }
        guard let i = v.intValue else {
            throw FolioError.badHeader(file: file, field: field, reason: "expected a non-negative integer below 2^63, found \(v.serialized())")
        }
        return i
    }

    private func nameField(_ obj: JSONValue, field: String) throws -> String {
        guard let name = obj["name"]?.stringValue else {
            throw FolioError.badHeader(file: file, field: "\(field).name", reason: "missing or not a string")
        }
        guard !name.isEmpty, name.utf8.count <= FolioFormat.maxNameBytes else {
            throw FolioError.badHeader(file: file, field: "\(field).name", reason: "name must have 1...\(FolioFormat.maxNameBytes) bytes")
        }
        return name
    }

    private func tensor(_ entry: JSONValue, index i: Int) throws -> TensorInfo {
        let field = "tensors[\(i)]"
        guard let members = entry.objectValue else { throw FolioError.badHeader(file: file, field: field, reason: "expected an object") }
        let name = try nameField(entry, field: field)
        var known: Set<String> = ["name", "dtype", "shape", "offset", "nbytes", "layout", "row_stride", "rows_per_page", "source_dtype"]
        if version >= FolioFormat.compressedVersion { known.formUnion(TensorCompression.headerKeys) }
        for (k, _) in members where !known.contains(k) {
            throw FolioError.badTensor(file: file, tensor: name, reason: "unknown field '\(k)'")
        }
        func bad(_ r: String) -> FolioError { .badTensor(file: file, tensor: name, reason: r) }
        guard let dtypeName = entry["dtype"]?.stringValue else { throw bad("field 'dtype' is missing or not a string") }
        guard let encoding = Encoding(name: dtypeName), dtypeName == encoding.name else {
            throw bad("unknown dtype '\(dtypeName)'")
        }
        guard let shapeList = entry["shape"]?.arrayValue else { throw bad("field 'shape' is missing or not an array") }
        guard shapeList.count <= FolioFormat.maxRank else { throw bad("rank \(shapeList.count) exceeds the limit of \(FolioFormat.maxRank)") }
        var shape: [Int] = []
        var count = 1
        for d in shapeList {
            guard let v = d.intValue else { throw bad("shape entry \(d.serialized()) is not a non-negative integer below 2^63") }
            guard v <= FolioFormat.maxElements else { throw bad("shape entry \(v) exceeds the limit of 2^59 elements") }
            shape.append(v)
            let (p, o) = count.multipliedReportingOverflow(by: v)
            guard !o, p <= FolioFormat.maxElements else { throw bad("shape [\(shapeList.map { $0.serialized() }.joined(separator: ", "))] has more than 2^59 elements (the product overflows)") }
            count = p
        }
        let offset = try int(entry, "offset", in: field)
        let nbytes = try int(entry, "nbytes", in: field)
        var source: DType? = nil
        if let s = entry["source_dtype"] {
            guard let n = s.stringValue, let d = DType(rawValue: n) else { throw bad("unknown source_dtype \(s.serialized())") }
            source = d
        }
        let layoutName = entry["layout"].map { $0.stringValue ?? "?" } ?? "dense"
        let width = shape.last ?? 1
        let rows = count == 0 ? 0 : count / width
        var paged: PagedLayout? = nil
        switch layoutName {
        case "dense":
            guard !encoding.isQuantized else { throw bad("quantized dtype \(encoding.name) requires layout \"paged\"\(version >= FolioFormat.recordsVersion ? " or \"records\"" : "")") }
            guard entry["row_stride"] == nil, entry["rows_per_page"] == nil else {
                throw bad("row_stride and rows_per_page belong to paged tensors only")
            }
            guard let d = encoding.plainDType, nbytes == count * d.size else {
                throw bad("nbytes is \(nbytes), expected \(count) elements x \(encoding.plainDType?.size ?? 0) bytes = \(count * (encoding.plainDType?.size ?? 0))")
            }
            guard offset % FolioFormat.denseAlignment == 0 else {
                throw bad("offset \(offset) is not a multiple of \(FolioFormat.denseAlignment)")
            }
        case "paged":
            guard !shape.isEmpty else { throw bad("a paged table needs at least one dimension") }
            if let p = encoding.rowProblem(width: width) { throw bad(p) }
            guard let record = encoding.recordSize(width: width),
                  let layout = PagedLayout(recordSize: record, alignment: encoding.recordAlignment, pageSize: pageSize) else {
                throw bad("rows of \(width) values cannot be laid out in pages of \(pageSize) bytes")
            }
            guard let stride = entry["row_stride"]?.intValue, stride == layout.rowStride else {
                throw bad("row_stride is \(entry["row_stride"]?.serialized() ?? "missing"), expected \(layout.rowStride)")
            }
            guard let rpp = entry["rows_per_page"]?.intValue, rpp == layout.rowsPerPage else {
                throw bad("rows_per_page is \(entry["rows_per_page"]?.serialized() ?? "missing"), expected \(layout.rowsPerPage)")
            }
            guard let expected = layout.byteCount(rows: rows), expected == nbytes else {
                throw bad("nbytes is \(nbytes), expected \(layout.byteCount(rows: rows).map(String.init) ?? "overflow") for \(rows) rows in pages of \(pageSize) bytes")
            }
            guard offset % pageSize == 0 || (entry["codec"] != nil && offset % FolioFormat.denseAlignment == 0) else {
                throw bad("offset \(offset) of a paged table is not a multiple of the page size \(pageSize)")
            }
            paged = layout
        case "records" where version >= FolioFormat.recordsVersion:
            guard !shape.isEmpty else { throw bad("a records tensor needs at least one dimension") }
            guard encoding.isQuantized else { throw bad("layout \"records\" is for quantized dtypes; \(encoding.name) is stored \"dense\"") }
            if let p = encoding.rowProblem(width: width) { throw bad(p) }
            guard let record = encoding.recordSize(width: width), let layout = PagedLayout(recordsOf: record) else {
                throw bad("rows of \(width) values cannot be laid out as records")
            }
            guard entry["rows_per_page"] == nil else { throw bad("rows_per_page belongs to paged tensors only") }
            guard let stride = entry["row_stride"]?.intValue, stride == layout.rowStride else {
                throw bad("row_stride is \(entry["row_stride"]?.serialized() ?? "missing"), expected \(layout.rowStride)")
            }
            guard let expected = layout.byteCount(rows: rows), expected == nbytes else {
                throw bad("nbytes is \(nbytes), expected \(layout.byteCount(rows: rows).map(String.init) ?? "overflow") for \(rows) records of \(record) bytes at a stride of \(layout.rowStride)")
            }
            guard offset % FolioFormat.denseAlignment == 0 else {
                throw bad("offset \(offset) is not a multiple of \(FolioFormat.denseAlignment)")
            }
            paged = layout
        default:
            throw bad("unknown layout \(entry["layout"]!.serialized()) (expected \(version >= FolioFormat.recordsVersion ? "\"dense\", \"paged\" or \"records\"" : "\"dense\" or \"paged\""))")
        }
        var info = TensorInfo(name: name, encoding: encoding, shape: shape, offset: offset, nbytes: nbytes, paged: paged, sourceDType: source)
        info.compression = try TensorCompression.parse(entry, tensor: info, file: file)
        return info
    }

    /// Every tensor and embedded file inside the data region, none overlapping.
    func validateLayout() throws {
        var spans: [(start: Int, end: Int, what: String)] = []
        for t in tensors {
            let (end, o) = t.offset.addingReportingOverflow(t.storedBytes)
            guard !o, end <= dataSize else {
                throw FolioError.badTensor(file: file, tensor: t.name, reason: "bytes \(t.offset)..<\(o ? "overflow" : String(end)) lie outside the data region of \(dataSize) bytes")
            }
            spans.append((t.offset, end, "tensor '\(t.name)'"))
        }
        for f in files {
            let (end, o) = f.offset.addingReportingOverflow(f.nbytes)
            guard !o, end <= dataSize else {
                throw FolioError.badHeader(file: file, field: "files", reason: "file '\(f.name)' bytes \(f.offset)..<\(o ? "overflow" : String(end)) lie outside the data region of \(dataSize) bytes")
            }
            spans.append((f.offset, end, "file '\(f.name)'"))
        }
        let lastEnd = spans.map(\.end).max() ?? 0
        guard lastEnd == dataSize else {
            throw FolioError.badHeader(file: file, field: "data_size", reason: "\(dataSize), but the last tensor or file ends at \(lastEnd)")
        }
        spans.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        var previous: (start: Int, end: Int, what: String)? = nil
        for s in spans where s.end > s.start {
            if let p = previous, s.start < p.end {
                throw FolioError.malformed(file: file, reason: "\(s.what) (bytes \(s.start)..<\(s.end)) overlaps \(p.what) (bytes \(p.start)..<\(p.end))")
            }
            previous = s
        }
    }
}
