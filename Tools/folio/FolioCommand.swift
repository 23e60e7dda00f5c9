import Foundation
import ArgumentParser
import Folio
import FolioConvert
import FolioInference
import FolioTokenizers

/// The `folio` command: convert, inspect, verify and read LLM weight files.
struct FolioCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folio",
        abstract: "Store, convert, inspect and read LLM weights in memory-mapped Folio files.",
        version: "0.1.0",
        subcommands: [Convert.self, Inspect.self, Verify.self, Rows.self, Diff.self, Embed.self, Run.self, Perplexity.self, Bench.self, CompressBench.self]
    )
}

/// Entry point: usage errors exit 2, every other failure exits 1 with one line on stderr.
@main
enum Main {
    static func main() {
        FileSystem.installMappedFileFaultHandler()
        let command: ParsableCommand
        do {
            command = try FolioCommand.parseAsRoot()
        } catch {
            let code = FolioCommand.exitCode(for: error)
            if code == .success { FolioCommand.exit(withError: error) }
            usageError(error)
        }
        do {
            var c = command
            try c.run()
        } catch let e as ExitCode {
            FileSystem.exitProcess(e.rawValue)
        } catch let e as FolioError {
            fail(e.description)
        } catch let e as ConvertError {
            fail(e.description)
        } catch let e as SystemError {
            fail(e.description)
        } catch let e as CLIError {
            fail(e.description)
        } catch let e as TokenizerError {
            fail(e.description)
        } catch let e as InferenceError {
            fail(e.description)
        } catch {
            // Argument-parser outcomes raised while running: help requests and usage errors.
            if FolioCommand.exitCode(for: error) == .success { FolioCommand.exit(withError: error) }
            usageError(error)
        }
    }

    /// Bad usage: one line naming the problem (see `folio COMMAND --help` for the rest), exit 2.
    static func usageError(_ error: Error) -> Never {
        var line = FolioCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
        if line.hasPrefix("Error: ") { line.removeFirst(7) }
        FileSystem.writeStderr("folio: error: \(line) (see folio --help)\n")
        FileSystem.exitProcess(2)
    }

    static func fail(_ message: String) -> Never {
        FileSystem.writeStderr("folio: error: \(message)\n")
        FileSystem.exitProcess(1)
    }
}

/// Errors of the command layer itself.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Writes stdout text in one go (one JSON document with --json).
func emit(_ text: String) {
    print(text)
}

/// Writes a piece of streamed text to stdout at once, without a newline.
func emitPart(_ text: String) {
    print(text, terminator: "")
    fflush(nil)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
final class Progress {
    let label: String
    let enabled: Bool
    private var last = -1

    init(_ label: String) {
        self.label = label
        enabled = FileSystem.stderrIsTerminal
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let pct = done * 100 / total
        guard pct != last else { return }
        last = pct
        let width = 30
        let filled = width * done / total
        FileSystem.writeStderr("\r\(label) [" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] \(pct)% (\(done)/\(total))")
        if done == total { FileSystem.writeStderr("\n") }
    }
}

/// `run`, `embed` and `perplexity` read Folio files: a model folder or a checkpoint in
/// another format gets one line saying how to convert it, instead of a format error.
func requireFolioModel(_ path: String) throws {
    if path.hasSuffix(FolioSharding.indexSuffix) { return }
    if FileSystem.isDirectory(path) {
        throw CLIError("\(path) is a folder; convert it to Folio first: folio convert \(path) model.folio")
    }
    guard let h = FileHandle(forReadingAtPath: path) else { return }  // the reader names what is wrong
    defer { try? h.close() }
    let head = [UInt8]((try? h.read(upToCount: 16)) ?? Data())
    if head.starts(with: FolioFormat.magic) { return }
    var kind: String? = nil
    if head.starts(with: Array("GGUF".utf8)) { kind = "GGUF" }
    else if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { kind = "PyTorch (zip)" }
    else if head.starts(with: [0x93] + Array("NUMPY".utf8)) { kind = "NumPy" }
    else if head.count >= 9, head[8] == UInt8(ascii: "{") { kind = "safetensors" }
    else if path.hasSuffix(".safetensors") || path.hasSuffix(".gguf") || path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") || path.hasSuffix(".npy") || path.hasSuffix(".npz") {
        kind = String(path.split(separator: ".").last ?? "")
    }
    if let kind {
        throw CLIError("\(path) is a \(kind) file, not Folio; convert it first: folio convert \(path) model.folio")
    }
}
