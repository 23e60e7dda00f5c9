import Testing
import Folio
@testable import FolioConvert

@Suite struct SafetensorsTests {
    func parse(_ bytes: [UInt8]) throws -> SafetensorsHeader {
        try bytes.withUnsafeBytes { try SafetensorsHeader.parse($0, file: "m.safetensors") }
    }

    @Test func validFileParses() throws {
        let h = try parse(safetensorsBytes([("a", "F32", [2], [UInt8](repeating: 1, count: 8)), ("b", "U8", [], [9])], metadata: [("k", "v")]))
        #expect(h.entries.map(\.name) == ["a", "b"])
        #expect(h.metadata?.first?.1 == "v")
    }

    static let bad: [(String, [UInt8], String)] = [
        ("tooShort", [1, 2, 3], "truncated"),
        ("hugeHeaderSize", withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { Array($0) }, "exceeds"),
        ("headerPastEnd", withUnsafeBytes(of: UInt64(64).littleEndian) { Array($0) } + Array("{}".utf8), "truncated"),
        ("notBrace", rawSafetensors(header: "[]", data: []), "'{'"),
        ("badJSON", rawSafetensors(header: "{\"a\":", data: []), "JSON"),
        ("dupName", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [1, 2]), "duplicate"),
        ("unknownDtype", rawSafetensors(header: #"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, data: [1]), "unknown dtype"),
        ("sizeMismatch", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [1, 2, 3, 4]), "expected"),
        ("gap", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [1, 2]), "gap"),
        ("overlap", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, data: [1, 2]), "overlap"),
        ("truncatedData", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, data: [1, 2]), "truncated"),
        ("trailingBytes", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, data: [1, 2]), "not covered"),
        ("overflowShape", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,8],"data_offsets":[0,4]}}"#, data: [1, 2, 3, 4]), "overflow"),
        ("negativeDim", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [1, 2, 3, 4]), "shape"),
        ("reversedOffsets", rawSafetensors(header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}"#, data: [1]), "end before"),
        ("metadataNotString", rawSafetensors(header: #"{"__metadata__":{"a":3}}"#, data: []), "__metadata__"),
        ("badUTF8", Array(withUnsafeBytes(of: UInt64(8).littleEndian) { Array($0) }) + [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D, 0x20], "JSON"),
    ]

    @Test(arguments: 0..<SafetensorsTests.bad.count)
    func invalidFileIsRejected(_ i: Int) {
        let (label, bytes, expected) = SafetensorsTests.bad[i]
        let e = #expect(throws: ConvertError.self, "\(label)") { try parse(bytes) }
        #expect(e?.description.contains(expected) == true, "\(label): \(e?.description ?? "")")
        #expect(e?.description.contains("m.safetensors") == true)
    }
}

@Suite struct SafetensorsMutationTests {
    /// Random damage to a valid file: the parser either accepts it or throws ConvertError.
    @Test func randomDamageNeverTraps() throws {
        let valid = safetensorsBytes([
            ("a", "F32", [2, 3], [UInt8](repeating: 1, count: 24)), ("b", "I64", [], [UInt8](repeating: 2, count: 8)),
            ("c", "BF16", [0, 4], []),
        ], metadata: [("format", "pt")])
        var rng = RNG(seed: 31)
        let alphabet = Array("{}[]:,\"0123456789-e.x ".utf8)
        for trial in 0..<3000 {
            var bytes = valid
            for _ in 0..<(1 + rng.below(3)) {
                let pos = rng.below(bytes.count)
                bytes[pos] = trial % 2 == 0 ? alphabet[rng.below(alphabet.count)] : UInt8(truncatingIfNeeded: rng.next())
            }
            if trial % 7 == 0 { bytes = Array(bytes[..<rng.below(bytes.count)]) }
            do { _ = try bytes.withUnsafeBytes { try SafetensorsHeader.parse($0, file: "m.safetensors") } } catch is ConvertError { continue }
        }
    }
}
