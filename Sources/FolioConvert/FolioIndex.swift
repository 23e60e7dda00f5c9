import Folio

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
