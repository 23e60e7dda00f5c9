import Foundation
import Testing
import Folio
@testable import FolioConvert

func fixture(_ rel: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(rel).path
}

@Suite struct GGUFTests {
    /// Every type's values equal gguf-py's dequantization bit for bit (fixtures from
    /// Tools/reference/make_gguf_fixtures.py).
    @Test func everyTypeMatchesGGUFPyBitForBit() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: fixture("gguf/types.gguf"), to: dir.file("out.safetensors"))
        let expected = try SafetensorsFile(path: fixture("gguf/expected.safetensors"))
        let got = try SafetensorsFile(path: dir.file("out.safetensors"))
        #expect(Set(expected.header.entries.map(\.name)) == Set(got.header.entries.map(\.name)))
        #expect(expected.header.entries.count == 18)
        for e in expected.header.entries {
            let g = try #require(got.header.entries.first { $0.name == e.name })
            if e.name == "plain.bf16" {
                // Kept as BF16 (bit-exact); gguf-py widens it to F32 when dequantizing.
                #expect(g.dtype == .bf16)
                let bits = try got.withBytes(of: g) { Array($0.assumingMemoryBound(to: UInt16.self)) }
                let wide = try expected.withBytes(of: e) { Array($0.assumingMemoryBound(to: UInt32.self)) }
                #expect(bits.map { UInt32($0) << 16 } == wide)
                continue
            }
            #expect(g.dtype == e.dtype, "\(e.name)")
            #expect(g.shape == e.shape, "\(e.name)")
            let same = try got.withBytes(of: g) { Array($0) } == expected.withBytes(of: e) { Array($0) }
            #expect(same, "\(e.name) differs from gguf-py")
        }
    }

    @Test func metadataIsKeptAsJSON() throws {
        let c = try Checkpoint.open(fixture("gguf/types.gguf"))
        let m = Dictionary(uniqueKeysWithValues: c.metadata!.map { ($0.0, $0.1) })
        #expect(m["gguf.general.architecture"] == "\"llama\"")
        #expect(m["gguf.test.u64"] == "9223372036854775809")
        #expect(m["gguf.test.strings"] == "[\"a\",\"bb\",\"ccc\"]")
        #expect(m["gguf.test.bool"] == "true")
        #expect(m["gguf.test.string"] == "\"héllo\"")
    }

    @Test func keepQuantizedCarriesQ8_0Q4_0AndQ4_1WithoutLoss() throws {
        let dir = TempDir()
        let options = ConversionOptions(keepQuantized: true)
        _ = try Converter(options: options).convert(from: fixture("gguf/q8_0.gguf"), to: dir.file("q.folio"))
        let f = try FolioFile(path: dir.file("q.folio"))
        #expect(try f.requireTensor("token_embd.weight").encoding == .int8(group: 32))
        let expected = try SafetensorsFile(path: fixture("gguf/q8_0.expected.safetensors"))
        for e in expected.header.entries {
            let t = try f.requireTensor(e.name)
            var out = [Float](repeating: 0, count: t.elementCount)
            try out.withUnsafeMutableBufferPointer { try f.readRows(t, start: 0, count: t.rowCount, into: $0.baseAddress!) }
            let same = try out.withUnsafeBytes { Array($0) } == expected.withBytes(of: e) { Array($0) }
            #expect(same, "\(e.name)")
        }
        // Q4_0 and Q4_1 map onto int4/g32.
        _ = try Converter(options: options).convert(from: fixture("gguf/types.gguf"), to: dir.file("t.folio"))
        let t = try FolioFile(path: dir.file("t.folio"))
        let all = try SafetensorsFile(path: fixture("gguf/expected.safetensors"))
        for name in ["quant.Q4_0", "quant.Q4_1", "quant.Q8_0"] {
            let info = try t.requireTensor(name)
            #expect(info.encoding.isQuantized)
            var out = [Float](repeating: 0, count: info.elementCount)
            try out.withUnsafeMutableBufferPointer { try t.readRows(info, start: 0, count: info.rowCount, into: $0.baseAddress!) }
            let e = try #require(all.header.entries.first { $0.name == name })
            // Numerically equal; for Q4_0 a zero may differ in sign: ggml computes d * (q - 8),
            // which is -0.0 when d < 0 and q = 8, while int4's d * q + (-8 d) gives +0.0.
            let reference = try all.withBytes(of: e) { Array($0.assumingMemoryBound(to: Float.self)) }
            #expect(out == reference, "\(name)")
            if name != "quant.Q4_0" {
                let same = try out.withUnsafeBytes { Array($0) } == all.withBytes(of: e) { Array($0) }
                #expect(same, "\(name) is not bit-identical")
            }
        }
        #expect(try t.requireTensor("quant.Q4_K").encoding == .plain(.f32))
    }

    @Test func inspectDescribesGGUF() throws {
        let doc = try Inspector.describe(fixture("gguf/types.gguf"))
        #expect(doc["format"]?.stringValue == "gguf" && doc["version"]?.intValue == 3)
        let q = try #require(doc["tensors"]?.arrayValue?.first { $0["name"]?.stringValue == "quant.Q4_K" })
        #expect(q["dtype"]?.stringValue == "Q4_K")
        #expect(q["shape"]?.arrayValue?.compactMap(\.intValue) == [3, 512])
        #expect(q["nbytes"]?.intValue == 3 * 2 * 144)
        #expect(doc["metadata"]?["test.ints"] == .array([.number("1"), .number("2"), .number("3")]))
    }
}

