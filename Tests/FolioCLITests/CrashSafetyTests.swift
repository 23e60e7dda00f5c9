import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A command that writes a file leaves the destination either complete or untouched, with no
/// temporary file visible, also when killed (SIGKILL), interrupted (Ctrl-C) or out of space.
@Suite(.serialized) struct CrashSafetyTests {
    /// Long enough to be interrupted at several moments (a few hundred MB in a debug build).
    static let args = ["bench", "tables", "--tables", "2", "--rows", "150000", "--dim", "512", "--scheme", "int8"]

    /// Starts `folio ARGS` with stdout and stderr to /dev/null, SIGINT/SIGTERM/SIGHUP at
    /// their default actions and no signal blocked. (A child started with Foundation's
    /// Process under the test runner does not receive them: a /bin/sleep sent SIGTERM
    /// there exits 0.)
    static func spawn(_ args: [String]) throws -> pid_t {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([folioBinary()] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, folioBinary(), &actions, &attr, argv, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        return pid
    }

    /// Waits for `pid`; true when it exited with status 0 (it finished before the signal).
    static func finished(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status == 0
    }

    static func start(_ out: String) throws -> pid_t {
        try spawn([args[0], args[1], out] + Array(args.dropFirst(2)))
    }

    @Test(arguments: [Int32(SIGKILL), SIGINT, SIGTERM])
    func interruptedWritesLeaveTheDestinationUntouched(_ signal: Int32) throws {
        let s = Scratch()
        let dest = s.file("model.folio")
        FileManager.default.createFile(atPath: dest, contents: Data("old contents".utf8))
        var interrupted = 0
        for delay in [0.02, 0.15, 0.4, 0.8] {
            let pid = try Self.start(dest)
            Thread.sleep(forTimeInterval: delay)
            kill(pid, signal)
            if Self.finished(pid) { continue }  // finished first
            interrupted += 1
            #expect(FileManager.default.contents(atPath: dest) == Data("old contents".utf8), "signal \(signal) at \(delay) s")
            let left = try FileManager.default.contentsOfDirectory(atPath: s.path)
            #expect(left == ["model.folio"], "signal \(signal) at \(delay) s left \(left)")
        }
        #expect(interrupted > 0, "every write finished before its signal")
    }

    /// A sharded conversion, plain or compressed (through scratch files), interrupted before
    /// its index is written leaves nothing behind (shards without their index are not a model).
    @Test(arguments: [Int32(SIGINT), SIGTERM], [false, true])
    func interruptedShardedConversionsLeaveNoShards(_ signal: Int32, compressed: Bool) throws {
        let s = Scratch()
        let src = s.file("src.folio")
        #expect(try folio([Self.args[0], Self.args[1], src] + Array(Self.args.dropFirst(2))).status == 0)
        let out = s.file("out")
        var interrupted = 0
        for delay in [0.05, 0.2, 0.5, 1.0, 2.0] {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let pid = try Self.spawn(["convert", src, out + "/m.folio", "--max-shard-size", "8MB"] + (compressed ? ["--compress", "lz4"] : []))
            Thread.sleep(forTimeInterval: delay)
            kill(pid, signal)
            let done = Self.finished(pid)
            let left = try FileManager.default.contentsOfDirectory(atPath: out)
            if done {
                #expect(left.contains("m.folio.index.json"), "finished at \(delay) s: \(left)")
            } else {
                interrupted += 1
                #expect(left.isEmpty, "signal \(signal) at \(delay) s left \(left)")
            }
            try FileManager.default.removeItem(atPath: out)
        }
        #expect(interrupted > 0, "every conversion finished before its signal")
    }

    /// A full disk (a 1 MiB tmpfs, which needs root to mount) gives one clear line and
    /// leaves nothing behind.
    @Test(.enabled(if: getuid() == 0, "mounting a small tmpfs needs root"))
    func fullDiskGivesAClearErrorAndLeavesNothing() throws {
        let s = Scratch()
        let mnt = s.file("small")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            Issue.record("could not mount a tmpfs at \(mnt)")
            return
        }
        defer {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [mnt]
            try? u.run()
            u.waitUntilExit()
        }
        let r = try folio("bench", "tables", mnt + "/big.folio", "--tables", "1", "--rows", "8000", "--dim", "256", "--scheme", "int8")
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("No space left"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: mnt).isEmpty)
        // A file that fits still works there.
        let ok = try folio("bench", "tables", mnt + "/small.folio", "--tables", "1", "--rows", "100", "--dim", "256", "--scheme", "int8")
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}

@Suite struct MappedFileChangeTests {
    /// A file truncated by another process while `verify` reads it: one line, exit 1, no
    /// signal death.
    @Test func truncationUnderAMappingGivesOneLine() throws {
        let s = Scratch()
        let f = s.file("t.folio")
        #expect(try folio("bench", "tables", f, "--tables", "1", "--rows", "300000", "--dim", "256", "--scheme", "f32").status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: folioBinary())
        p.arguments = ["inspect", f, "--stats"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 0.15)
        truncate(f, 8192)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus == 0 { return }  // it finished before the truncation
        #expect(p.terminationReason == .exit && p.terminationStatus == 1, "\(p.terminationReason) \(p.terminationStatus)")
        // Either open already sees the short file, or a later read raises SIGBUS: one line both ways.
        #expect(text.split(separator: "\n").count == 1 && text.contains("truncated"), "\(text)")
    }
}
