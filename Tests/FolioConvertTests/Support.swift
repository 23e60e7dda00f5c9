import Folio
import Foundation

final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "folio-ctest-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

func writeBytes(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func readBytes(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

struct RNG {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func gaussian() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

/// A safetensors file built by hand: header JSON text (entries in the given order) and data.
func safetensorsBytes(_ tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])], metadata: [(String, String)]? = nil) -> [UInt8] {
    var parts: [String] = []
    if let metadata {
        parts.append("\"__metadata__\":" + JSONValue.object(metadata.map { ($0.0, .string($0.1)) }).serialized())
    }
    var offset = 0
    var data: [UInt8] = []
    for t in tensors {
        parts.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.data.count)]}")
        offset += t.data.count
        data += t.data
    }
    return rawSafetensors(header: "{" + parts.joined(separator: ",") + "}", data: data)
}

func rawSafetensors(header: String, data: [UInt8]) -> [UInt8] {
    var h = Array(header.utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data
}
