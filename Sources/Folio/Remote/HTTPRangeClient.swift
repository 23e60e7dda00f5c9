import CCurl
import Foundation

/// How remote reads behave; every field has an environment variable so that a user (or a
/// test) can tune it without a flag on every command.
public struct RemoteSettings: Sendable {
    /// Sent as `Authorization: Bearer …` (FOLIO_HTTP_TOKEN, else HF_TOKEN).
    public var bearerToken: String?
    /// Attempts per request before giving up on connection errors, 5xx and short bodies
    /// (FOLIO_HTTP_RETRIES, default 5).
    public var attempts: Int
    /// Seconds without progress after which a request is abandoned and retried
    /// (FOLIO_HTTP_TIMEOUT, default 30); also the connect timeout.
    public var stallTimeout: Double
    /// Requests in flight at once (FOLIO_HTTP_CONNECTIONS, default 16).
    public var connections: Int
    /// Where fetched chunks are kept (FOLIO_CACHE; "off" disables; default
    /// $XDG_CACHE_HOME/folio or ~/.cache/folio), and how many bytes it may hold
    /// (FOLIO_CACHE_SIZE, with an optional K/M/G suffix; default 8G).
    public var cacheDirectory: String?
    public var cacheLimit: Int

    public static func fromEnvironment() -> RemoteSettings {
        func int(_ name: String, _ fallback: Int) -> Int { Sys.environment(name).flatMap { Int($0) }.map { max(1, $0) } ?? fallback }
        let token = Sys.environment("FOLIO_HTTP_TOKEN") ?? Sys.environment("HF_TOKEN")
        let timeout = Sys.environment("FOLIO_HTTP_TIMEOUT").flatMap { Double($0) }.map { max(0.1, $0) } ?? 30
        var dir: String?
        switch Sys.environment("FOLIO_CACHE") {
        case "off"?, "0"?, ""?: dir = nil
        case let d?: dir = d
        case nil:
            if let x = Sys.environment("XDG_CACHE_HOME"), !x.isEmpty { dir = x + "/folio" } else if let h = Sys.environment("HOME"), !h.isEmpty { dir = h + "/.cache/folio" }
        }
        return RemoteSettings(bearerToken: token?.isEmpty == false ? token : nil, attempts: int("FOLIO_HTTP_RETRIES", 5), stallTimeout: timeout,
                              connections: min(int("FOLIO_HTTP_CONNECTIONS", 16), 256), cacheDirectory: dir,
                              cacheLimit: Sys.environment("FOLIO_CACHE_SIZE").flatMap(parseByteCount) ?? (8 << 30))
    }

    static func parseByteCount(_ s: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        guard let last = s.uppercased().last else { return nil }
        if let u = units[last] { return Int(s.dropLast()).map { $0 * u } }
        return Int(s)
    }
}

/// Whether `location` names a remote file (http:// or https://) rather than a local path.
public enum RemoteLocation {
    public static func isURL(_ location: String) -> Bool {
        location.hasPrefix("https://") || location.hasPrefix("http://")
    }

    /// The URL as shown to the user: without the query, which holds the secrets of a
    /// presigned URL.
    public static func display(_ url: String) -> String {
        url.firstIndex(of: "?").map { String(url[..<$0]) } ?? url
    }

    /// `url` with its last path component replaced by `name` (a shard beside its index).
    public static func sibling(of url: String, named name: String) -> String {
        let base = display(url)
        guard let slash = base.lastIndex(of: "/") else { return name }
        let query = url.firstIndex(of: "?").map { String(url[$0...]) } ?? ""
        return String(base[...slash]) + name + query
    }
}

/// What identifies one version of a remote file: every response must agree with the first.
struct RemoteIdentity: Equatable, Sendable {
    var size: Int
    var etag: String?
    var lastModified: String?

    var description: String {
        [etag.map { "ETag \($0)" }, lastModified.map { "Last-Modified \($0)" }, "\(size) bytes"].compactMap { $0 }.joined(separator: ", ")
    }
}

