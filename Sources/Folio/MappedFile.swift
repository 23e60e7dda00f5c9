/// A read-only memory mapping of a whole file. It owns the mapping and unmaps it when the
/// last reference goes; its bytes are reached only inside `withBytes`.
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and immutable for the object's lifetime.
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?

    /// Maps `path` read-only. An empty file is valid and maps to an empty buffer.
    public init(path: String) throws {
        self.path = path
        let fd: Int32
        do { fd = try Sys.openRead(path) } catch { throw FolioError.system(error) }
        defer { Sys.close(fd) }
        let size: UInt64
        do { size = try Sys.regularFileSize(fd, path: path) } catch { throw FolioError.system(error) }
        guard size <= UInt64(Int.max / 2) else { throw FolioError.malformed(file: path, reason: "file is too large to map") }
        self.size = Int(size)
        if size == 0 {
            base = nil
        } else {
            do { base = try Sys.mapReadOnly(fd, length: Int(size), path: path) } catch { throw FolioError.system(error) }
        }
    }

    deinit {
        if let base { Sys.unmap(base, length: size) }
    }

    /// Calls `body` with the file's bytes; the buffer must not escape the closure.
    @inline(__always)
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: size))
    }

    /// Calls `body` with `count` bytes at `offset`. The range comes from a validated header;
    /// one outside the file is a programmer error and traps.
    @inline(__always)
    public func withBytes<R, E: Error>(offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        precondition(offset >= 0 && count >= 0 && offset <= size - count, "byte range outside the mapping")
        return try body(UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: count))
    }

    /// Access-pattern advice for a byte range (clamped to the file; page-aligned outward).
    public func advise(_ advice: AccessAdvice, offset: Int = 0, length: Int? = nil) {
        guard let base, size > 0 else { return }
        let start = max(0, min(offset, size))
        let end = min(size, start + max(0, min(length ?? size, size - start)))
        let page = Sys.pageSize
        let alignedStart = start / page * page
        guard end > alignedStart else { return }
        let sysAdvice: Sys.Advice
        switch advice {
        case .normal: sysAdvice = .normal
        case .random: sysAdvice = .random
        case .sequential: sysAdvice = .sequential
        case .willNeed: sysAdvice = .willNeed
        case .dontNeed: sysAdvice = .dontNeed
        }
        Sys.advise(base + alignedStart, length: end - alignedStart, sysAdvice)
    }
}

/// Hints about how a mapped range will be read.
public enum AccessAdvice: Sendable {
    case normal, random, sequential
    /// Start reading these pages in now.
    case willNeed
    /// Pages already read can be dropped from this process (they stay in the page cache).
    case dontNeed
}
