/// The few file-system queries the tools above the storage layer need, so that they never
/// call libc themselves.
public enum FileSystem {
    public static func isDirectory(_ path: String) -> Bool { Sys.isDirectory(path) }

    public static func exists(_ path: String) -> Bool { Sys.exists(path) }

    /// Sorted entry names of a directory.
    public static func list(_ path: String) throws -> [String] {
        do { return try Sys.listDirectory(path) } catch { throw FolioError.system(error) }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int = 256 << 20) throws -> [UInt8] {
        let fd: Int32
        do { fd = try Sys.openRead(path) } catch { throw FolioError.system(error) }
        defer { Sys.close(fd) }
        let size: UInt64
        do { size = try Sys.regularFileSize(fd, path: path) } catch { throw FolioError.system(error) }
        guard size <= UInt64(limit) else {
            throw FolioError.malformed(file: path, reason: "file is \(size) bytes, more than the \(limit)-byte limit for this kind of file")
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        if size > 0 {
            do {
                try bytes.withUnsafeMutableBytes { b in try Sys.preadFully(fd, b.baseAddress!, count: b.count, offset: 0, path: path) }
            } catch let e as SystemError { throw FolioError.system(e) }
        }
        return bytes
    }

    /// Size of a regular file.
    public static func size(_ path: String) throws -> Int {
        let fd: Int32
        do { fd = try Sys.openRead(path) } catch { throw FolioError.system(error) }
        defer { Sys.close(fd) }
        do { return Int(try Sys.regularFileSize(fd, path: path)) } catch { throw FolioError.system(error) }
    }

    /// Creates a directory and its missing parents.
    public static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if !Sys.isDirectory(prefix) {
                do { try Sys.makeDirectory(prefix) } catch { throw FolioError.system(error) }
            }
        }
    }

    /// Writes a small file atomically.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let out = try AtomicOutput(destination: path)
        try out.write(bytes)
        try out.commit()
    }

    /// Calls `body` with a function that marks a finished file as provisional: until `body`
    /// returns, the file is removed if the process is interrupted (SIGINT, SIGTERM, SIGHUP).
    /// For outputs made of several files that are only valid together (shards and the index
    /// written after them), so that Ctrl-C does not leave some of them behind.
    public static func withProvisionalFiles<R>(_ body: (_ mark: (String) -> Void) throws -> R) rethrows -> R {
        var slots: [Int?] = []
        defer { for s in slots { InterruptCleanup.unregister(s) } }
        return try body { slots.append(InterruptCleanup.register($0)) }
    }

    /// Seconds from an arbitrary fixed point, for timing.
    public static func monotonicSeconds() -> Double { Sys.monotonicSeconds() }

    /// Bytes of physical memory of the machine.
    public static var physicalMemoryBytes: Int { Sys.physicalMemoryBytes }

    /// Page faults and peak resident set of this process so far.
    public static func resourceUsage() -> (minorFaults: Int, majorFaults: Int, peakRSSBytes: Int) { Sys.resourceUsage() }

    /// Bytes of this process's anonymous memory backed by 2 MiB pages (nil if unknown).
    public static func anonHugePageBytes() -> Int? { Sys.anonHugePageBytes() }

    /// Drops a file's clean, unmapped pages from the page cache (for cold-cache benchmarks).
    public static func dropCachedPages(_ path: String) throws { try Sys.dropCachedPages(path) }

    /// Makes a SIGBUS (a mapped file truncated by another process while in use) end the
    /// process with one clear line and exit status 1. For command-line tools.
    public static func installMappedFileFaultHandler() { MappedFileFaults.install() }

    /// Processors available to this process.
    public static var processorCount: Int { Sys.processorCount }

    /// Removes a file, ignoring errors (cleanup).
    public static func remove(_ path: String) { Sys.unlink(path) }

    /// Whether standard error is a terminal (progress bars appear only then).
    public static var stderrIsTerminal: Bool { Sys.isTerminal(2) }

    /// Writes text to standard error, unbuffered.
    public static func writeStderr(_ text: String) {
        var t = text
        t.withUTF8 { b in try? Sys.writeFully(2, b.baseAddress!, count: b.count, path: "<stderr>") }
    }

    /// Terminates the process immediately with `code`.
    public static func exitProcess(_ code: Int32) -> Never { Sys.exit(code) }
}
