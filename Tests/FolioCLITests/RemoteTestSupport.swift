import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs folio with extra environment variables (remote settings, cache folder).
func folio(_ args: [String], environment: [String: String]) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: folioBinary())
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both pipes concurrently so a full stderr pipe cannot stall the child.
    let errData = LockedData()
    let t = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    t.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !errData.isSet { usleep(1000) }
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: errData.get(), as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

/// A port on the loopback interface that nothing listens on now.
func freeLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// Connects to 127.0.0.1:port; -1 when nothing answers.
func connectLoopback(_ port: UInt16) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if r != 0 { close(fd); return -1 }
    return fd
}

/// Debian's nginx serving a folder on the loopback interface, configured by the test, with
/// an access log the tests count requests in.
final class Nginx {
    let root: String
    let port: UInt16
    let work: String
    private var running: Process?

    init(root: String) throws {
        self.root = root
        work = NSTemporaryDirectory() + "folio-nginx-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work + "/logs", withIntermediateDirectories: true)
        var lastError = ""
        for _ in 0..<5 {
            let port = freeLoopbackPort()
            let conf = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(work)/nginx.pid;
            error_log \(work)/logs/error.log;
            events { worker_connections 512; }
            http {
                access_log \(work)/logs/access.log;
                client_body_temp_path \(work)/body;
                proxy_temp_path \(work)/proxy;
                fastcgi_temp_path \(work)/fastcgi;
                uwsgi_temp_path \(work)/uwsgi;
                scgi_temp_path \(work)/scgi;
                default_type application/octet-stream;
                keepalive_requests 100000;
                server {
                    listen 127.0.0.1:\(port);
                    root \(root);
                    # A private folder: only with the bearer token the tests set.
                    location /private/ {
                        if ($http_authorization != "Bearer \(Nginx.token)") { return 401; }
                    }
                }
            }
            """
            try conf.write(toFile: work + "/nginx.conf", atomically: true, encoding: .utf8)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") ? "/usr/sbin/nginx" : "/usr/bin/nginx")
            p.arguments = ["-c", work + "/nginx.conf", "-p", work, "-e", work + "/logs/error.log"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            for _ in 0..<200 {
                let fd = connectLoopback(port)
                if fd >= 0 { close(fd); self.port = port; running = p; return }
                if !p.isRunning { break }
                usleep(10_000)
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            lastError = (try? String(contentsOfFile: work + "/logs/error.log", encoding: .utf8)) ?? "no error log"
        }
        throw NSError(domain: "nginx", code: 1, userInfo: [NSLocalizedDescriptionKey: "nginx did not start: \(lastError)"])
    }

    deinit {
        // SIGKILL: a child of Foundation's Process may start with signals blocked, so a
        // SIGTERM could go unanswered.
        if let p = running, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: work)
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    /// The bearer token that opens `/private/`.
    static let token = "folio-test-secret"

    /// Requests logged so far for `name` (nginx writes a line per request once it is answered).
    func requests(_ name: String) -> Int {
        let log = (try? String(contentsOfFile: work + "/logs/access.log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains("GET /\(name) ") }.count
    }

    func clearLog() {
        // Truncated in place: nginx keeps writing to the file it opened.
        _ = truncate(work + "/logs/access.log", 0)
    }
}

/// A fault-injecting HTTP proxy in front of nginx: forwards each request (keep-alive on the
/// client side, a fresh upstream connection per request) and damages chosen responses.
final class FaultProxy: @unchecked Sendable {
    enum Fault: Sendable {
        /// Headers and half the body, then a reset connection.
        case resetMidBody
        /// 503 Service Unavailable instead of the answer.
        case unavailable
        /// The Range header is dropped, so nginx answers 200 with the whole file.
        case ignoreRange
        /// Content-Length and the body cut 10 bytes short (Content-Range unchanged).
        case shortBody
        /// One byte of the body flipped.
        case flipByte
        /// Waits this many milliseconds before answering.
        case delay(Int)
    }

    let upstream: UInt16
    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var count = 0
    /// Which fault (if any) request number n (from 0) gets.
    private let plan: @Sendable (Int) -> Fault?
    /// Called before request n is forwarded (the test may replace the file there).
    private let before: @Sendable (Int) -> Void

    init(upstream: UInt16, plan: @escaping @Sendable (Int) -> Fault?, before: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.upstream = upstream
        self.plan = plan
        self.before = before
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(4))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        listen(listener, 128)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        let fd = listener
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return }
                Thread.detachNewThread { [self] in serve(c) }
            }
        }
    }

    deinit { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    var requestsSeen: Int { lock.lock(); defer { lock.unlock() }; return count }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var pending = [UInt8]()
        while true {
            guard let request = readHead(client, &pending) else { return }
            let n: Int = { lock.lock(); defer { lock.unlock() }; count += 1; return count - 1 }()
            before(n)
            let fault = plan(n)
            if case .unavailable? = fault {
                guard sendAll(client, Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".utf8)) else { return }
                continue
            }
            var lines = String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
            if case .ignoreRange? = fault { lines.removeAll { $0.lowercased().hasPrefix("range:") } }
            lines.removeAll { $0.lowercased().hasPrefix("connection:") }
            lines.append("Connection: close")
            let up = connectLoopback(upstream)
            guard up >= 0 else { return }
            defer { close(up) }
            guard sendAll(up, Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)) else { return }
            var upPending = [UInt8]()
            guard let head = readHead(up, &upPending) else { return }
            var headLines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
            let length = headLines.first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            var body = upPending
            while body.count < length {
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                let r = recv(up, &buf, buf.count, 0)
                if r <= 0 { return }
                body.append(contentsOf: buf[0..<r])
            }
            headLines.removeAll { $0.lowercased().hasPrefix("connection:") }
            switch fault {
            case let .delay(ms)?: usleep(UInt32(ms * 1000))
            case .flipByte? where body.count > 16: body[body.count / 2] ^= 0x40
            case .shortBody? where body.count > 10:
                body.removeLast(10)
                headLines = headLines.map { $0.lowercased().hasPrefix("content-length:") ? "Content-Length: \(body.count)" : $0 }
            default: break
            }
            if case .resetMidBody? = fault {
                _ = sendAll(client, Array((headLines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body.prefix(body.count / 2))
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(client, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                return
            }
            guard sendAll(client, Array((headLines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body) else { return }
        }
    }

    /// Reads up to the end of an HTTP head ("\r\n\r\n"); what follows stays in `pending`.
    private func readHead(_ fd: Int32, _ pending: inout [UInt8]) -> [UInt8]? {
        while true {
            if let end = find(pending) {
                let head = Array(pending[0..<end])
                pending.removeFirst(end + 4)
                return head
            }
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            let r = recv(fd, &buf, buf.count, 0)
            if r <= 0 { return nil }
            pending.append(contentsOf: buf[0..<r])
        }
    }

    private func find(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let r = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if r <= 0 { return false }
            sent += r
        }
        return true
    }
}
