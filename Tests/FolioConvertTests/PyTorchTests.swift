import Foundation
import Testing
import Folio
@testable import FolioConvert

/// PyTorch checkpoints: fixtures from Tools/reference/make_torch_numpy_fixtures.py, values
/// checked against safetensors files that the same script wrote from the same tensors.
@Suite struct PyTorchTests {
    static let stateDictNames = [
        "layer.weight", "layer.bias", "half", "bf16", "f64", "ids", "i32", "i16", "i8", "u8", "mask",
        "transposed", "strided", "permuted", "slice", "scalar", "empty", "fp8", "u16",
    ]

    @Test func stateDictMatchesTorchBitForBit() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/state_dict.pt"))
        #expect(c.format == .pytorch)
        #expect(c.tensors.map(\.name) == Self.stateDictNames)
        try expectSameTensors(c, reference: foreignFixture("pytorch/state_dict.safetensors"))
        let dtypes = Dictionary(uniqueKeysWithValues: c.tensors.map { ($0.name, $0.denseDType) })
        #expect(dtypes["half"] == .f16 && dtypes["bf16"] == .bf16 && dtypes["ids"] == .i64 && dtypes["fp8"] == .f8e4m3 && dtypes["u16"] == .u16)
    }

    @Test func pickleProtocol4MatchesTorch() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/protocol4.pt"))
        #expect(c.tensors.map(\.name) == Self.stateDictNames)
        try expectSameTensors(c, reference: foreignFixture("pytorch/state_dict.safetensors"))
    }

    @Test func deflatedStoragesMatchTorch() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/deflated.pt"))
        try expectSameTensors(c, reference: foreignFixture("pytorch/state_dict.safetensors"))
    }

    /// Contiguous tensors are views of the mapped archive; views with other strides are gathered.
    @Test func contiguousTensorsAreZeroCopy() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/state_dict.pt"))
        for t in c.tensors {
            let strided = ["transposed", "strided", "permuted"].contains(t.name)
            #expect((t.storage is PyTorchStridedStorage) == strided, "\(t.name)")
            if let s = t.storage as? ByteSourceStorage, case .inflated = s.source { Issue.record("\(t.name) is not mapped") }
        }
    }

    @Test func nestedCheckpointIsFlattenedWithDottedNames() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/nested.bin"))
        #expect(c.tensors.map(\.name) == ["model.0.weight", "model.0.bias", "model.1.weight", "model.1.bias", "params.0"])
        try expectSameTensors(c, reference: foreignFixture("pytorch/nested.safetensors"))
    }

    /// Members written by Python's zipfile are not aligned; values are read all the same.
    @Test func unalignedStorageIsRead() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/handmade.pt"))
        #expect(c.tensors.map(\.name) == ["w"])
        #expect(c.tensors[0].shape == [2, 3])
        #expect(try floatBits(c.tensors[0]) == (0..<6).map { Float($0).bitPattern })
    }

    @Test func rowsAtAnOffsetAreRead() throws {
        let c = try Checkpoint.openPyTorch(foreignFixture("pytorch/state_dict.pt"))
        let ref = try Checkpoint.open(foreignFixture("pytorch/state_dict.safetensors"))
        for name in ["layer.weight", "transposed", "permuted"] {
            let t = try #require(c.tensors.first { $0.name == name })
            let r = try #require(ref.tensors.first { $0.name == name })
            var a = [Float](repeating: 0, count: 2 * t.rowWidth), b = a
            try a.withUnsafeMutableBufferPointer { try t.readRows(start: 1, count: 2, into: $0.baseAddress!) }
            try b.withUnsafeMutableBufferPointer { try r.readRows(start: 1, count: 2, into: $0.baseAddress!) }
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name)")
            var bytes: [UInt8] = []
            try t.forDenseRows(start: 1, count: 2) { bytes = Array($0) }
            var refBytes: [UInt8] = []
            try r.forDenseRows(start: 1, count: 2) { refBytes = Array($0) }
            #expect(bytes == refBytes, "\(name)")
        }
    }

    /// Row reads from several threads at once (as the converter's encoding threads make them
    /// on mapped sources) agree with single-threaded reads; deflated storages are thread-safe too.
    @Test(arguments: ["pytorch/state_dict.pt", "pytorch/deflated.pt"])
    func concurrentRowReadsAgree(_ file: String) throws {
        let c = try Checkpoint.openPyTorch(foreignFixture(file))
        for t in c.tensors where t.rowWidth > 0 && !t.shape.isEmpty {
            #expect(t.storage.supportsConcurrentReads == !file.contains("deflated"), "\(t.name)")
            let expected = try floatBits(t)
            let rows = t.rowCount, width = t.rowWidth
            let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * width)
            defer { out.deallocate() }
            let failures = TestBox(UnsafeMutablePointer<Int>.allocate(capacity: rows))
            defer { failures.value.deallocate() }
            let shared = TestBox((out.baseAddress!, t))
            DispatchQueue.concurrentPerform(iterations: rows) { r in
                let (base, t) = shared.value
                do { try t.readRows(start: r, count: 1, into: base + r * width); failures.value[r] = 0 } catch { failures.value[r] = 1 }
            }
            #expect((0..<rows).allSatisfy { failures.value[$0] == 0 })
            #expect(Array(out).map(\.bitPattern) == expected, "\(t.name)")
        }
    }

    /// A pickle whose reduce would run a shell command is refused at the global, naming it,
    /// and nothing runs: the marker file that the command would create never appears. (The
    /// fixture script checks that Python's own pickle does create it.)
    @Test(arguments: [
        ("os_system.pt", "posix.system"), ("os_system_protocol4.pt", "posix.system"),
        ("builtins_eval.pt", "__builtin__.eval"), ("subprocess_call.pt", "subprocess.call"),
    ])
    func maliciousPickleRunsNothing(_ file: String, _ global: String) throws {
        let marker = "/tmp/folio_pickle_MARKER"
        try? FileManager.default.removeItem(atPath: marker)
        let path = foreignFixture("pytorch/corrupt/" + file)
        let e = #expect(throws: ConvertError.self) { try Checkpoint.openPyTorch(path) }
        let text = e?.description ?? ""
        #expect(text.contains("global '\(global)' is not allowed"), "\(text)")
        #expect(text.contains(path) && text.contains("data.pkl at byte"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func legacyFormatIsRefusedClearly() throws {
        let e = #expect(throws: ConvertError.self) { try Checkpoint.openPyTorch(foreignFixture("pytorch/corrupt/legacy.pt")) }
        #expect(e?.description.hasSuffix("legacy PyTorch format (before 1.6) is not supported; re-save with torch.save") == true)
    }

    /// Every file of the corrupt corpus gives a ConvertError naming the file and its defect.
    @Test func corruptCorpusIsRejected() throws {
        let corpus = try corruptCorpus("pytorch/corrupt")
        #expect(corpus.count >= 25)
        for (path, phrase) in corpus {
            let e = #expect(throws: ConvertError.self, "\(path)") { try Checkpoint.openPyTorch(path) }
            let text = e?.description ?? ""
            #expect(text.hasPrefix(path + ": "), "\(text)")
            #expect(text.dropFirst(path.count).contains(phrase), "\(path): \(text)")
            #expect(!text.contains("\n"))
        }
    }

    // MARK: The unpickler alone

    func unpickle(_ bytes: [UInt8]) throws -> [(name: String, tensor: TorchTensorRef)] {
        let u = RestrictedUnpickler(bytes: bytes, file: "m.pt", member: "archive/data.pkl")
        defer { u.tearDown() }
        return try u.tensors(of: try u.load())
    }

    /// The data.pkl of the real state dict.
    func statePickle() throws -> [UInt8] {
        let path = foreignFixture("pytorch/state_dict.pt")
        let map = try MappedFile(path: path)
        let m = try #require(try ZipMembers.list(path, map: map).first { $0.path.hasSuffix("/data.pkl") })
        return try m.bytes.withBytes(0..<m.size) { Array($0) }
    }

    @Test func everyTruncationIsRejected() throws {
        let bytes = try statePickle()
        #expect(try unpickle(bytes).count == Self.stateDictNames.count)
        for n in 0..<bytes.count {
            #expect(throws: ConvertError.self, "prefix \(n)") { try unpickle(Array(bytes[..<n])) }
        }
    }

    /// Random damage to a real pickle: the unpickler either accepts it or throws ConvertError.
    @Test func randomDamageNeverTraps() throws {
        let valid = try statePickle()
        var rng = RNG(seed: 77)
        let interesting: [UInt8] = [0x28, 0x29, 0x2E, 0x4A, 0x4B, 0x4D, 0x51, 0x52, 0x58, 0x5D, 0x61, 0x62, 0x63, 0x65, 0x68,
                                    0x6A, 0x71, 0x72, 0x73, 0x74, 0x75, 0x7D, 0x85, 0x86, 0x87, 0x8A, 0x8B, 0x8C, 0x93, 0x94, 0x95, 0xFF]
        var accepted = 0
        for trial in 0..<4000 {
            var bytes = valid
            for _ in 0..<(1 + rng.below(3)) {
                let pos = rng.below(bytes.count)
                bytes[pos] = trial % 2 == 0 ? interesting[rng.below(interesting.count)] : UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                _ = try unpickle(bytes)
                accepted += 1
            } catch is ConvertError {
            } catch {
                Issue.record("trial \(trial): \(error)")
            }
        }
        #expect(accepted < 4000)
    }

    @Test func allowListIsExact() {
        #expect(PickleGlobal(module: "collections", name: "OrderedDict") == .orderedDict)
        #expect(PickleGlobal(module: "torch", name: "BFloat16Storage") == .storageType(.bf16))
        #expect(PickleGlobal(module: "torch", name: "bfloat16") == .dtype(.bf16))
        for (m, n) in [("posix", "system"), ("os", "system"), ("builtins", "eval"), ("builtins", "exec"), ("torch", "load"),
                       ("torch._utils", "_rebuild_qtensor"), ("torch", "ComplexFloatStorage"), ("collections", "OrderedDict.fromkeys"),
                       ("torch.storage", "_load_from_bytes"), ("__builtin__", "getattr"), ("torch._utils", "_rebuild_device_tensor_from_numpy")] {
            #expect(PickleGlobal(module: m, name: n) == nil, "\(m).\(n)")
        }
    }

    @Test func refusedOpcodesAreNamed() {
        let cases: [([UInt8], String)] = [
            ([0x80, 0x02, 0x69] + Array("os\nsystem\n".utf8), "INST"),
            ([0x80, 0x02, 0x82, 0x01], "EXT1"),
            ([0x80, 0x02, 0x50] + Array("x\n".utf8), "PERSID"),
            ([0x80, 0x02, 0x8F], "EMPTY_SET"),
            ([0x80, 0x06], "protocol 6"),
            ([0x80, 0x02, 0x4E, 0x4E, 0x2E], "values and 0 marks left"),
        ]
        for (bytes, phrase) in cases {
            let e = #expect(throws: ConvertError.self) { try unpickle(bytes) }
            #expect(e?.description.contains(phrase) == true, "\(phrase): \(e?.description ?? "")")
        }
    }

    /// A chain of lists deeper than the call stack (built through the memo) is released
    /// without recursion and refused when flattened.
    @Test func deepContainerChainsDoNotOverflowTheStack() {
        // L0 in memo 0, then for each i: get L_i, make L_{i+1} (memo i+1), append it to L_i, pop.
        var p: [UInt8] = [0x80, 0x02, 0x5D, 0x72, 0, 0, 0, 0, 0x30]
        let depth = 200_000
        for i in 0..<depth {
            // push L_i (memo i), push new list, store it as memo i+1, APPEND, POP L_i
            p += [0x6A] + withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) }
            p += [0x5D, 0x72] + withUnsafeBytes(of: UInt32(i + 1).littleEndian) { Array($0) }
            p += [0x61, 0x30]
        }
        p += [0x6A, 0, 0, 0, 0, 0x2E]
        let e = #expect(throws: ConvertError.self) { try unpickle(p) }
        #expect(e?.description.contains("nested deeper") == true, "\(e?.description ?? "")")
    }

    @Test func contiguityIgnoresUnitDimensions() {
        #expect(Checkpoint.isContiguous(shape: [2, 3], stride: [3, 1]))
        #expect(Checkpoint.isContiguous(shape: [1, 3], stride: [99, 1]))
        #expect(Checkpoint.isContiguous(shape: [], stride: []))
        #expect(!Checkpoint.isContiguous(shape: [3, 2], stride: [1, 3]))
        #expect(!Checkpoint.isContiguous(shape: [4], stride: [3]))
    }
}

@Suite struct PyTorchMutationTests {
    @Test(arguments: ["pytorch/state_dict.pt", "pytorch/deflated.pt", "pytorch/nested.bin"])
    func randomFileDamageNeverTraps(_ fixture: String) throws {
        try FolioConvertTests.randomFileDamageNeverTraps(fixture, trials: 600, seed: 3) { try Checkpoint.openPyTorch($0) }
    }
}
