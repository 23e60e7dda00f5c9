import Foundation
import Testing
import Folio
@testable import FolioConvert

/// Path of a file under Tests/Fixtures.
func foreignFixture(_ rel: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(rel).path
}

/// A tensor's dense bytes, streamed in small pieces to exercise the piecing.
func denseBytes(_ t: SourceTensor, piece: Int = 7) throws -> [UInt8] {
    var out: [UInt8] = []
    try t.forEachDensePiece(piece: piece) { out.append(contentsOf: $0) }
    return out
}

/// A tensor's values as float32 bit patterns, read one row at a time.
func floatBits(_ t: SourceTensor) throws -> [UInt32] {
    var out: [UInt32] = []
    var row = [Float](repeating: 0, count: Swift.max(1, t.rowWidth))
    for r in 0..<(t.shape.isEmpty ? 1 : t.rowCount) where t.rowWidth > 0 {
        try row.withUnsafeMutableBufferPointer { try t.readRows(start: r, count: 1, into: $0.baseAddress!) }
        out += row.map(\.bitPattern)
    }
    return out
}

/// Every tensor of `got` equals the reference safetensors file tensor for tensor: dtype,
/// shape, raw bytes and float32 values (bit patterns).
func expectSameTensors(_ got: Checkpoint, reference: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let ref = try Checkpoint.open(reference)
    #expect(Set(got.tensors.map(\.name)) == Set(ref.tensors.map(\.name)), sourceLocation: sourceLocation)
    #expect(got.tensors.count == ref.tensors.count, sourceLocation: sourceLocation)
    for r in ref.tensors {
        guard let t = got.tensors.first(where: { $0.name == r.name }) else { continue }
        #expect(t.denseDType == r.denseDType, "\(r.name)", sourceLocation: sourceLocation)
        #expect(t.shape == r.shape, "\(r.name)", sourceLocation: sourceLocation)
        #expect(t.storedBytes == r.storedBytes, "\(r.name)", sourceLocation: sourceLocation)
        #expect(try denseBytes(t) == denseBytes(r), "\(r.name)", sourceLocation: sourceLocation)
        #expect(try floatBits(t) == floatBits(r), "\(r.name)", sourceLocation: sourceLocation)
        t.release()
    }
}

/// The malformed files of a corpus folder and the phrase each one's error must contain
/// (from its expected.json).
func corruptCorpus(_ folder: String) throws -> [(path: String, phrase: String)] {
    let dir = foreignFixture(folder)
    let data = try #require(FileManager.default.contents(atPath: dir + "/expected.json"))
    let map = try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0 != "expected.json" }
    #expect(Set(files) == Set(map.keys), "every corrupt file has an expected phrase")
    return map.keys.sorted().map { (dir + "/" + $0, map[$0]!) }
}

/// Damages copies of `fixture` at random (overwritten bytes, truncations) and opens each with
/// `open`, reading every tensor: each attempt must either succeed or throw ConvertError.
func randomFileDamageNeverTraps(_ fixture: String, trials: Int, seed: UInt64, open: (String) throws -> Checkpoint) throws {
    let valid = readBytes(foreignFixture(fixture))
    let dir = TempDir()
    var rng = RNG(seed: seed)
    var rejected = 0
    for trial in 0..<trials {
        var bytes = valid
        for _ in 0..<(1 + rng.below(4)) {
            bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
        }
        if trial % 6 == 0 { bytes = Array(bytes[..<rng.below(bytes.count)]) }
        let path = dir.file("damaged-\(trial % 4)")
        writeBytes(bytes, to: path)
        do {
            let c = try open(path)
            for t in c.tensors {
                _ = try denseBytes(t, piece: 1 << 12)
                _ = try floatBits(t)
            }
        } catch is ConvertError {
            rejected += 1
        } catch {
            Issue.record("trial \(trial): \(type(of: error)): \(error)")
        }
    }
    #expect(rejected > 0)
}

/// Hands values to `DispatchQueue.concurrentPerform` workers that touch disjoint parts of them.
struct TestBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
