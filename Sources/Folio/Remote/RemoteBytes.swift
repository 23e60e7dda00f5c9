import Dispatch
import Foundation

/// The bytes of a remote file, fetched on demand into a sparse private buffer of the file's
/// size, so that everything above reads them exactly as it reads a mapping.
///
/// Two kinds of bytes: *raw* ranges, fetched exactly as asked and checked by their reader
/// (a header by its own hash, the chunk table by `table_hash`); and *units* of one region
/// (a Folio file's data chunks), fetched whole and used only once `verify` accepts them.
/// Units are fetched outside the lock, so a prefetch on another thread overlaps the
/// caller's work; a caller that needs a unit another thread is fetching waits for it.
/// Fetched units are kept in a bounded on-disk cache shared by processes.
public final class RemoteBytes: @unchecked Sendable {
    // @unchecked: the buffer's bytes are written once per unit, before the unit is marked
    // present under `state`; every other mutable field is touched under `state`.
    /// The URL as shown in messages (without its query).
    public let display: String
    public let size: Int
    let client: HTTPRangeClient
    let base: UnsafeMutableRawPointer?
    private let state = NSCondition()
    private var raw: [Range<Int>] = []
    /// The raw ranges as fetched or read from the cache (the cache's keys); `raw` merges them.
    private var rawPieces: [Range<Int>] = []
    private var region: Region?
    /// Per unit of the region: verified and in the buffer; being fetched by some thread.
    private var present: [Bool] = []
    private var inflight: [Bool] = []
    private let cache: RemoteChunkCache?
    private var streams: [(end: Int, streak: Int)] = []

    /// How many bytes the first request asks for: the preamble, and the header of any file
    /// of up to a few thousand tensors, in one request.
    public static let openingBytes = 256 << 10
    /// The longest single request (neighbouring units are coalesced up to this).
    static let maxRequestBytes = 16 << 20
    /// Raw pieces up to this long are kept in the cache (the tail, a long header's rest).
    static let cachedRawBytes = 1 << 20
    /// Sequential reads ahead of a streaming reader.
    static let readaheadBytes = 64 << 20

    struct Region {
        let start: Int
        let end: Int
        let unit: Int
        let count: Int
        let verify: @Sendable (Int, UnsafeRawBufferPointer) throws -> Bool
        let unitName: String

        func range(_ u: Int) -> Range<Int> { (start + u * unit)..<min(end, start + (u + 1) * unit) }
    }

