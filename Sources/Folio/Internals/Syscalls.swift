#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An operating-system error: the call that failed, the path it concerned and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String
    public let errno: Int32

    public var description: String {
        let reason = String(cString: strerror(errno))
        return "\(path): \(call) failed: \(reason) (errno \(errno))"
    }

    /// True when the failure means the device is out of space.
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
}

/// Thin wrappers over the libc calls Folio uses. Nothing else in the package calls libc
/// for files, so every failure carries errno and the path.
enum Sys {
    static func openRead(_ path: String) throws(SystemError) -> Int32 {
        let fd = retryEINTR { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw SystemError(call: "open", path: path, errno: errno) }
        return fd
    }

    /// Creates a new file exclusively (fails if it exists), mode 0644.
    static func createExclusive(_ path: String) throws(SystemError) -> Int32 {
        let fd = retryEINTR { Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
        if fd < 0 { throw SystemError(call: "open", path: path, errno: errno) }
        return fd
    }

    static func openDirectory(_ path: String) throws(SystemError) -> Int32 {
        let fd = retryEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { throw SystemError(call: "open", path: path, errno: errno) }
        return fd
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Size of an open file; also rejects anything that is not a regular file.
    static func regularFileSize(_ fd: Int32, path: String) throws(SystemError) -> UInt64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw SystemError(call: "fstat", path: path, errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw SystemError(call: "open", path: path, errno: EISDIR) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw SystemError(call: "open", path: path, errno: EINVAL) }
        return UInt64(st.st_size)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    static func mapReadOnly(_ fd: Int32, length: Int, path: String) throws(SystemError) -> UnsafeMutableRawPointer {
        let p = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else { throw SystemError(call: "mmap", path: path, errno: errno) }
        return p
    }

    /// Anonymous private memory of `length` bytes starting on a 2 MiB boundary (so that
    /// transparent huge pages can back it), asked to use huge pages. Returns the mapping
    /// to unmap (start and length) and the aligned start.
    static func mapAnonymousHuge(length: Int, path: String) throws(SystemError) -> (map: UnsafeMutableRawPointer, mapLength: Int, start: UnsafeMutableRawPointer) {
        let huge = 2 << 20
        let total = length + huge
        let p = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { throw SystemError(call: "mmap", path: path, errno: errno) }
        let aligned = (Int(bitPattern: p) + huge - 1) & ~(huge - 1)
        let start = UnsafeMutableRawPointer(bitPattern: aligned)!
        _ = madvise(start, length, 14)  // MADV_HUGEPAGE
        return (p, total, start)
    }

    /// Asks the kernel to back [p, p + length) with 2 MiB pages now (MADV_COLLAPSE, Linux 6.1):
    /// MADV_HUGEPAGE alone falls back to 4 KiB pages whenever no free 2 MiB block is at hand
    /// at fault time. Best effort: older kernels and a lack of free blocks leave it as it is.
    static func collapseHuge(_ p: UnsafeMutableRawPointer, length: Int) {
        _ = madvise(p, length, 25)  // MADV_COLLAPSE
    }

    /// AnonHugePages of /proc/self/smaps_rollup in bytes (nil where it cannot be read).
    static func anonHugePageBytes() -> Int? {
        guard let f = fopen("/proc/self/smaps_rollup", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("AnonHugePages:") {
                let kb = s.dropFirst("AnonHugePages:".count).split(separator: " ").first.flatMap { Int($0) }
                return kb.map { $0 * 1024 }
            }
        }
        return nil
    }

    static func protectReadOnly(_ p: UnsafeMutableRawPointer, length: Int) {
        _ = mprotect(p, length, PROT_READ)
    }

    static func unmap(_ p: UnsafeMutableRawPointer, length: Int) {
        _ = munmap(p, length)
    }

    enum Advice {
        case normal, random, sequential, willNeed, dontNeed, hugePages, populateRead
        var raw: Int32 {
            switch self {
            case .hugePages: return 14  // MADV_HUGEPAGE
            case .populateRead: return 22  // MADV_POPULATE_READ (Linux 5.14)
            case .normal: return MADV_NORMAL
            case .random: return MADV_RANDOM
            case .sequential: return MADV_SEQUENTIAL
            case .willNeed: return MADV_WILLNEED
            case .dontNeed: return MADV_DONTNEED
            }
        }
    }

    /// Advice is a hint: failures are ignored on purpose. Populating falls back to reading
    /// one byte per page where the kernel lacks MADV_POPULATE_READ.
    static func advise(_ p: UnsafeMutableRawPointer, length: Int, _ advice: Advice) {
        let rc = madvise(p, length, advice.raw)
        if rc != 0, advice == .populateRead {
            var sum: UInt8 = 0
            var i = 0
            while i < length { sum &+= p.load(fromByteOffset: i, as: UInt8.self); i += pageSize }
            withExtendedLifetime(sum) {}
        }
    }

    /// Reads exactly `count` bytes at `offset`, or throws (short file is EIO-like: reported as such).
    static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, count: Int, offset: UInt64, path: String) throws(SystemError) {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "pread", path: path, errno: errno)
            }
            if n == 0 { throw SystemError(call: "pread", path: path, errno: EIO) }
            done += n
        }
    }

    static func writeFully(_ fd: Int32, _ buffer: UnsafeRawPointer, count: Int, path: String) throws(SystemError) {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, buffer + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "write", path: path, errno: errno)
            }
            done += n
        }
    }

    /// Writes all of `count` bytes at `offset` without moving the file position.
    static func pwriteFully(_ fd: Int32, _ buffer: UnsafeRawPointer, count: Int, offset: Int, path: String) throws(SystemError) {
        var done = 0
        while done < count {
            let n = Glibc.pwrite(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "pwrite", path: path, errno: errno)
            }
            done += n
        }
    }

    static func fsync(_ fd: Int32, path: String) throws(SystemError) {
        if retryEINTR({ Glibc.fsync(fd) }) != 0 { throw SystemError(call: "fsync", path: path, errno: errno) }
    }

    static func rename(_ from: String, _ to: String) throws(SystemError) {
        if Glibc.rename(from, to) != 0 { throw SystemError(call: "rename", path: to, errno: errno) }
    }

    static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    static func processID() -> Int32 { getpid() }

    static var physicalMemoryBytes: Int { Int(sysconf(Int32(_SC_PHYS_PAGES))) * pageSize }

    /// Page faults and peak resident set of this process so far (getrusage).
    static func resourceUsage() -> (minorFaults: Int, majorFaults: Int, peakRSSBytes: Int) {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return (Int(u.ru_minflt), Int(u.ru_majflt), Int(u.ru_maxrss) * 1024)
    }

    /// Asks the kernel to drop a file's clean pages from the page cache (posix_fadvise
    /// DONTNEED), for cold-cache measurements. Pages mapped by a process stay.
    static func dropCachedPages(_ path: String) throws(SystemError) {
        let fd = try openRead(path)
        defer { close(fd) }
        let rc = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        if rc != 0 { throw SystemError(call: "posix_fadvise", path: path, errno: rc) }
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func retryEINTR(_ body: () -> Int32) -> Int32 {
        while true {
            let r = body()
            if r < 0 && errno == EINTR { continue }
            return r
        }
    }
}

