import Foundation
import Testing
import FolioConvert
import FolioInference

/// Every input the fuzzers (Tools/fuzz) ever crashed on, and their minimized corpora, run
/// through the same entry points: each must now be handled without a trap.
@Suite struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path

    func inputs(_ target: String, corpus: Bool) -> [[UInt8]] {
        let dirs = [Self.root + "/" + target + "/crashes"] + (corpus ? [Self.root + "/" + target + "/corpus"] : [])
        return dirs.flatMap { d in
            ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted().compactMap {
                FileManager.default.contents(atPath: d + "/" + $0).map { [UInt8]($0) }
            }
        }
    }

    @Test func tokenizerCrashesAreFixed() throws {
        let crashes = inputs("FuzzTokenizer", corpus: false)
        #expect(!crashes.isEmpty)
        for bytes in crashes + inputs("FuzzTokenizer", corpus: true) {
            if let t = try? WordPieceTokenizer(json: bytes, file: "fuzz.json") {
                _ = t.encode("Héllo, wörld! 你好 [CLS] tokens ##x", maxLength: 64)
            }
        }
    }

    @Test func parserCorporaRunClean() throws {
        for bytes in inputs("FuzzSafetensors", corpus: true) { bytes.withUnsafeBytes { _ = FuzzEntryPoints.safetensors($0) } }
        for bytes in inputs("FuzzGGUF", corpus: true) { bytes.withUnsafeBytes { _ = FuzzEntryPoints.gguf($0) } }
        for bytes in inputs("FuzzPickle", corpus: true) { _ = FuzzEntryPoints.pickle(bytes) }
        for bytes in inputs("FuzzNumPy", corpus: true) { _ = FuzzEntryPoints.npyHeader(bytes) }
        for bytes in inputs("FuzzZip", corpus: true) { bytes.withUnsafeBytes { _ = FuzzEntryPoints.zipDirectory($0) } }
    }
}