    /// Opens `url` with one request for its first `openingBytes` bytes (the whole file when
    /// shorter), which also gives its size and validators.
    public init(url: String, settings: RemoteSettings = .fromEnvironment(), openingBytes: Int = RemoteBytes.openingBytes) throws {
        let client = HTTPRangeClient(url: url, settings: settings)
        self.client = client
        let display = client.display
        self.display = display
        let head = try client.openingRead(openingBytes)
        guard let id = client.knownIdentity else { throw FolioError.remote(url: display, reason: "no usable response") }
        let size = id.size
        self.size = size
        guard size <= Int.max / 2 else { throw FolioError.remote(url: display, reason: "file of \(size) bytes is too large") }
        if size > 0 {
            let b: UnsafeMutableRawPointer
            do { b = try Sys.mapAnonymousSparse(length: size, path: display) } catch { throw FolioError.system(error) }
            head.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: head.count) }
            base = b
            raw = [0..<head.count]
        } else {
            base = nil
        }
        let key = "\(display)\n\(id.size)\n\(id.etag ?? "")\n\(id.lastModified ?? "")"
        cache = (id.etag != nil || id.lastModified != nil) ? settings.cacheDirectory.flatMap {
            RemoteChunkCache(root: $0, limit: settings.cacheLimit, key: key)
        } : nil
    }

    deinit {
        if let base { Sys.unmap(base, length: size) }
    }

    /// The whole of a small remote file (an index, a config): `limit` bounds its size.
    public static func readWhole(url: String, limit: Int) throws -> [UInt8] {
        let r = try RemoteBytes(url: url, openingBytes: min(limit, openingBytes))
        guard r.size <= limit else {
            throw FolioError.malformed(file: r.display, reason: "file is \(r.size) bytes, more than the \(limit)-byte limit for this kind of file")
        }
        try r.ensureRaw([0..<r.size])
        return Array(UnsafeRawBufferPointer(start: r.base, count: r.size))
    }

    /// Requests made (every attempt counts) and body bytes received so far.
    public var requestCounters: (requests: Int, bytes: Int) { client.counters }

    /// Declares `[start, end)` a region of units of `unit` bytes, each used only once `verify`
    /// (unit index, its bytes) accepts it. Raw bytes already fetched inside it are checked
    /// now and kept when they pass (a small file is then whole after its first request).
    public func setRegion(start: Int, end: Int, unit: Int, unitName: String, verify: @escaping @Sendable (Int, UnsafeRawBufferPointer) throws -> Bool) throws {
        precondition(unit > 0 && start >= 0 && end <= size && start <= end)
        let count = (end - start + unit - 1) / unit
        let r = Region(start: start, end: end, unit: unit, count: count, verify: verify, unitName: unitName)
        var have = Array(repeating: false, count: count)
        let covered = state.withLock { raw }
        for span in covered {
            let lo = max(0, (span.lowerBound - start + unit - 1) / unit)
            var u = lo
            while u < count, r.range(u).upperBound <= span.upperBound, r.range(u).lowerBound >= span.lowerBound {
                let range = r.range(u)
                if try verify(u, UnsafeRawBufferPointer(start: base! + range.lowerBound, count: range.count)) { have[u] = true }
                u += 1
            }
        }
        state.withLock {
            region = r
            present = have
            inflight = Array(repeating: false, count: count)
        }
    }

    // MARK: Fetching

    /// Makes the bytes of `ranges` present: raw ranges exactly, units whole and verified.
    public func ensure(_ ranges: [Range<Int>]) throws { try ensure(ranges, wait: true) }

    /// `wait` false (a prefetch): units another thread is fetching are left to it.
    private func ensure(_ ranges: [Range<Int>], wait: Bool) throws {
        var rawParts: [Range<Int>] = []
        var units: [Int] = []
        let r = state.withLock { region }
        for range in ranges where !range.isEmpty {
            let lo = max(0, range.lowerBound), hi = min(size, range.upperBound)
            guard lo < hi else { continue }
            guard let r else { rawParts.append(lo..<hi); continue }
            if lo < r.start { rawParts.append(lo..<min(hi, r.start)) }
            if hi > r.end { rawParts.append(max(lo, r.end)..<hi) }
            let a = max(lo, r.start), b = min(hi, r.end)
            if a < b { units.append(contentsOf: ((a - r.start) / r.unit)...((b - 1 - r.start) / r.unit)) }
        }
        if !rawParts.isEmpty { try ensureRaw(rawParts) }
        if !units.isEmpty { try ensureUnits(units, wait: wait) }
    }

    public func ensure(_ range: Range<Int>) throws { try ensure([range], wait: true) }

    /// Starts fetching `ranges` on another thread; errors are left to the reader that
    /// needs the bytes (it fetches again and reports).
    public func prefetch(_ ranges: [Range<Int>]) {
        guard !ranges.isEmpty else { return }
        DispatchQueue.global().async { [self] in try? ensure(ranges, wait: false) }
    }

    /// Fetches raw ranges not yet present (no check: their reader checks them).
    public func ensureRaw(_ ranges: [Range<Int>]) throws {
        var missing: [Range<Int>] = []
        state.withLock {
            for range in ranges { missing.append(contentsOf: Self.subtract(range, raw)) }
        }
        guard !missing.isEmpty else { return }
        var pieces: [Range<Int>] = []
        for m in missing {
            var s = m.lowerBound
            while s < m.upperBound {
                let e = min(m.upperBound, s + Self.maxRequestBytes)
                pieces.append(s..<e)
                s = e
            }
        }
        var toFetch: [Range<Int>] = []
        for p in pieces {
            if p.count <= Self.cachedRawBytes, let c = cache?.load(Self.rawKey(p), count: p.count) {
                c.withUnsafeBytes { (base! + p.lowerBound).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            } else {
                toFetch.append(p)
            }
        }
        try client.read(toFetch, into: base!)
        for p in toFetch where p.count <= Self.cachedRawBytes {
            cache?.store(Self.rawKey(p), UnsafeRawBufferPointer(start: base! + p.lowerBound, count: p.count))
        }
        state.withLock {
            for p in pieces { raw = Self.insert(p, raw) }
            rawPieces += pieces
        }
    }

    private static func rawKey(_ piece: Range<Int>) -> String { "r\(piece.lowerBound)-\(piece.count)" }

    /// Forgets raw bytes (after their reader found them damaged), here and in the cache:
    /// every piece overlapping `range`, so that the next read fetches it from the server.
    func invalidateRaw(_ range: Range<Int>) {
        state.withLock {
            for p in rawPieces where p.overlaps(range) { cache?.remove(Self.rawKey(p)) }
            rawPieces.removeAll { $0.overlaps(range) }
            raw = raw.flatMap { Self.subtract($0, [range]) }
        }
    }

    private func ensureUnits(_ wanted: [Int], wait: Bool = true) throws {
        var mine: [Int] = []
        var others: [Int] = []
        let r: Region = state.withLock {
            for u in Set(wanted).sorted() where !present[u] {
                if inflight[u] { others.append(u) } else { inflight[u] = true; mine.append(u) }
            }
            return region!
        }
        if !mine.isEmpty {
            var done: [Int] = []
            defer {
                state.withLock {
                    for u in mine { inflight[u] = false }
                    for u in done { present[u] = true }
                    state.broadcast()
                }
            }
            try fetchUnits(mine, r, done: &done)
        }
        guard !others.isEmpty, wait else { return }
        var orphans: [Int] = []
        state.withLock {
            while true {
                orphans = others.filter { !present[$0] && !inflight[$0] }
                if !orphans.isEmpty || others.allSatisfy({ present[$0] }) { break }
                state.wait()
            }
        }
        // Units whose fetcher failed (a prefetch): fetch them here and report any error.
        if !orphans.isEmpty { try ensureUnits(orphans) }
    }

    /// Fetches units (marked in flight by the caller): cache first, then coalesced range
    /// requests; a unit failing `verify` is fetched again, twice at most.
    private func fetchUnits(_ units: [Int], _ r: Region, done: inout [Int]) throws {
        var need: [Int] = []
        for u in units {
            let range = r.range(u)
            if let c = cache?.load("c\(u)", count: range.count) {
                let ok = try c.withUnsafeBytes { try r.verify(u, $0) }
                if ok {
                    c.withUnsafeBytes { (base! + range.lowerBound).copyMemory(from: $0.baseAddress!, byteCount: range.count) }
                    done.append(u)
                    continue
                }
                cache?.remove("c\(u)")
            }
            need.append(u)
        }
        var attempt = 0
        while !need.isEmpty {
            attempt += 1
            var runs: [[Int]] = []
            for u in need {
                if var last = runs.last, last.last! + 1 == u, (last.count + 1) * r.unit <= Self.maxRequestBytes {
                    last.append(u)
                    runs[runs.count - 1] = last
                } else {
                    runs.append([u])
                }
            }
            let ranges = runs.map { r.range($0.first!).lowerBound..<r.range($0.last!).upperBound }
            // Straight into the buffer: these units are in flight, so nobody reads them yet.
            try client.read(ranges, into: base!)
            var bad: [Int] = []
            for run in runs {
                for u in run {
                    let ur = r.range(u)
                    let slice = UnsafeRawBufferPointer(start: base! + ur.lowerBound, count: ur.count)
                    if try r.verify(u, slice) {
                        cache?.store("c\(u)", slice)
                        done.append(u)
                    } else {
                        bad.append(u)
                    }
                }
            }
            if let u = bad.first, attempt >= 3 {
                let ur = r.range(u)
                throw FolioError.remote(url: display, reason: "\(r.unitName) \(u) (bytes [\(ur.lowerBound), \(ur.upperBound))) failed its XXH3 checksum in \(attempt) responses: the server or the network damages the bytes, or the file on the server is damaged (run `folio verify` on it)")
            }
            need = bad
        }
    }

    // MARK: Streaming and release

    /// Called by a reader streaming forward: once reads have continued each other three
    /// times, the next `readaheadBytes` after each are fetched in the background.
    public func noteSequentialRead(_ range: Range<Int>) {
        let sequential: Bool = state.withLock {
            // Up to eight streams at once (a converter reads several tensors in parallel);
            // three reads that each continue the last make a stream.
            let slack = (region?.unit ?? 0) + 4096
            if let i = streams.firstIndex(where: { abs(range.lowerBound - $0.end) <= slack }) {
                streams[i] = (range.upperBound, streams[i].streak + 1)
                return streams[i].streak >= 2
            }
            if streams.count >= 8 { streams.removeFirst() }
            streams.append((range.upperBound, 0))
            return false
        }
        if sequential, range.upperBound < size, let base {
            let ahead = range.upperBound..<min(size, range.upperBound + max(Self.readaheadBytes, range.count))
            // A stream fills whole 2 MiB pages: one fault each instead of 512 (scattered
            // lookups keep 4 KiB pages, so a row never costs 2 MiB of memory).
            let huge = 2 << 20
            let lo = (ahead.lowerBound + huge - 1) / huge * huge, hi = ahead.upperBound / huge * huge
            if hi > lo { Sys.advise(base + lo, length: hi - lo, .hugePages) }
            prefetch([ahead])
        }
    }

    /// Drops fetched units wholly inside `range` from memory (a streaming reader is done
    /// with them); they are fetched again (or read from the cache) if asked for later.
    /// Must not race with readers of the same units.
    func release(_ range: Range<Int>) {
        state.withLock {
            guard let r = region, let base else { return }
            let page = Sys.pageSize
            let first = max(0, (range.lowerBound - r.start) / r.unit), last = min(r.count, (range.upperBound - r.start) / r.unit + 1)
            guard first < last else { return }
            for u in first..<last where present[u] && !inflight[u] {
                let ur = r.range(u)
                guard ur.lowerBound >= range.lowerBound, ur.upperBound <= range.upperBound else { continue }
                // Only the pages wholly inside the unit: a page shared with a neighbour keeps
                // the neighbour's bytes. The unit is fetched whole again if read again.
                let lo = (ur.lowerBound + page - 1) / page * page, hi = ur.upperBound / page * page
                if hi > lo { Sys.advise(base + lo, length: hi - lo, .dontNeed) }
                present[u] = false
            }
        }
    }

    /// Drops raw bytes from memory (a verifier is done with a window); only whole pages
    /// are dropped, and only they are forgotten.
    func dropRaw(_ range: Range<Int>) {
        guard let base else { return }
        let page = Sys.pageSize
        let lo = (range.lowerBound + page - 1) / page * page, hi = range.upperBound == size ? size : range.upperBound / page * page
        guard lo < hi else { return }
        state.withLock {
            let whole = (hi - lo) / page * page
            if whole > 0 { Sys.advise(base + lo, length: whole, .dontNeed) }
            let dropped = lo..<(lo + whole)
            raw = raw.flatMap { Self.subtract($0, [dropped]) }
        }
    }

    // MARK: Range sets (sorted, disjoint, merged)

    static func subtract(_ range: Range<Int>, _ set: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var s = range.lowerBound
        for p in set where p.upperBound > s && p.lowerBound < range.upperBound {
            if p.lowerBound > s { out.append(s..<p.lowerBound) }
            s = max(s, p.upperBound)
        }
        if s < range.upperBound { out.append(s..<range.upperBound) }
        return out
    }

    static func insert(_ range: Range<Int>, _ set: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var cur = range
        for p in set {
            if p.upperBound < cur.lowerBound { out.append(p) } else if p.lowerBound > cur.upperBound { out.append(p) } else {
                cur = min(p.lowerBound, cur.lowerBound)..<max(p.upperBound, cur.upperBound)
            }
        }
        out.append(cur)
        return out.sorted { $0.lowerBound < $1.lowerBound }
    }
}
