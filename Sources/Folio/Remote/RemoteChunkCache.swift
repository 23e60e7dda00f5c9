/// Fetched pieces of remote files on local disk: one folder per version of a remote file
/// (URL without query, size and validators hashed into its name), one file per piece
/// holding the bytes and their XXH3-64, so a damaged or truncated cache file is noticed and
/// fetched again. Safe under concurrent processes: a piece is written under a private name
/// and renamed into place; a reader that loses a race to eviction simply misses. The
/// total is bounded: past the limit the least recently used pieces (by modification time,
/// refreshed on every hit) are removed.
final class RemoteChunkCache: @unchecked Sendable {
    // @unchecked: the counters are touched under `lock`; the files are the shared state.
    let root: String
    let folder: String
    let limit: Int
    private let lock = NSLockLike()
    private var writtenSinceScan = 0
    private var scanned = false

    init?(root: String, limit: Int, key: String) {
        self.root = root
        self.limit = max(1 << 20, limit)
        folder = root + "/" + hex(Checksum.xxh3(Array(key.utf8)))
        do {
            try FileSystem.makeDirectories(folder)
        } catch {
            return nil  // An unwritable cache folder means no cache, not a failure.
        }
    }

    /// The piece `name` when present, `count` bytes long and intact; a damaged one is removed.
    func load(_ name: String, count: Int) -> [UInt8]? {
        let path = folder + "/" + name
        guard let info = Sys.sizeAndModificationTime(path), info.size == count + 8 else {
            if Sys.exists(path) { Sys.unlink(path) }
            return nil
        }
        guard let bytes = try? FileSystem.read(path, limit: count + 8), bytes.count == count + 8 else { return nil }
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: count, as: UInt64.self).littleEndian }
        let payload = Array(bytes[0..<count])
        guard Checksum.xxh3(payload) == stored else {
            Sys.unlink(path)
            return nil
        }
        Sys.touch(path)
        return payload
    }

    /// Stores a piece (best effort: a full disk or a lost race only costs a later refetch).
    func store(_ name: String, _ bytes: UnsafeRawBufferPointer) {
        let path = folder + "/" + name
        let temporary = folder + "/.tmp-\(Sys.processID())-\(Sys.randomSuffix())-" + name
        guard let fd = try? Sys.createExclusive(temporary) else { return }
        var hash = Checksum.xxh3(bytes).littleEndian
        let ok: Bool
        do {
            if let b = bytes.baseAddress, bytes.count > 0 { try Sys.writeFully(fd, b, count: bytes.count, path: temporary) }
            try withUnsafeBytes(of: &hash) { try Sys.writeFully(fd, $0.baseAddress!, count: 8, path: temporary) }
            ok = true
        } catch {
            ok = false
        }
        Sys.close(fd)
        guard ok, (try? Sys.rename(temporary, path)) != nil else { Sys.unlink(temporary); return }
        let scan: Bool = lock.withLock {
            writtenSinceScan += bytes.count + 8
            if !scanned || writtenSinceScan >= limit / 16 { scanned = true; writtenSinceScan = 0; return true }
            return false
        }
        if scan { evict() }
    }

    func remove(_ name: String) { Sys.unlink(folder + "/" + name) }

    /// Removes the least recently used pieces of every cached file until the total is at
    /// most 90 % of the limit.
    func evict() {
        var pieces: [(path: String, size: Int, mtime: Double)] = []
        var total = 0
        for dir in (try? Sys.listDirectory(root)) ?? [] {
            let d = root + "/" + dir
            guard Sys.isDirectory(d) else { continue }
            for name in (try? Sys.listDirectory(d)) ?? [] {
                let p = d + "/" + name
                guard let info = Sys.sizeAndModificationTime(p) else { continue }
                pieces.append((p, info.size, info.mtime))
                total += info.size
            }
        }
        guard total > limit else { return }
        pieces.sort { $0.mtime < $1.mtime }
        for p in pieces where total > limit / 10 * 9 {
            Sys.unlink(p.path)
            total -= p.size
        }
    }
}
