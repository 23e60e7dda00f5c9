import CFolioKernels
import Dispatch

/// Lookups that read row records with explicit `pread` calls from several threads instead
/// of faulting them in through the mapping: for tables that live on disk rather than in the
/// page cache (a table larger than RAM), where each page fault is one synchronous read but
/// several readers keep several reads in flight.
public final class RecordReader: @unchecked Sendable {
    // @unchecked: the descriptor is only read from (pread at explicit offsets).
    public let file: FolioFile
    private let fd: Int32

    public init(file: FolioFile) throws {
        self.file = file
        do { fd = try Sys.openRead(file.path) } catch { throw FolioError.system(error) }
    }

    deinit { Sys.close(fd) }

    /// As `FolioFile.gatherSum`: for each token i, the rows `rows[i * T + k]` of `tables[k]`
    /// dequantized and summed into `out + i * stride`, the records read by `readers` threads.
    public func gatherSum(_ tables: [TensorInfo], rows: UnsafeBufferPointer<Int64>, into out: UnsafeMutablePointer<Float>, stride: Int,
                          readers: Int) throws {
        let t = tables.count
        guard let first = tables.first else { return }
        guard tables.allSatisfy({ $0.encoding == first.encoding && $0.rowWidth == first.rowWidth }), rows.count % t == 0,
              let (kind, group) = FolioFile.kernelKind(first.encoding) else {
            throw FolioError.invalidUse(file: file.path, reason: "direct reads need tables of one quantized or float encoding and width")
        }
        if let c = tables.first(where: { $0.isCompressed }) {
            throw FolioError.invalidUse(file: file.path, reason: "tensor '\(c.name)' is compressed; direct reads need the plain layout")
        }
        guard stride >= first.rowWidth else {
            throw FolioError.invalidUse(file: file.path, reason: "output stride \(stride) is narrower than a row of '\(first.name)' (\(first.rowWidth))")
        }
        for (i, r) in rows.enumerated() {
            let table = tables[i % t]
            guard r >= 0, r < Int64(table.rowCount) else {
                throw FolioError.rowOutOfRange(file: file.path, tensor: table.name, row: Int(clamping: r), rows: table.rowCount)
            }
        }
        let total = rows.count, n = total / t
        guard n > 0, first.rowWidth > 0 else { return }
        let rs = file.rowByteRange(first, 0).count
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: total * rs, alignment: 64)
        let fileOffsets = UnsafeMutablePointer<Int64>.allocate(capacity: total)
        let local = UnsafeMutablePointer<Int64>.allocate(capacity: total)
        defer { scratch.deallocate(); fileOffsets.deallocate(); local.deallocate() }
        for (i, r) in rows.enumerated() {
            fileOffsets[i] = Int64(file.rowByteRange(tables[i % t], Int(r)).lowerBound)
            local[i] = Int64(i * rs)
        }
        let parts = max(1, min(readers, total))
        let shared = ReadShared(fd: fd, scratch: scratch, offsets: fileOffsets, rs: rs, total: total, path: file.path)
        let failure = FailureBox()
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            for i in (total * p / parts)..<(total * (p + 1) / parts) {
                do throws(SystemError) { try Sys.preadFully(shared.fd, shared.scratch + i * shared.rs, count: shared.rs, offset: UInt64(shared.offsets[i]), path: shared.path) }
                catch { failure.set(FolioError.system(error)); return }
            }
        }
        if let e = failure.error { throw e }
        folio_gather_sum(kind, group, scratch.assumingMemoryBound(to: UInt8.self), local, n, t, first.rowWidth, rs, out, stride)
    }
}

private struct ReadShared: @unchecked Sendable {
    let fd: Int32
    let scratch: UnsafeMutableRawPointer
    let offsets: UnsafeMutablePointer<Int64>
    let rs: Int
    let total: Int
    let path: String
}

private final class FailureBox: @unchecked Sendable {
    private let lock = NSLockLike()
    private(set) var error: Error?
    func set(_ e: Error) { lock.withLock { if error == nil { error = e } } }
}
