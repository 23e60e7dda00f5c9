import Foundation
import Testing
import FolioConvert

/// Every input the parser fuzzers (Tools/fuzz) crashed on, and their minimized corpora, run
/// through the same entry points: each must be handled without a trap.
@Suite struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path

    /// The reproducers and minimized corpus of a fuzz target.
    func inputs(_ target: String) -> [[UInt8]] {
        ["crashes", "corpus"].flatMap { sub -> [[UInt8]] in
            let d = Self.root + "/" + target + "/" + sub
            return ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted().compactMap {
                FileManager.default.contents(atPath: d + "/" + $0).map { [UInt8]($0) }
            }
        }
    }

    @Test func parserCorporaRunClean() throws {
        for bytes in inputs("FuzzSafetensors") { bytes.withUnsafeBytes { _ = FuzzEntryPoints.safetensors($0) } }
        for bytes in inputs("FuzzGGUF") { bytes.withUnsafeBytes { _ = FuzzEntryPoints.gguf($0) } }
        for bytes in inputs("FuzzPickle") { _ = FuzzEntryPoints.pickle(bytes) }
        for bytes in inputs("FuzzNumPy") { _ = FuzzEntryPoints.npyHeader(bytes) }
        for bytes in inputs("FuzzZip") { bytes.withUnsafeBytes { _ = FuzzEntryPoints.zipDirectory($0) } }
    }
}
