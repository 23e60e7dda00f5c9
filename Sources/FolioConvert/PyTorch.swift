import Folio
import Foundation

extension Checkpoint {
    /// The most data.pkl Folio reads (state dicts of large models pickle to a few MB).
    static let maxPickleBytes = 256 << 20

    /// Opens a checkpoint written by `torch.save` (the zip format of PyTorch 1.6 and later:
    /// `.bin`, `.pt`, `.pth`). Its `data.pkl` is read by Folio's restricted unpickler, which
    /// runs no code and refuses every global but the tensor rebuild calls, storage types and
    /// OrderedDict. Nested dicts are flattened with dotted names. Contiguous tensors are
    /// served zero-copy from their storage member; non-contiguous views (a transposed weight)
    /// are gathered into memory when read, up to `PyTorchStridedStorage.maxBytes`.
    /// - Throws: `ConvertError` naming the file and the member, opcode, global or tensor at
    ///   fault; the legacy (pre-1.6) format is refused.
    public static func openPyTorch(_ path: String) throws -> Checkpoint {
        let map = try MappedFile(path: path)
        let head: [UInt8] = map.withBytes { Array($0.prefix(4)) }
        if head.first == 0x80 {
            throw ConvertError.unsupported(file: path, reason: "legacy PyTorch format (before 1.6) is not supported; re-save with torch.save")
        }
        guard head.starts(with: [0x50, 0x4B]) else {
            throw ConvertError.badFile(file: path, reason: "not a PyTorch checkpoint: expected the zip archive that torch.save writes")
        }
        let members = try ZipMembers.list(path, map: map)
        let pickles = members.filter { m in
            let parts = m.path.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }
        guard pickles.count == 1, let pickle = pickles.first else {
            throw ConvertError.badFile(file: path, reason: pickles.isEmpty
                ? "no <name>/data.pkl in the archive: not a torch.save checkpoint"
                : "several data.pkl members (\(pickles.map(\.path).joined(separator: ", ")))")
        }
        let prefix = String(pickle.path.dropLast("data.pkl".count))
        var byPath: [String: ZipMember] = [:]
        for m in members { byPath[m.path] = m }
        if let order = byPath[prefix + "byteorder"] {
            let text = try read(order, limit: 64, file: path)
            guard String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw ConvertError.unsupported(file: path, reason: "\(order.path) says '\(String(decoding: text.prefix(16), as: UTF8.self))': only little-endian checkpoints are supported")
            }
        }
        let bytes = try read(pickle, limit: maxPickleBytes, file: path)
        let unpickler = RestrictedUnpickler(bytes: bytes, file: path, member: pickle.path)
        defer { unpickler.tearDown() }
        let refs = try unpickler.tensors(of: try unpickler.load())
        let tensors = try refs.map { try torchTensor($0.name, $0.tensor, storages: byPath, prefix: prefix, file: path) }
        return Checkpoint(path: path, format: .pytorch, tensors: tensors, metadata: nil, files: [])
    }

    /// A whole (small) member as bytes.
    private static func read(_ m: ZipMember, limit: Int, file: String) throws -> [UInt8] {
        guard m.size <= limit else {
            throw ConvertError.badFile(file: file, reason: "\(m.path) is \(m.size) bytes, more than the \(limit)-byte limit")
        }
        var out: [UInt8] = []
        out.reserveCapacity(m.size)
        try m.bytes.forEachPiece(0..<m.size, piece: 1 << 20) { out.append(contentsOf: $0) }
        return out
    }

    /// Checks a rebuilt tensor against its storage member and chooses how to serve it.
    static func torchTensor(_ name: String, _ t: TorchTensorRef, storages: [String: ZipMember], prefix: String, file: String) throws -> SourceTensor {
        func bad(_ r: String) -> ConvertError { .badTensor(file: file, tensor: name, reason: r) }
        let memberPath = prefix + "data/" + t.storage.key
        guard let member = storages[memberPath] else { throw bad("its storage '\(t.storage.key)' has no member \(memberPath) in the archive") }
        let (storageBytes, o1) = t.storage.numel.multipliedReportingOverflow(by: t.storage.dtype?.size ?? 1)
        guard !o1, storageBytes == member.size else {
            throw bad("storage '\(t.storage.key)' declares \(t.storage.numel) elements of \(t.storage.dtype?.rawValue ?? "bytes"), its member \(memberPath) holds \(member.size) bytes")
        }
        let size = t.dtype.size
        guard t.shape.count <= FolioFormat.maxRank else { throw bad("rank \(t.shape.count) exceeds \(FolioFormat.maxRank)") }
        var count = 1
        for d in t.shape {
            let (c, o) = count.multipliedReportingOverflow(by: d)
            guard !o, c <= FolioFormat.maxElements else { throw bad("shape \(t.shape) overflows") }
            count = c
        }
        let nbytes = count * size
        let storageElements = storageBytes / size
        // The last element the view touches, with checked arithmetic: offset + sum((n-1) * s).
        var last = t.offset
        var overflow = false
        if count > 0 {
            for (n, s) in zip(t.shape, t.stride) {
                let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(step)
                overflow = overflow || o1 || o2
                last = sum
            }
        }
        let fits = count == 0 ? t.offset <= storageElements : last < storageElements
        guard !overflow, fits else {
            throw bad("view (offset \(t.offset), shape \(t.shape), strides \(t.stride)) reaches past its storage '\(t.storage.key)' of \(storageElements) \(t.dtype.rawValue) elements")
        }
        let begin = count == 0 ? 0 : t.offset * size
        let encoding = Encoding.plain(t.dtype)
        if isContiguous(shape: t.shape, stride: t.stride) || count == 0 {
            let storage = ByteSourceStorage(source: member.bytes, begin: begin, nbytes: nbytes, dtype: t.dtype)
            return SourceTensor(name: name, encoding: encoding, shape: t.shape, file: file, storage: storage)
        }
        guard nbytes <= PyTorchStridedStorage.maxBytes else {
            throw bad("a non-contiguous view (strides \(t.stride)) of \(nbytes) bytes is more than the \(PyTorchStridedStorage.maxBytes >> 20) MiB Folio gathers in memory; save it with .contiguous()")
        }
        // The byte span the view reads; an inflated member must hold it in memory.
        let spanEnd = (last + 1) * size
        if case .inflated = member.bytes, spanEnd - begin > PyTorchStridedStorage.maxBytes {
            throw bad("a non-contiguous view spanning \(spanEnd - begin) bytes of a compressed storage is more than Folio gathers in memory; save it with .contiguous()")
        }
        let storage = PyTorchStridedStorage(source: member.bytes, dtype: t.dtype, offset: t.offset, shape: t.shape, stride: t.stride, span: begin..<spanEnd, nbytes: nbytes)
        return SourceTensor(name: name, encoding: encoding, shape: t.shape, file: file, storage: storage)
    }

    /// Row-major contiguity, ignoring the strides of dimensions of size 1.
    static func isContiguous(shape: [Int], stride: [Int]) -> Bool {
        var expected = 1
        for (n, s) in zip(shape, stride).reversed() where n != 1 {
            guard s == expected else { return false }
            expected *= n
        }
        return true
    }
}