/// Byte-range GETs of one URL over libcurl: parallel requests on kept-alive connections,
/// retries with backoff on connection errors, 5xx and short bodies, a stall timeout, and a
/// check of every response: status 206, the exact range asked for, and the same length and
/// validators (ETag, Last-Modified) as the first response.
final class HTTPRangeClient: @unchecked Sendable {
    // @unchecked: mutable state (multi handles, identity, counters) is touched under `lock`.
    let url: String
    let display: String
    let settings: RemoteSettings
    private let lock = NSLockLike()
    private var multis: [UnsafeMutableRawPointer] = []
    private var identity: RemoteIdentity?
    private var requestCount = 0
    private var bytesReceived = 0

    init(url: String, settings: RemoteSettings) {
        _ = Self.initializeCurl
        self.url = url
        display = RemoteLocation.display(url)
        self.settings = settings
    }

    deinit {
        for m in multis { curl_multi_cleanup(m) }
    }

    private static let initializeCurl: Void = { _ = folio_curl_global_init() }()

    /// Requests made so far (each attempt counts) and body bytes received.
    var counters: (requests: Int, bytes: Int) { lock.withLock { (requestCount, bytesReceived) } }

    /// The file's size and validators, known after the first response.
    var knownIdentity: RemoteIdentity? { lock.withLock { identity } }

    /// The first request: bytes [0, n), fewer when the file is shorter. Learns the file's
    /// size and validators.
    func openingRead(_ n: Int) throws -> [UInt8] {
        let t = Transfer(range: 0..<max(1, n), opening: true, destination: nil)
        try run([t])
        return t.body
    }

    /// Fetches `ranges` (each non-empty, inside the file) straight into `buffer` (byte i of
    /// the file at `buffer + i`), at most `settings.connections` at a time. Throws
    /// `FolioError.remote` naming the URL and the fault once a request has failed
    /// `settings.attempts` times or cannot succeed; bytes of a failed range are then
    /// unspecified.
    func read(_ ranges: [Range<Int>], into buffer: UnsafeMutableRawPointer) throws {
        try run(ranges.map { Transfer(range: $0, opening: false, destination: buffer + $0.lowerBound) })
    }

