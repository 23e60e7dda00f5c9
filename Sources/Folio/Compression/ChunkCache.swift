/// Decompressed bytes of one chunk, freed when the last user lets go (so eviction never
/// pulls bytes from under a reader).
final class ChunkBuffer: @unchecked Sendable {
    // @unchecked: written once before it is shared, then only read.
    let base: UnsafeMutableRawPointer
    let count: Int

    init(count: Int) {
        self.count = count
        base = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A bounded, thread-safe least-recently-used cache of decompressed chunks.
public final class ChunkCache: @unchecked Sendable {
    // @unchecked: all mutable state is touched under `lock`.
    struct Key: Hashable {
        let tensorOffset: Int
        let chunk: Int
    }

    /// Upper bound on the decompressed bytes kept.
    public let capacity: Int
    private let lock = NSLockLike()
    private var entries: [Key: (buffer: ChunkBuffer, tick: UInt64)] = [:]
    private var tick: UInt64 = 0
    private var used = 0
    private var counters = (hits: 0, misses: 0)

    public init(capacity: Int) { self.capacity = max(0, capacity) }

    func lookup(_ key: Key) -> ChunkBuffer? {
        lock.withLock {
            tick &+= 1
            guard let e = entries[key] else { counters.misses += 1; return nil }
            counters.hits += 1
            entries[key] = (e.buffer, tick)
            return e.buffer
        }
    }

    /// Keeps `buffer` unless it alone exceeds the capacity, evicting the least recently used
    /// chunks until the total fits.
    func insert(_ key: Key, _ buffer: ChunkBuffer) {
        guard buffer.count <= capacity else { return }
        lock.withLock {
            tick &+= 1
            if let old = entries[key] { used -= old.buffer.count }
            entries[key] = (buffer, tick)
            used += buffer.count
            while used > capacity, let victim = entries.min(by: { $0.value.tick < $1.value.tick }) {
                entries[victim.key] = nil
                used -= victim.value.buffer.count
            }
        }
    }

    /// Decompressed bytes held now (at most `capacity`).
    public var bytesHeld: Int { lock.withLock { used } }
    /// Lookups served from the cache and lookups that had to decompress.
    public var hitsAndMisses: (hits: Int, misses: Int) { lock.withLock { counters } }

    /// Drops every cached chunk.
    public func removeAll() { lock.withLock { entries = [:]; used = 0 } }
}