/// A non-contiguous view of a PyTorch storage: its elements are gathered into row-major
/// order on first read and kept until `release()`.
final class PyTorchStridedStorage: TensorStorage, @unchecked Sendable {
    // @unchecked: `gathered` is only touched while `lock` is held; the rest is immutable.
    /// The largest view gathered in memory.
    static let maxBytes = 1 << 30

    let source: ByteSource
    let dtype: DType
    let offset: Int
    let shape: [Int]
    let stride: [Int]
    /// Storage bytes that the view reads (validated against the storage by the opener).
    let span: Range<Int>
    let nbytes: Int
    private let lock = NSLock()
    private var gathered: [UInt8]?

    init(source: ByteSource, dtype: DType, offset: Int, shape: [Int], stride: [Int], span: Range<Int>, nbytes: Int) {
        self.source = source
        self.dtype = dtype
        self.offset = offset
        self.shape = shape
        self.stride = stride
        self.span = span
        self.nbytes = nbytes
    }

    var storedBytes: Int { nbytes }
    var denseDType: DType? { dtype }

    private func withGathered<R>(_ body: ([UInt8]) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        if let g = gathered { return try body(g) }
        var out = [UInt8](repeating: 0, count: nbytes)
        let size = dtype.size
        let rank = shape.count
        try source.withBytes(span) { src in
            out.withUnsafeMutableBytes { dst in
                // An odometer over every dimension but the last, which is copied as one run.
                let inner = shape[rank - 1], innerStride = stride[rank - 1]
                var index = [Int](repeating: 0, count: rank)
                var at = 0
                let rows = nbytes / Swift.max(1, inner * size)
                for _ in 0..<rows {
                    var element = offset
                    for d in 0..<(rank - 1) { element += index[d] * stride[d] }
                    let from = element * size - span.lowerBound
                    if innerStride == 1 {
                        (dst.baseAddress! + at).copyMemory(from: src.baseAddress! + from, byteCount: inner * size)
                    } else {
                        for j in 0..<inner {
                            (dst.baseAddress! + at + j * size).copyMemory(from: src.baseAddress! + from + j * innerStride * size, byteCount: size)
                        }
                    }
                    at += inner * size
                    var d = rank - 2
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < shape[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        source.release(span)
        gathered = out
        return try body(out)
    }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try withGathered { g in
            try g.withUnsafeBytes { all in
                var at = 0
                repeat {
                    let n = Swift.min(Swift.max(1, piece), all.count - at)
                    try body(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                    at += n
                } while at < all.count
            }
        }
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try withGathered { g in try g.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) } }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let size = dtype.size
        try withDenseBytes(range: (start * width * size)..<((start + count) * width * size)) { b in
            if let base = b.baseAddress { dtype.toFloat(base, count: count * width, into: out) }
        }
    }

    func release() {
        lock.lock()
        gathered = nil
        lock.unlock()
    }
}