    private func run(_ transfers: [Transfer]) throws {
        guard !transfers.isEmpty else { return }
        let multi = lock.withLock { multis.popLast() } ?? curl_multi_init()!
        defer { lock.withLock { multis.append(multi) } }
        var waiting = Array(transfers.indices)  // not started or waiting for a retry
        var active: [UnsafeMutableRawPointer: Int] = [:]
        var finished = 0
        defer {
            for (easy, i) in active { curl_multi_remove_handle(multi, easy); curl_easy_cleanup(easy); transfers[i].release() }
        }
        while finished < transfers.count {
            let now = Sys.monotonicSeconds()
            var nextWake = Double.infinity
            var stillWaiting: [Int] = []
            for i in waiting {
                if active.count < settings.connections, transfers[i].notBefore <= now {
                    let easy = try start(transfers[i])
                    curl_multi_add_handle(multi, easy)
                    active[easy] = i
                    lock.withLock { requestCount += 1 }
                } else {
                    stillWaiting.append(i)
                    nextWake = min(nextWake, transfers[i].notBefore)
                }
            }
            waiting = stillWaiting
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let msg = curl_multi_info_read(multi, &left) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle, let i = active[easy] else { continue }
                let result = msg.pointee.data.result
                active[easy] = nil
                curl_multi_remove_handle(multi, easy)
                let t = transfers[i]
                var status = 0
                folio_curl_get_long(easy, CURLINFO_RESPONSE_CODE, &status)
                curl_easy_cleanup(easy)
                t.release()
                switch try evaluate(t, result: result, status: status) {
                case .done:
                    finished += 1
                case let .retry(reason):
                    t.attempts += 1
                    guard t.attempts < settings.attempts else {
                        throw FolioError.remote(url: display, reason: "bytes [\(t.range.lowerBound), \(t.range.upperBound)): \(reason) (gave up after \(t.attempts) attempts)")
                    }
                    t.reset()
                    t.notBefore = Sys.monotonicSeconds() + min(2.0, 0.05 * Double(1 << min(t.attempts, 6))) * Double.random(in: 0.75...1.25)
                    waiting.append(i)
                }
            }
            if finished < transfers.count {
                let wait = active.isEmpty ? max(0, nextWake - Sys.monotonicSeconds()) : min(0.1, max(0, nextWake - Sys.monotonicSeconds()))
                curl_multi_poll(multi, nil, 0, Int32(min(1000, max(0, wait * 1000)).rounded(.up)), nil)
            }
        }
        lock.withLock { bytesReceived += transfers.reduce(0) { $0 + $1.received } }
    }

    private enum Outcome { case done, retry(String) }

    private func evaluate(_ t: Transfer, result: CURLcode, status: Int) throws -> Outcome {
        let asked = "bytes [\(t.range.lowerBound), \(t.range.upperBound))"
        if t.ignoredRange || status == 200 {
            throw FolioError.remote(url: display, reason: "the server ignored the byte range asked for (HTTP 200 with the whole file instead of 206); Folio reads remote files only from servers that serve Range requests")
        }
        if let fatal = t.fatal { throw FolioError.remote(url: display, reason: fatal) }
        guard result == CURLE_OK else {
            let what = t.errorText.isEmpty ? String(cString: curl_easy_strerror(result)) : t.errorText
            if result == CURLE_UNSUPPORTED_PROTOCOL || result == CURLE_URL_MALFORMAT {
                throw FolioError.remote(url: display, reason: what)
            }
            return .retry(what)
        }
        switch status {
        case 206: break
        case 416 where t.opening && t.contentRange?.hasPrefix("bytes */0") == true:
            try agree(RemoteIdentity(size: 0, etag: t.etag, lastModified: t.lastModified))
            return .done
        case 408, 429, 500...599: return .retry("HTTP \(status)")
        case 401, 403: throw FolioError.remote(url: display, reason: "HTTP \(status): access denied (set FOLIO_HTTP_TOKEN to a bearer token for a private file)")
        case 404: throw FolioError.remote(url: display, reason: "HTTP 404: no such file on the server")
        case 416: throw FolioError.remote(url: display, reason: "HTTP 416 for \(asked): the file on the server is shorter than expected")
        default: throw FolioError.remote(url: display, reason: "HTTP \(status) for \(asked)")
        }
        guard let cr = t.contentRange, let (first, last, total) = Self.parseContentRange(cr) else {
            throw FolioError.remote(url: display, reason: "answered \(asked) without a valid Content-Range header (\(t.contentRange ?? "none"))")
        }
        try agree(RemoteIdentity(size: total, etag: t.etag, lastModified: t.lastModified))
        let expectedEnd = t.opening ? min(t.range.upperBound, total) : t.range.upperBound
        guard first == t.range.lowerBound, last + 1 == expectedEnd else {
            throw FolioError.remote(url: display, reason: "asked for \(asked), the server answered bytes [\(first), \(last + 1))")
        }
        guard t.received == expectedEnd - first else {
            return .retry("body shorter than asked (\(t.received) of \(expectedEnd - first) bytes)")
        }
        return .done
    }

    /// Every response must describe the same file as the first one.
    private func agree(_ seen: RemoteIdentity) throws {
        try lock.withLock {
            guard let known = identity else { identity = seen; return }
            let etagDiffers = known.etag != nil && seen.etag != nil && known.etag != seen.etag
            let dateDiffers = known.lastModified != nil && seen.lastModified != nil && known.lastModified != seen.lastModified
            guard known.size == seen.size, !etagDiffers, !dateDiffers else {
                throw FolioError.remote(url: display, reason: "the file changed on the server while it was being read (first \(known.description); now \(seen.description)); start again")
            }
        }
    }

    /// "bytes FIRST-LAST/TOTAL" → (first, last, total).
    static func parseContentRange(_ s: String) -> (Int, Int, Int)? {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard t.lowercased().hasPrefix("bytes ") else { return nil }
        let rest = t.dropFirst(6)
        let parts = rest.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let total = Int(parts[1]) else { return nil }
        let ends = parts[0].split(separator: "-", maxSplits: 1)
        guard ends.count == 2, let a = Int(ends[0]), let b = Int(ends[1]), a >= 0, b >= a, b < total else { return nil }
        return (a, b, total)
    }

    private func start(_ t: Transfer) throws -> UnsafeMutableRawPointer {
        guard let easy = curl_easy_init() else { throw FolioError.remote(url: display, reason: "libcurl could not start a request") }
        let box = Unmanaged.passRetained(t).toOpaque()
        t.retained = box
        folio_curl_set_string(easy, CURLOPT_URL, url)
        folio_curl_set_string(easy, CURLOPT_RANGE, "\(t.range.lowerBound)-\(t.range.upperBound - 1)")
        folio_curl_set_long(easy, CURLOPT_FOLLOWLOCATION, 1)
        folio_curl_set_long(easy, CURLOPT_MAXREDIRS, 8)
        folio_curl_set_long(easy, CURLOPT_NOSIGNAL, 1)
        folio_curl_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.stallTimeout * 1000))
        folio_curl_set_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        folio_curl_set_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(settings.stallTimeout.rounded(.up))))
        folio_curl_set_long(easy, CURLOPT_TCP_NODELAY, 1)
        folio_curl_set_long(easy, CURLOPT_BUFFERSIZE, t.range.count >= 1 << 20 ? 512 << 10 : 64 << 10)
        folio_curl_set_string(easy, CURLOPT_USERAGENT, "folio")
        folio_curl_set_pointer(easy, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(t.errorBuffer))
        if let token = settings.bearerToken {
            let list = curl_slist_append(nil, "Authorization: Bearer \(token)")
            t.headerList = list
            folio_curl_set_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        }
        folio_curl_set_body_handler(easy, { data, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            // A 200 answer is the whole file: stop at once rather than download it.
            if t.status == 200 { t.ignoredRange = true; return 0 }
            let fits = min(n, t.range.count - t.received)
            t.take(UnsafeRawBufferPointer(start: data, count: fits))
            if fits < n { t.overlong = true; return 0 }
            return n
        }, box)
        folio_curl_set_header_handler(easy, { data, size, count, user in
            let t = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            t.header(String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self))
            return n
        }, box)
        return easy
    }
}

