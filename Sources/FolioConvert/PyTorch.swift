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
    /// are gathered piece by piece as they are read.
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
        // The byte span the view reads; from a deflated member it is inflated whole.
        let spanEnd = (last + 1) * size
        if case .inflated = member.bytes, spanEnd - begin > PyTorchStridedStorage.maxInflatedSpan {
            throw bad("a non-contiguous view (strides \(t.stride)) spanning \(spanEnd - begin) bytes of a compressed storage is more than the \(PyTorchStridedStorage.maxInflatedSpan >> 20) MiB Folio inflates at once; save it with .contiguous() or without compression")
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

/// A non-contiguous view of a PyTorch storage (a transposed weight, a strided slice). Its
/// elements are gathered into row-major order piece by piece as they are read, straight from
/// the mapped storage, so memory stays bounded by the piece asked for. From a deflated
/// storage the view's span is inflated once into the member's window, hence the cap there.
struct PyTorchStridedStorage: TensorStorage {
    /// The largest span of a deflated storage that a view may read.
    static let maxInflatedSpan = 1 << 30

    let source: ByteSource
    let dtype: DType
    let offset: Int
    let shape: [Int]
    let stride: [Int]
    /// Storage bytes that the view reads (validated against the storage by the opener).
    let span: Range<Int>
    let nbytes: Int

    var storedBytes: Int { nbytes }
    var denseDType: DType? { dtype }
    /// Each read gathers into its own buffer; a deflated storage is one stream.
    var supportsConcurrentReads: Bool { source.isMapped }

    /// Copies elements `first..<first+count` (row-major order of the view) into `dst`.
    func gather(first: Int, count: Int, into dst: UnsafeMutableRawPointer) throws {
        guard count > 0 else { return }
        let size = dtype.size, rank = shape.count
        try source.withBytes(span) { src in
            // The multi-index of `first`, then runs along the last dimension.
            var index = [Int](repeating: 0, count: rank)
            var rest = first
            for d in Swift.stride(from: rank - 1, through: 0, by: -1) {
                index[d] = rest % shape[d]
                rest /= shape[d]
            }
            let inner = shape[rank - 1], innerStride = self.stride[rank - 1]
            var done = 0
            while done < count {
                var element = offset
                for d in 0..<rank { element += index[d] * self.stride[d] }
                let run = Swift.min(inner - index[rank - 1], count - done)
                let from = src.baseAddress! + (element * size - span.lowerBound)
                let to = dst + done * size
                if innerStride == 1 {
                    to.copyMemory(from: from, byteCount: run * size)
                } else {
                    for j in 0..<run { (to + j * size).copyMemory(from: from + j * innerStride * size, byteCount: size) }
                }
                done += run
                index[rank - 1] += run
                var d = rank - 1
                while d > 0 && index[d] == shape[d] {
                    index[d] = 0
                    index[d - 1] += 1
                    d -= 1
                }
            }
        }
        if case .mapped = source { source.release(span) }
    }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let size = dtype.size
        let total = nbytes / size
        let per = Swift.max(1, Swift.min(total, piece / size))
        var buffer = [UInt8](repeating: 0, count: per * size)
        var at = 0
        repeat {
            let n = Swift.min(per, total - at)
            try buffer.withUnsafeMutableBytes { b in
                try gather(first: at, count: n, into: b.baseAddress!)
                try body(UnsafeRawBufferPointer(rebasing: b[..<(n * size)]))
            }
            at += n
        } while at < total
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let size = dtype.size
        let first = range.lowerBound / size, last = (range.upperBound + size - 1) / size
        var buffer = [UInt8](repeating: 0, count: Swift.max(1, (last - first) * size))
        try buffer.withUnsafeMutableBytes { b in
            try gather(first: first, count: last - first, into: b.baseAddress!)
            let skip = range.lowerBound - first * size
            try body(UnsafeRawBufferPointer(rebasing: b[skip..<(skip + range.count)]))
        }
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let size = dtype.size
        try withDenseBytes(range: (start * width * size)..<((start + count) * width * size)) { b in
            if let base = b.baseAddress { dtype.toFloat(base, count: count * width, into: out) }
        }
    }

    func release() { source.release(span) }
}