/// Temporary files to delete if the process is interrupted (SIGINT, SIGTERM, SIGHUP).
/// The signal handler only calls unlink(2), which is async-signal-safe, on paths stored as
/// C strings in fixed slots.
enum InterruptCleanup {
    /// Enough for the shards of a large sharded conversion; a path beyond it is not removed.
    static let slotCount = 1024
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: slotCount)
        p.initialize(repeating: nil, count: slotCount)
        return p
    }()
    nonisolated(unsafe) static var installed = false
    static let lock = NSLockLike()

    static func register(_ path: String) -> Int? {
        lock.withLock {
            if !installed {
                installed = true
                for sig in [SIGINT, SIGTERM, SIGHUP] {
                    signal(sig) { s in
                        for i in 0..<InterruptCleanup.slotCount {
                            if let p = InterruptCleanup.slots[i] { _ = Glibc.unlink(p) }
                        }
                        signal(s, SIG_DFL)
                        raise(s)
                    }
                }
            }
            for i in 0..<slotCount where slots[i] == nil {
                slots[i] = strdup(path)
                return i
            }
            return nil
        }
    }

    static func unregister(_ slot: Int?) {
        guard let slot else { return }
        lock.withLock {
            let p = slots[slot]
            slots[slot] = nil
            free(p)
        }
    }
}