/// One range request's state, shared with libcurl's callbacks.
private final class Transfer: @unchecked Sendable {
    // @unchecked: touched only by the thread running the request loop.
    let range: Range<Int>
    let opening: Bool
    /// Where the body goes: `destination` when given, else `body`.
    let destination: UnsafeMutableRawPointer?
    var body: [UInt8] = []
    var received = 0
    var status = 0
    var contentRange: String?
    var etag: String?
    var lastModified: String?
    var ignoredRange = false
    var overlong = false
    var fatal: String?
    var attempts = 0
    var notBefore = 0.0
    var retained: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    init(range: Range<Int>, opening: Bool, destination: UnsafeMutableRawPointer?) {
        self.range = range
        self.opening = opening
        self.destination = destination
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        if destination == nil { body.reserveCapacity(range.count) }
    }

    func take(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if let d = destination { (d + received).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) } else { body.append(contentsOf: bytes) }
        received += bytes.count
    }

    deinit { errorBuffer.deallocate() }

    var errorText: String { String(cString: errorBuffer) }

    func header(_ line: String) {
        let l = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if l.hasPrefix("HTTP/") {
            // A new response (after a redirect or a 100 Continue): forget the last one's.
            let parts = l.split(separator: " ")
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            contentRange = nil; etag = nil; lastModified = nil
            return
        }
        guard let colon = l.firstIndex(of: ":") else { return }
        let name = l[..<colon].lowercased()
        let value = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        switch name {
        case "content-range": contentRange = value
        case "etag": etag = value
        case "last-modified": lastModified = value
        default: break
        }
    }

    /// After the request ends: let go of what libcurl held.
    func release() {
        if let r = retained { Unmanaged<Transfer>.fromOpaque(r).release(); retained = nil }
        if let h = headerList { curl_slist_free_all(h); headerList = nil }
        if overlong { fatal = "the server sent more bytes than the range asked for" }
    }

    /// Before a retry.
    func reset() {
        body.removeAll(keepingCapacity: true)
        received = 0
        status = 0; contentRange = nil; etag = nil; lastModified = nil
        overlong = false; fatal = nil
        errorBuffer[0] = 0
    }
}
