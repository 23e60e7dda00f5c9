import Testing
@testable import Folio

/// Random damage to a valid file: opening, reading and verifying must either succeed or
/// throw FolioError; a trap would end the test process.
@Suite struct MutationTests {
    @Test func randomByteDamageNeverTraps() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let original = readBytes(p)
        var g = Gaussian(seed: 2024)
        var opened = 0
        for trial in 0..<1500 {
            var bytes = original
            let edits = 1 + Int(g.nextUInt() % 4)
            for _ in 0..<edits {
                // Bias edits towards the preamble and header, where parsing happens.
                let limit = trial % 2 == 0 ? min(bytes.count, 4096) : bytes.count
                let pos = Int(g.nextUInt() % UInt64(limit))
                bytes[pos] = UInt8(truncatingIfNeeded: g.nextUInt())
            }
            if trial % 5 == 0 { bytes = Array(bytes[..<Int(g.nextUInt() % UInt64(bytes.count))]) }
            do {
                let f = try openFolio(bytes, in: dir, name: "m.folio")
                opened += 1
                _ = f.verify()
                for t in f.tensors where t.rowCount > 0 && t.rowWidth > 0 {
                    var out = [Float](repeating: 0, count: t.rowWidth)
                    try out.withUnsafeMutableBufferPointer { try f.readRow(t, t.rowCount - 1, into: $0) }
                }
            } catch is FolioError {
                continue
            }
        }
        #expect(opened > 0)  // damage to data bytes leaves the file openable
    }

    @Test func damagedJSONHeadersWithValidHashesNeverTrap() throws {
        // Rewrite the header text itself (re-hashing it), so the parser sees the damage.
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let f = try FolioFile(path: p)
        let original = readBytes(p)
        let header = Array(original[32..<f.header.dataOffset])
        let data = Array(original[f.header.dataOffset..<f.header.trailerOffset])
        var g = Gaussian(seed: 77)
        let alphabet = Array("{}[]:,\"0123456789-e.x \\u".utf8)
        for _ in 0..<1500 {
            var h = header
            for _ in 0..<(1 + Int(g.nextUInt() % 3)) {
                let pos = Int(g.nextUInt() % UInt64(h.count))
                h[pos] = g.nextUInt() % 2 == 0 ? alphabet[Int(g.nextUInt() % UInt64(alphabet.count))] : UInt8(truncatingIfNeeded: g.nextUInt())
            }
            let bytes = craftFolio(headerBytes: h, data: data, chunkSize: 4096)
            _ = try? openFolio(bytes, in: dir, name: "j.folio")
        }
    }
}