/// A pthread mutex (Foundation-free).
final class NSLockLike: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

extension Sys {
    static func randomSuffix() -> String {
        let v = UInt64.random(in: 0...UInt64(UInt32.max))
        return String(v, radix: 36)
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    static func basename(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

extension Sys {
    enum Code { case notFound, isDirectory }
    static func error(_ call: String, _ path: String, _ code: Code) -> SystemError {
        switch code {
        case .notFound: return SystemError(call: call, path: path, errno: ENOENT)
        case .isDirectory: return SystemError(call: call, path: path, errno: EISDIR)
        }
    }
}

extension Sys {
    /// Names in a directory, without "." and "..".
    static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError(call: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

extension Sys {
    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) != 0 }
    static func exit(_ code: Int32) -> Never { Glibc.exit(code) }
}

extension Sys {
    /// The system's memory page size (madvise ranges must start on one).
    static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))
}

extension Sys {
    static var processorCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

extension Sys {
    /// Creates a directory (mode 0755); an existing directory is fine.
    static func makeDirectory(_ path: String) throws(SystemError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw SystemError(call: "mkdir", path: path, errno: errno) }
    }
}

extension Sys {
    /// O_TMPFILE (Linux): `__O_TMPFILE | O_DIRECTORY`; Glibc's macro does not import.
    static let oTmpFile: Int32 = 0o20000000 | O_DIRECTORY

    /// An unnamed file in `dir`, or nil when the file system does not support O_TMPFILE.
    static func createUnnamed(inDirectory dir: String) -> Int32? {
        #if os(Linux)
        let fd = Glibc.open(dir, oTmpFile | O_WRONLY | O_CLOEXEC, 0o644)
        return fd >= 0 ? fd : nil
        #else
        return nil
        #endif
    }

    /// Links an O_TMPFILE file into the file system under `path`.
    static func linkUnnamed(_ fd: Int32, to path: String) throws(SystemError) {
        if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0 {
            throw SystemError(call: "linkat", path: path, errno: errno)
        }
    }
}

/// A file truncated or replaced under a live mapping makes the next access to a vanished page
/// raise SIGBUS. Nothing can be recovered then; the handler turns the crash into one clear
/// line and exit status 1 instead of a signal death.
enum MappedFileFaults {
    nonisolated(unsafe) static var installed = false
    static let message: StaticString = "folio: error: a memory-mapped file was truncated or changed by another process while in use (SIGBUS); re-run once it is complete\n"

    static func install() {
        guard !installed else { return }
        installed = true
        signal(SIGBUS) { _ in
            let m = MappedFileFaults.message
            _ = Glibc.write(2, m.utf8Start, m.utf8CodeUnitCount)
            _exit(1)
        }
    }
}

extension Sys {
    /// Anonymous private read-write memory of `length` bytes that reserves no swap or RAM
    /// until touched (MAP_NORESERVE): the sparse buffer that remote bytes are fetched into.
    static func mapAnonymousSparse(length: Int, path: String) throws(SystemError) -> UnsafeMutableRawPointer {
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw SystemError(call: "mmap", path: path, errno: errno) }
        return p
    }

    /// The value of an environment variable, nil when unset.
    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    /// Size in bytes and modification time (seconds, fractional) of a regular file, nil when
    /// it is missing or not a regular file.
    static func sizeAndModificationTime(_ path: String) -> (size: Int, mtime: Double)? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return (Int(st.st_size), Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9)
    }

    /// Sets a file's access and modification times to now (best effort: the LRU clock of
    /// the remote-chunk cache).
    static func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Sleeps for `seconds` (retry backoff).
    static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}
