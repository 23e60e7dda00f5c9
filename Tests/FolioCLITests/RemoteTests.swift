import Foundation
import Testing
import Folio

/// Remote reads as a user drives them: every command on an http:// URL served by a real
/// nginx gives the local file's output, within the request budget; faults injected by a
/// proxy give the right answer after a retry or one line and exit 1; the chunk cache.
@Suite(.serialized) struct RemoteTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    /// No cache and quick give-ups unless a test says otherwise.
    static let plain = ["FOLIO_CACHE": "off", "FOLIO_HTTP_TIMEOUT": "5", "FOLIO_HTTP_RETRIES": "4"]

    /// A served folder holding a table file with one-page chunks (2 tables x 20,000 rows of
    /// 256 int8), the trained n-gram model, the index fixture and a small safetensors file.
    final class Served {
        let scratch = Scratch()
        let nginx: Nginx
        var root: String { scratch.file("srv") }

        init() throws {
            try FileManager.default.createDirectory(atPath: scratch.file("srv"), withIntermediateDirectories: true)
            let root = scratch.file("srv")
            let t = try folio("bench", "tables", root + "/tables.folio", "--tables", "2", "--rows", "20000", "--dim", "256",
                              "--scheme", "int8", "--chunk-size", "4096")
            precondition(t.status == 0, t.stderr)
            try FileManager.default.copyItem(atPath: RemoteTests.fixtures + "/trained/ngram.folio", toPath: root + "/ngram.folio")
            try FileManager.default.copyItem(atPath: RemoteTests.fixtures + "/index", toPath: root + "/index")
            sampleSafetensors(root + "/m.safetensors")
            nginx = try Nginx(root: root)
        }
        func local(_ name: String) -> String { root + "/" + name }
    }

    @Test func everyCommandGivesTheLocalOutput() throws {
        let s = try Served()
        let env = Self.plain
        func same(_ args: (String) -> [String], _ name: String, _ what: String) throws {
            let l = try folio(args(s.local(name)), environment: env)
            let r = try folio(args(s.nginx.url(name)), environment: env)
            #expect(l.status == 0, "\(what) local: \(l.stderr)")
            #expect(r.status == 0, "\(what) remote: \(r.stderr)")
            #expect(r.stdout.replacingOccurrences(of: s.nginx.url(""), with: "@") == l.stdout.replacingOccurrences(of: s.local(""), with: "@"), "\(what)")
        }
        try same({ ["inspect", $0] }, "tables.folio", "inspect")
        try same({ ["inspect", $0, "--json"] }, "ngram.folio", "inspect --json")
        try same({ ["inspect", $0] }, "index/model.folio.index.json", "inspect index")
        try same({ ["inspect", $0, "--json"] }, "m.safetensors", "inspect safetensors")
        try same({ ["verify", $0] }, "tables.folio", "verify")
        try same({ ["rows", $0, "ngram_embeddings.1.weight", "0,7,19999,4096", "--json"] }, "tables.folio", "rows")
        try same({ ["diff", $0, s.local("ngram.folio")] }, "ngram.folio", "diff")
        try same({ ["run", $0, "--prompt", "def main(", "--max-tokens", "12"] }, "ngram.folio", "run")
        // bench prints timings: compare the checksum of every looked-up value.
        let bl = try folio(["bench", "lookups", s.local("tables.folio"), "--tokens", "3000", "--json"], environment: env)
        let br = try folio(["bench", "lookups", s.nginx.url("tables.folio"), "--tokens", "3000", "--json", "--willneed-ahead", "1"], environment: env)
        #expect(bl.status == 0 && br.status == 0, "\(br.stderr)")
        #expect(try jsonDocument(bl.stdout)["checksum"]?.doubleValue == jsonDocument(br.stdout)["checksum"]?.doubleValue)
        #expect(try (jsonDocument(br.stdout)["http_requests"]?.intValue ?? 0) > 0)
        for (from, name) in [("ngram.folio", "a.folio"), ("m.safetensors", "b.folio"), ("index/model.folio.index.json", "c.folio")] {
            let l = try folio(["convert", s.local(from), s.scratch.file("l-" + name)], environment: env)
            let r = try folio(["convert", s.nginx.url(from), s.scratch.file("r-" + name)], environment: env)
            #expect(l.status == 0 && r.status == 0, "convert \(from): \(l.stderr) \(r.stderr)")
            #expect(FileManager.default.contentsEqual(atPath: s.scratch.file("l-" + name), andPath: s.scratch.file("r-" + name)), "convert \(from)")
        }
    }

    @Test func embedGivesTheLocalVectors() throws {
        let s = try Served()
        #expect(try folio("convert", Self.fixtures + "/tiny-bert", s.local("bert.folio")).status == 0)
        let l = try folio(["embed", s.local("bert.folio"), "--text", "Hello world", "--json"], environment: Self.plain)
        let r = try folio(["embed", s.nginx.url("bert.folio"), "--text", "Hello world", "--json"], environment: Self.plain)
        #expect(l.status == 0 && r.status == 0, "\(r.stderr)")
        #expect(l.stdout == r.stdout)
    }

    @Test func inspectCostsTwoRequestsAndEachRowAtMostOne() throws {
        let s = try Served()
        s.nginx.clearLog()
        let i = try folio(["inspect", s.nginx.url("tables.folio")], environment: Self.plain)
        #expect(i.status == 0, "\(i.stderr)")
        #expect(s.nginx.requests("tables.folio") == 2)
        // A safetensors header comes with the first request (this file is smaller than it).
        s.nginx.clearLog()
        #expect(try folio(["inspect", s.nginx.url("m.safetensors")], environment: Self.plain).status == 0)
        #expect(s.nginx.requests("m.safetensors") == 1)
        // Five rows on five different pages: the open (2) and one request each.
        s.nginx.clearLog()
        let r = try folio(["rows", s.nginx.url("tables.folio"), "ngram_embeddings.0.weight", "3,1000,5000,12000,19999"], environment: Self.plain)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(s.nginx.requests("tables.folio") <= 2 + 5)
        // Rows of one page share its request.
        s.nginx.clearLog()
        let same = try folio(["rows", s.nginx.url("tables.folio"), "ngram_embeddings.0.weight", "0,1,2,3,4,5"], environment: Self.plain)
        #expect(same.status == 0)
        #expect(s.nginx.requests("tables.folio") <= 2 + 1)
    }

    /// A fault on some requests: either the right answer after retrying, or exit 1 with one
    /// line naming the URL and the fault.
    @Test func faultsGiveTheRightAnswerOrOneLine() throws {
        let s = try Served()
        let args = { (u: String) in ["rows", u, "ngram_embeddings.1.weight", "2,9000,17000", "--json"] }
        let expected = try folio(args(s.local("tables.folio")), environment: Self.plain)
        #expect(expected.status == 0)
        // Requests 0 and 1 open the file; request 2 is the first row's chunk.
        let recoverable: [(String, @Sendable (Int) -> FaultProxy.Fault?)] = [
            ("reset mid-body", { $0 == 2 ? .resetMidBody : nil }),
            ("503 then success", { $0 < 2 ? .unavailable : nil }),
            ("short body", { $0 == 2 || $0 == 1 ? .shortBody : nil }),
            ("flipped byte in a chunk", { $0 == 2 ? .flipByte : nil }),
            ("flipped byte in the header", { $0 == 0 ? .flipByte : nil }),
            ("flipped byte in the chunk table", { $0 == 1 ? .flipByte : nil }),
        ]
        for (what, plan) in recoverable {
            let proxy = FaultProxy(upstream: s.nginx.port, plan: plan)
            let r = try folio(args(proxy.url("tables.folio")), environment: Self.plain)
            #expect(r.status == 0, "\(what): \(r.stderr)")
            #expect(r.stdout == expected.stdout, "\(what)")
        }
        let fatal: [(String, @Sendable (Int) -> FaultProxy.Fault?, String)] = [
            ("server ignores Range", { _ in .ignoreRange }, "ignored the byte range"),
            ("always short", { $0 >= 2 ? .shortBody : nil }, "body shorter than asked"),
            ("always flipped", { $0 >= 2 ? .flipByte : nil }, "failed its XXH3 checksum"),
            ("always 503", { _ in .unavailable }, "HTTP 503"),
            ("always reset", { $0 >= 2 ? .resetMidBody : nil }, "gave up after 4 attempts"),
        ]
        for (what, plan, message) in fatal {
            let proxy = FaultProxy(upstream: s.nginx.port, plan: plan)
            let url = proxy.url("tables.folio")
            let r = try folio(args(url), environment: Self.plain)
            #expect(r.status == 1, "\(what): \(r.stdout)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(url) && lines[0].contains(message), "\(what): \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(what): printed \(r.stdout)")
        }
    }

    @Test func aStalledServerTimesOut() throws {
        let s = try Served()
        let proxy = FaultProxy(upstream: s.nginx.port, plan: { $0 >= 2 ? .delay(4000) : nil })
        let start = Date()
        let r = try folio(["rows", proxy.url("tables.folio"), "ngram_embeddings.1.weight", "2"],
                          environment: ["FOLIO_CACHE": "off", "FOLIO_HTTP_TIMEOUT": "0.5", "FOLIO_HTTP_RETRIES": "2"])
        #expect(r.status == 1)
        #expect(r.stderr.contains(proxy.url("tables.folio")) && r.stderr.contains("gave up after 2 attempts"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30)
    }

    @Test func aFileReplacedBetweenTwoRequestsIsRefused() throws {
        let s = try Served()
        let path = s.local("tables.folio")
        let other = s.scratch.file("other.folio")
        #expect(try folio("bench", "tables", other, "--tables", "2", "--rows", "20000", "--dim", "256", "--scheme", "int8",
                          "--chunk-size", "4096", "--seed", "9").status == 0)
        let proxy = FaultProxy(upstream: s.nginx.port, plan: { _ in nil }, before: { n in
            guard n == 2 else { return }
            // Replace the file (another version, a later modification time) under the reader.
            _ = rename(other, path)
            var times = [timespec(tv_sec: time(nil) + 60, tv_nsec: 0), timespec(tv_sec: time(nil) + 60, tv_nsec: 0)]
            _ = utimensat(AT_FDCWD, path, &times, 0)
        })
        let url = proxy.url("tables.folio")
        let r = try folio(["rows", url, "ngram_embeddings.1.weight", "2,9000", "--json"], environment: Self.plain)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(url) && r.stderr.contains("changed on the server"), "\(r.stderr)")
    }

    @Test func theCacheServesSecondRunsAndSurvivesDamage() throws {
        let s = try Served()
        let cache = s.scratch.file("cache")
        let env = ["FOLIO_CACHE": cache, "FOLIO_HTTP_TIMEOUT": "5"]
        let args = ["rows", s.nginx.url("tables.folio"), "ngram_embeddings.0.weight", "3,1000,5000,12000", "--json"]
        let expected = try folio(["rows", s.local("tables.folio"), "ngram_embeddings.0.weight", "3,1000,5000,12000", "--json"], environment: env)
        s.nginx.clearLog()
        let first = try folio(args, environment: env)
        #expect(first.status == 0 && first.stdout == expected.stdout, "\(first.stderr)")
        let firstCount = s.nginx.requests("tables.folio")
        #expect(firstCount >= 5)
        // Second run: only the opening request (it checks the file is the one cached).
        s.nginx.clearLog()
        let second = try folio(args, environment: env)
        #expect(second.status == 0 && second.stdout == expected.stdout)
        #expect(s.nginx.requests("tables.folio") == 1)
        // A damaged cached chunk is noticed and fetched again.
        let folder = try #require(try FileManager.default.contentsOfDirectory(atPath: cache).first)
        let chunk = try #require(try FileManager.default.contentsOfDirectory(atPath: cache + "/" + folder).first { $0.hasPrefix("c") })
        let p = cache + "/" + folder + "/" + chunk
        var bytes = try Data(contentsOf: URL(fileURLWithPath: p))
        bytes[100] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: p))
        s.nginx.clearLog()
        let third = try folio(args, environment: env)
        #expect(third.status == 0 && third.stdout == expected.stdout, "\(third.stderr)")
        #expect(s.nginx.requests("tables.folio") == 2)
        // Two processes sharing one (empty) cache at once both give the right rows.
        let shared = s.scratch.file("shared")
        let envShared = ["FOLIO_CACHE": shared, "FOLIO_HTTP_TIMEOUT": "5"]
        let wide = ["rows", s.nginx.url("tables.folio"), "ngram_embeddings.1.weight", (0..<60).map { String($0 * 331) }.joined(separator: ","), "--json"]
        let wideExpected = try folio(["rows", s.local("tables.folio")] + wide.dropFirst(2), environment: envShared)
        let results = LockedRuns()
        let threads = (0..<2).map { _ in Thread { results.append((try? folio(wide, environment: envShared)) ?? Run(status: -1, stdout: "", stderr: "did not start")) } }
        threads.forEach { $0.start() }
        while results.count < 2 { usleep(10_000) }
        for r in results.all { #expect(r.status == 0 && r.stdout == wideExpected.stdout, "\(r.stderr)") }
        // And a third process finds every chunk the two stored intact.
        s.nginx.clearLog()
        let after = try folio(wide, environment: envShared)
        #expect(after.stdout == wideExpected.stdout && s.nginx.requests("tables.folio") == 1)
    }

    @Test func aPrivateFileNeedsTheBearerToken() throws {
        let s = try Served()
        try FileManager.default.createDirectory(atPath: s.local("private"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: s.local("tables.folio"), toPath: s.local("private/tables.folio"))
        let url = s.nginx.url("private/tables.folio")
        let denied = try folio(["inspect", url], environment: Self.plain)
        #expect(denied.status == 1 && denied.stderr.contains("HTTP 401") && denied.stderr.contains("FOLIO_HTTP_TOKEN"), "\(denied.stderr)")
        var env = Self.plain
        env["FOLIO_HTTP_TOKEN"] = Nginx.token
        let allowed = try folio(["rows", url, "ngram_embeddings.0.weight", "5", "--json"], environment: env)
        let local = try folio(["rows", s.local("tables.folio"), "ngram_embeddings.0.weight", "5", "--json"], environment: env)
        #expect(allowed.status == 0 && allowed.stdout == local.stdout, "\(allowed.stderr)")
    }

    @Test func badURLsGetOneLine() throws {
        let s = try Served()
        for (url, message) in [(s.nginx.url("missing.folio"), "HTTP 404"), (s.nginx.url("index/model.gguf"), "remote reads take"),
                               ("http://127.0.0.1:1/x.folio", "attempts")] {
            let r = try folio(["inspect", url], environment: ["FOLIO_CACHE": "off", "FOLIO_HTTP_TIMEOUT": "1", "FOLIO_HTTP_RETRIES": "2"])
            #expect(r.status == 1)
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(message), "\(url): \(r.stderr)")
        }
    }
}

final class LockedRuns: @unchecked Sendable {
    private let lock = NSLock()
    private var runs: [Run] = []
    func append(_ r: Run) { lock.lock(); runs.append(r); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return runs.count }
    var all: [Run] { lock.lock(); defer { lock.unlock() }; return runs }
}
