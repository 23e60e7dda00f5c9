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

    func start(_ out: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: folioBinary())
        p.arguments = [Self.args[0], Self.args[1], out] + Array(Self.args.dropFirst(2))
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    @Test(arguments: [Int32(SIGKILL), SIGINT, SIGTERM])
    func interruptedWritesLeaveTheDestinationUntouched(_ signal: Int32) throws {
        let s = Scratch()
        let dest = s.file("model.folio")
        FileManager.default.createFile(atPath: dest, contents: Data("old contents".utf8))
        for delay in [0.02, 0.15, 0.4, 0.8] {
            let p = try start(dest)
            Thread.sleep(forTimeInterval: delay)
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            if p.terminationReason == .exit && p.terminationStatus == 0 { continue }  // finished first
            #expect(FileManager.default.contents(atPath: dest) == Data("old contents".utf8), "signal \(signal) at \(delay) s")
            let left = try FileManager.default.contentsOfDirectory(atPath: s.path)
            #expect(left == ["model.folio"], "signal \(signal) at \(delay) s left \(left)")
        }
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
