import Dispatch
import Testing
@testable import Folio

@Suite struct ConcurrencyTests {
    /// Many threads gathering rows from one open file get what one thread gets.
    @Test func concurrentGathersMatchASingleThread() throws {
        let dir = TempDir()
        let (p, _) = try sampleFile(in: dir)
        let f = try FolioFile(path: p)
        let t = try f.requireTensor("emb")
        var g = Gaussian(seed: 8)
        let batches = (0..<64).map { _ in (0..<50).map { _ in Int(g.nextUInt() % UInt64(t.rowCount)) } }
        let expected: [[Float]] = try batches.map { rows in
            var out = [Float](repeating: 0, count: rows.count * t.rowWidth)
            try out.withUnsafeMutableBufferPointer { try f.gatherRows(t, rows: rows, into: $0) }
            return out
        }
        // One output region per iteration, written by that iteration only.
        let width = 50 * t.rowWidth, n = batches.count * 8
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: n * width)
        out.initialize(repeating: .nan)
        defer { out.deallocate() }
        struct Shared: @unchecked Sendable { let out: UnsafeMutableBufferPointer<Float> }
        let shared = Shared(out: out)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let region = UnsafeMutableBufferPointer(rebasing: shared.out[(i * width)..<((i + 1) * width)])
            try? f.gatherRows(t, rows: batches[i % batches.count], into: region)
        }
        for i in 0..<n {
            #expect(Array(out[(i * width)..<((i + 1) * width)]) == expected[i % batches.count], "iteration \(i)")
        }
    }
}
