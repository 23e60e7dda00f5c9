/// A file written in a stream and published atomically. Until `commit` the destination is
/// untouched.
///
/// Where the file system allows it (Linux O_TMPFILE: ext4, xfs, btrfs, tmpfs) the bytes go to
/// an unnamed file in the destination's directory, so that nothing is visible while writing
/// and a process killed even by SIGKILL leaves nothing behind; `commit` fsyncs it, links it
/// under a temporary name and renames that over the destination. Elsewhere a named temporary
/// file beside the destination is used, removed on error, on `abort`, on deinit without
/// commit and on SIGINT/SIGTERM/SIGHUP.
public final class AtomicOutput {
    public let destination: String
    let tempPath: String
    /// True while the data lives in an unnamed (O_TMPFILE) file.
    private var unnamed: Bool
    private var fd: Int32
    private var slot: Int?
    private var buffer: UnsafeMutableRawPointer
    private let capacity = 4 << 20
    private var used = 0
    /// Bytes written so far (including buffered ones).
    public private(set) var position = 0
    private var done = false

    public init(destination: String) throws {
        self.destination = destination
        let dir = Sys.dirname(destination)
        guard Sys.isDirectory(dir) else {
            throw FolioError.system(Sys.error("open", dir, .notFound))
        }
        if Sys.isDirectory(destination) {
            throw FolioError.system(Sys.error("open", destination, .isDirectory))
        }
        tempPath = dir + "/." + Sys.basename(destination) + ".tmp-\(Sys.processID())-" + Sys.randomSuffix()
        if let f = Sys.createUnnamed(inDirectory: dir) {
            fd = f
            unnamed = true
        } else {
            unnamed = false
            slot = InterruptCleanup.register(tempPath)
            do { fd = try Sys.createExclusive(tempPath) } catch {
                InterruptCleanup.unregister(slot)
                throw FolioError.system(error)
            }
        }
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        if !done { abort() }
        buffer.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= capacity {
            // Large pieces go straight to the file instead of through the buffer.
            try flush()
            do { try Sys.writeFully(fd, bytes.baseAddress!, count: bytes.count, path: tempPath) } catch {
                abort()
                throw FolioError.system(error.isNoSpace ? SystemError(call: "write", path: destination, errno: error.errno) : error)
            }
            position += bytes.count
            return
        }
        var src = bytes
        while !src.isEmpty {
            let n = min(src.count, capacity - used)
            (buffer + used).copyMemory(from: src.baseAddress!, byteCount: n)
            used += n
            position += n
            src = UnsafeRawBufferPointer(rebasing: src[n...])
            if used == capacity { try flush() }
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { b throws in try write(b) }
    }

    public func writeZeros(_ count: Int) throws {
        var left = count
        while left > 0 {
            let n = min(left, capacity - used)
            (buffer + used).initializeMemory(as: UInt8.self, repeating: 0, count: n)
            used += n
            position += n
            left -= n
            if used == capacity { try flush() }
        }
    }

    private func flush() throws {
        guard used > 0 else { return }
        do { try Sys.writeFully(fd, buffer, count: used, path: tempPath) } catch {
            abort()
            if error.isNoSpace {
                throw FolioError.system(SystemError(call: "write", path: destination, errno: error.errno))
            }
            throw FolioError.system(error)
        }
        used = 0
    }

    /// Rewrites bytes already written at `offset` (for a header that is known only after
    /// the data, as in compressed files).
    public func overwrite(at offset: Int, _ bytes: [UInt8]) throws {
        precondition(offset >= 0 && offset + bytes.count <= position, "overwrite beyond the written bytes")
        try flush()
        let failure = bytes.withUnsafeBytes { b -> SystemError? in
            do throws(SystemError) { try Sys.pwriteFully(fd, b.baseAddress!, count: b.count, offset: offset, path: tempPath); return nil } catch { return error }
        }
        if let failure {
            abort()
            throw FolioError.system(failure)
        }
    }

    /// Flushes, fsyncs, renames over the destination and fsyncs the directory.
    public func commit() throws {
        guard !done else { return }
        try flush()
        do {
            try Sys.fsync(fd, path: tempPath)
            if unnamed {
                // Give the unnamed file a (hidden) name only now, for the rename.
                slot = InterruptCleanup.register(tempPath)
                try Sys.linkUnnamed(fd, to: tempPath)
                unnamed = false
            }
            Sys.close(fd)
            fd = -1
            try Sys.rename(tempPath, destination)
        } catch {
            abort()
            throw FolioError.system(error)
        }
        done = true
        InterruptCleanup.unregister(slot)
        if let dfd = try? Sys.openDirectory(Sys.dirname(destination)) {
            try? Sys.fsync(dfd, path: Sys.dirname(destination))
            Sys.close(dfd)
        }
    }

    /// Removes the temporary file; the destination stays as it was.
    public func abort() {
        guard !done else { return }
        done = true
        if fd >= 0 { Sys.close(fd); fd = -1 }
        if !unnamed { Sys.unlink(tempPath) }
        InterruptCleanup.unregister(slot)
    }
}
