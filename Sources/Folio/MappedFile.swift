/// A read-only memory mapping of a whole file. It owns the mapping and unmaps it when the
/// last reference goes; its bytes are reached only inside `withBytes`.
///
/// It is also the byte-source seam of the storage layer: over a remote file (`remote`) the
/// bytes live in a sparse buffer filled on demand, and a reader calls `ensure` for the
/// ranges it is about to read (a no-op for a local file, whose mapping has every byte).
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and immutable for the object's lifetime.
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?
    /// The anonymous mapping to release when the file was read into memory.
    private let anonymous: (UnsafeMutableRawPointer, Int)?
    /// True when the bytes are a private in-memory copy rather than a file mapping.
    public let isResident: Bool
    /// The remote file whose fetched bytes this buffer holds; nil for a local file.
    public let remote: RemoteBytes?

    /// Maps `path` read-only. An empty file is valid and maps to an empty buffer.
    /// `resident`: read the whole file into private memory backed by 2 MiB pages instead
    /// (faster scattered lookups for tables that fit in RAM: fewer TLB misses, no
    /// page-table faults; costs the file's size in RAM and the time to read it).
    public init(path: String, resident: Bool = false) throws {
        isResident = resident
        remote = nil
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
            anonymous = nil
        } else if resident {
            let m: (map: UnsafeMutableRawPointer, mapLength: Int, start: UnsafeMutableRawPointer)
            do { m = try Sys.mapAnonymousHuge(length: Int(size), path: path) } catch { throw FolioError.system(error) }
            do {
                var done = 0
                while done < Int(size) {
                    let n = min(Int(size) - done, 64 << 20)
                    try Sys.preadFully(fd, m.start + done, count: n, offset: UInt64(done), path: path)
                    done += n
                }
            } catch {
                Sys.unmap(m.map, length: m.mapLength)
                throw FolioError.system(error)
            }
            Sys.collapseHuge(m.start, length: Int(size))
            Sys.protectReadOnly(m.start, length: Int(size))
            base = m.start
            anonymous = (m.map, m.mapLength)
        } else {
            do { base = try Sys.mapReadOnly(fd, length: Int(size), path: path) } catch { throw FolioError.system(error) }
            anonymous = nil
        }
    }

    /// The buffer of a remote file (bytes present once `ensure`d).
    public init(remote: RemoteBytes) {
        self.remote = remote
        path = remote.display
        size = remote.size
        base = remote.base
        anonymous = nil
        isResident = false
    }

    /// Opens a local path, or an http(s) URL as a remote file.
    public convenience init(location: String) throws {
        if RemoteLocation.isURL(location) { self.init(remote: try RemoteBytes(url: location)) } else { try self.init(path: location) }
    }

    /// Makes bytes [offset, offset + count) readable: fetches them for a remote file.
    @inline(__always)
    public func ensure(offset: Int, count: Int) throws {
        if let remote { try remote.ensure(offset..<(offset + count)) }
    }

    /// Makes several byte ranges readable, fetched together (in parallel) when remote.
    public func ensure(_ ranges: [Range<Int>]) throws {
        if let remote { try remote.ensure(ranges) }
    }

    deinit {
        if remote != nil { return }  // The remote file owns its buffer.
        if let (p, n) = anonymous { Sys.unmap(p, length: n) } else if let base { Sys.unmap(base, length: size) }
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
        if let remote {
            // Over a remote file: "will need" starts the fetch, "done with" drops the bytes.
            switch advice {
            case .willNeed: remote.prefetch([start..<end])
            case .dontNeed: remote.release(start..<end)
            default: break
            }
            return
        }
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
        case .hugePages: sysAdvice = .hugePages
        case .populate: sysAdvice = .populateRead
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
    /// Map with 2 MiB pages where the page cache holds such folios (fewer TLB misses and
    /// faults on scattered lookups).
    case hugePages
    /// Read the pages and map them now (page-table faults paid up front, not on lookups).
    case populate
}