/// Hand-built GGUF files with one defect each.
@Suite struct MalformedGGUFTests {
    struct Builder {
        var bytes: [UInt8] = Array("GGUF".utf8)
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        mutating func pad(_ a: Int) { while bytes.count % a != 0 { bytes.append(0) } }
    }

    /// A valid file: one KV, one F32 tensor [2, 32] (ne0 = 32), data aligned to 32.
    static func valid(dims: [UInt64] = [32, 2], type: UInt32 = 0, offset: UInt64 = 0, tensorCount: UInt64 = 1, kvCount: UInt64 = 1,
                      kvType: UInt32 = 8, nDims: UInt32? = nil, dataBytes: Int = 256, extraTensor: Bool = false) -> [UInt8] {
        var b = Builder()
        b.u32(3); b.u64(tensorCount); b.u64(kvCount)
        b.str("general.architecture"); b.u32(kvType); b.str("llama")
        b.str("w"); b.u32(nDims ?? UInt32(dims.count)); for d in dims { b.u64(d) }; b.u32(type); b.u64(offset)
        if extraTensor { b.str("v"); b.u32(1); b.u64(32); b.u32(0); b.u64(64) }
        b.pad(32)
        b.bytes += [UInt8](repeating: 0, count: dataBytes)
        return b.bytes
    }

    func check(_ bytes: [UInt8], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let e = #expect(throws: ConvertError.self, sourceLocation: sourceLocation) {
            try bytes.withUnsafeBytes { try GGUFHeader.parse($0, file: "m.gguf") }
        }
        #expect(e?.description.contains(expected) == true, "\(e?.description ?? "no error") lacks '\(expected)'", sourceLocation: sourceLocation)
        #expect(e?.description.hasPrefix("m.gguf") == true, sourceLocation: sourceLocation)
    }

    @Test func validFileParses() throws {
        let h = try MalformedGGUFTests.valid().withUnsafeBytes { try GGUFHeader.parse($0, file: "m.gguf") }
        #expect(h.tensors.first?.shape == [2, 32])
    }

    @Test func truncationAtEveryByteIsRejected() {
        let v = MalformedGGUFTests.valid()
        for cut in 0..<(v.count - 256) where cut < v.count - 256 {
            #expect(throws: ConvertError.self, "cut at \(cut)") { try Array(v[..<cut]).withUnsafeBytes { try GGUFHeader.parse($0, file: "m.gguf") } }
        }
        check(Array(v[..<(v.count - 1)]), "past the end")
    }

    @Test func defectsAreNamed() {
        check(Array("GGML".utf8) + [UInt8](repeating: 0, count: 40), "bad magic")
        var v1 = MalformedGGUFTests.valid(); v1[4] = 1
        check(v1, "version 1")
        check(MalformedGGUFTests.valid(tensorCount: UInt64.max), "tensor_count")
        check(MalformedGGUFTests.valid(kvCount: 1 << 40), "kv_count")
        check(MalformedGGUFTests.valid(kvType: 99), "unknown metadata value type")
        check(MalformedGGUFTests.valid(type: 99), "not supported")
        check(MalformedGGUFTests.valid(type: 16), "IQ2_XXS")
        check(MalformedGGUFTests.valid(dims: [31, 2], type: 8), "block size")
        check(MalformedGGUFTests.valid(offset: 8), "alignment")
        check(MalformedGGUFTests.valid(offset: 1 << 62), "out of range")
        check(MalformedGGUFTests.valid(offset: 1 << 20), "expected 0")
        check(MalformedGGUFTests.valid(dataBytes: 100), "past the end")
        check(MalformedGGUFTests.valid(dims: [1 << 40, 1 << 40]), "overflow")
        check(MalformedGGUFTests.valid(dims: [32, UInt64.max]), "too large")
        check(MalformedGGUFTests.valid(dims: [], nDims: 0), "n_dims")
        check(MalformedGGUFTests.valid(nDims: 5), "n_dims")
        check(MalformedGGUFTests.valid(dims: [32, 4], tensorCount: 2, dataBytes: 1024, extraTensor: true), "expected 512")
        var longString = MalformedGGUFTests.valid()
        longString.replaceSubrange(24..<32, with: withUnsafeBytes(of: UInt64.max.littleEndian) { Array($0) })
        check(longString, "string length")
        var badBool = Builder()
        badBool.u32(3); badBool.u64(0); badBool.u64(1); badBool.str("b"); badBool.u32(7); badBool.bytes.append(2)
        check(badBool.bytes, "bool")
        var bigArray = Builder()
        bigArray.u32(3); bigArray.u64(0); bigArray.u64(1); bigArray.str("a"); bigArray.u32(9); bigArray.u32(4); bigArray.u64(1 << 50)
        check(bigArray.bytes, "array count")
        var nested = Builder()
        nested.u32(3); nested.u64(0); nested.u64(1); nested.str("a"); nested.u32(9)
        for _ in 0..<20 { nested.u32(9); nested.u64(1) }
        nested.u32(9)
        check(nested.bytes, "nested")
    }

    @Test func randomDamageNeverTraps() {
        let valid = try! Data(contentsOf: URL(fileURLWithPath: fixture("gguf/types.gguf")))
        var rng = RNG(seed: 4)
        let bytes = [UInt8](valid)
        for trial in 0..<2000 {
            var b = bytes
            for _ in 0..<(1 + rng.below(3)) {
                let pos = rng.below(min(b.count, 2048))
                b[pos] = UInt8(truncatingIfNeeded: rng.next())
            }
            if trial % 9 == 0 { b = Array(b[..<rng.below(b.count)]) }
            _ = try? b.withUnsafeBytes { try GGUFHeader.parse($0, file: "m.gguf") }
        }
    }
}
