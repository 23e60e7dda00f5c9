import Foundation
import Testing
import Folio
@testable import FolioConvert

/// NumPy arrays: fixtures from Tools/reference/make_torch_numpy_fixtures.py, values checked
/// against a safetensors file that the same script wrote from the same arrays.
@Suite struct NumPyTests {
    static let names = ["f16", "f32", "f64", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "bool", "scalar", "empty", "model/embed"]

    @Test(arguments: ["arrays.npz", "arrays_compressed.npz"])
    func npzMatchesNumPyBitForBit(_ file: String) throws {
        let c = try Checkpoint.openNumPy(foreignFixture("numpy/" + file))
        #expect(c.format == .numpy)
        #expect(c.tensors.map(\.name) == Self.names)
        try expectSameTensors(c, reference: foreignFixture("numpy/arrays.safetensors"))
    }

    /// np.savez stores members: they are read zero-copy from the mapping; savez_compressed
    /// deflates them: they are inflated as a stream.
    @Test func storedMembersAreMappedAndDeflatedOnesInflated() throws {
        for (file, mapped) in [("arrays.npz", true), ("arrays_compressed.npz", false)] {
            let c = try Checkpoint.openNumPy(foreignFixture("numpy/" + file))
            for t in c.tensors {
                let s = try #require(t.storage as? ByteSourceStorage)
                if case .mapped = s.source { #expect(mapped, "\(t.name)") } else { #expect(!mapped, "\(t.name)") }
            }
        }
    }

    @Test(arguments: [("f32.npy", "f32"), ("f16_v2.npy", "f16"), ("f16_v3.npy", "f16"), ("scalar.npy", "scalar")])
    func npyFileIsOneTensorNamedAfterTheFile(_ file: String, _ reference: String) throws {
        let c = try Checkpoint.openNumPy(foreignFixture("numpy/" + file))
        #expect(c.tensors.count == 1)
        let t = c.tensors[0]
        #expect(t.name == String(file.dropLast(4)))
        let ref = try Checkpoint.open(foreignFixture("numpy/arrays.safetensors"))
        let r = try #require(ref.tensors.first { $0.name == reference })
        #expect(t.shape == r.shape && t.denseDType == r.denseDType)
        #expect(try denseBytes(t) == denseBytes(r))
        #expect(try floatBits(t) == floatBits(r))
    }

    /// Reads of any range of a deflated member, through windows much smaller than the member,
    /// give the member's bytes.
    @Test func inflatedWindowsServeAnyRange() throws {
        let path = foreignFixture("numpy/rows_compressed.npz")
        let map = try MappedFile(path: path)
        let member = try #require(try ZipMembers.list(path, map: map).first)
        #expect(member.path == "table.npy")
        var whole: [UInt8] = []
        try member.bytes.forEachPiece(0..<member.size, piece: 333) { whole.append(contentsOf: $0) }
        #expect(whole.count == member.size)
        let header = try NpyHeader.parse(Array(whole[..<128]), file: path, tensor: "table")
        let values = whole[header.dataOffset...].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(values == (0..<(300 * 16)).map(Float.init))
        let small = InflatedMember(archive: path, member: member.path, count: member.size, windowBytes: 1000)
        var rng = RNG(seed: 5)
        for _ in 0..<200 {
            let a = rng.below(member.size), n = rng.below(Swift.min(3000, member.size - a) + 1)
            let got = try small.withBytes(a..<(a + n)) { Array($0) }
            #expect(got == Array(whole[a..<(a + n)]))
        }
        var pieces: [UInt8] = []
        try small.stream(100..<5000, piece: 64) { pieces.append(contentsOf: $0) }
        #expect(pieces == Array(whole[100..<5000]))
    }

    /// Sequential row reads of a deflated tensor (as the converter makes them) give its values.
    @Test func compressedRowsReadInOrder() throws {
        let c = try Checkpoint.openNumPy(foreignFixture("numpy/rows_compressed.npz"))
        let t = try #require(c.tensors.first)
        #expect(t.shape == [300, 16])
        var out = [Float](repeating: 0, count: 300 * 16)
        try out.withUnsafeMutableBufferPointer { b in
            for r in stride(from: 0, to: 300, by: 7) {
                try t.readRows(start: r, count: Swift.min(7, 300 - r), into: b.baseAddress! + r * 16)
            }
        }
        #expect(out == (0..<(300 * 16)).map(Float.init))
    }

    /// A zip written byte by byte by the fixture script (the control for the crafted zips of
    /// the corrupt corpus, which differ from it in one directory field each).
    @Test func handWrittenZipIsRead() throws {
        let c = try Checkpoint.openNumPy(foreignFixture("numpy/handmade.npz"))
        #expect(c.tensors.map(\.name) == ["a"])
        #expect(try floatBits(c.tensors[0]) == [0, 1, 2].map { Float($0).bitPattern })
    }

    @Test func corruptCorpusIsRejected() throws {
        let corpus = try corruptCorpus("numpy/corrupt")
        #expect(corpus.count >= 24)
        for (path, phrase) in corpus {
            let e = #expect(throws: ConvertError.self, "\(path)") { try Checkpoint.openNumPy(path) }
            let text = e?.description ?? ""
            #expect(text.hasPrefix(path + ": "), "\(text)")
            #expect(text.dropFirst(path.count).contains(phrase), "\(path): \(text)")
            #expect(!text.contains("\n"))
        }
    }

    @Test func objectArrayInNpzIsRefusedByName() throws {
        let path = foreignFixture("numpy/corrupt/object_array.npz")
        let e = #expect(throws: ConvertError.self) { try Checkpoint.openNumPy(path) }
        #expect(e?.description == "\(path): tensor 'names': object array (dtype '|O') holds pickled Python objects; Folio refuses them")
    }

    static let goodHeader = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".utf8)

    func npy(_ dict: [UInt8], version: UInt8 = 1) -> [UInt8] {
        var h = dict
        let pre = version == 1 ? 10 : 12
        while (pre + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0A)
        let len = version == 1 ? [UInt8(h.count & 0xFF), UInt8(h.count >> 8)] : withUnsafeBytes(of: UInt32(h.count).littleEndian) { Array($0) }
        return NpyHeader.magic + [version, 0] + len + h
    }

    @Test func headerParsesEveryVersionAndShape() throws {
        for v: UInt8 in [1, 2, 3] {
            let bytes = npy(Self.goodHeader, version: v)
            let h = try NpyHeader.parse(bytes, file: "a.npy", tensor: "a")
            #expect(h == NpyHeader(dtype: .f32, shape: [2, 3], dataOffset: bytes.count))
            #expect(bytes.count % 64 == 0)
        }
        let scalar = try NpyHeader.parse(npy(Array("{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": ()}".utf8)), file: "a.npy", tensor: "a")
        #expect(scalar.shape == [] && scalar.dtype == .bool)
        let one = try NpyHeader.parse(npy(Array("{'shape': (7,), 'fortran_order': False, 'descr': '<u8'}".utf8)), file: "a.npy", tensor: "a")
        #expect(one.shape == [7] && one.dtype == .u64)
    }

    /// Random damage to a header: the parser either accepts it or throws ConvertError.
    @Test func randomHeaderDamageNeverTraps() {
        let valid = npy(Self.goodHeader)
        var rng = RNG(seed: 19)
        let alphabet = Array("{}()[]:,'\"0123456789-TrueFalse<>|fiub ".utf8) + [0x0A, 0x00, 0xFF]
        for trial in 0..<4000 {
            var bytes = valid
            for _ in 0..<(1 + rng.below(3)) {
                let pos = rng.below(bytes.count)
                bytes[pos] = trial % 2 == 0 ? alphabet[rng.below(alphabet.count)] : UInt8(truncatingIfNeeded: rng.next())
            }
            if trial % 5 == 0 { bytes = Array(bytes[..<rng.below(bytes.count)]) }
            do {
                _ = try NpyHeader.parse(bytes, file: "a.npy", tensor: "a")
            } catch is ConvertError {
            } catch {
                Issue.record("trial \(trial): \(error)")
            }
        }
    }
}

@Suite struct NumPyMutationTests {
    @Test(arguments: ["numpy/arrays.npz", "numpy/arrays_compressed.npz", "numpy/f32.npy"])
    func randomFileDamageNeverTraps(_ fixture: String) throws {
        try FolioConvertTests.randomFileDamageNeverTraps(fixture, trials: 600, seed: 9) { try Checkpoint.openNumPy($0) }
    }
}
