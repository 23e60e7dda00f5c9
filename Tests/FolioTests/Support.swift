import Folio
import Foundation

/// A scratch directory removed at deinit.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "folio-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Deterministic Gaussian values (Box-Muller over a seeded xorshift).
struct Gaussian {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func nextUInt() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func uniform() -> Double { Double(nextUInt() >> 11) / Double(1 << 53) }
    mutating func next() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
    mutating func values(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// Builds a Folio file by hand from a header JSON text and data bytes, with correct
/// checksums, so that tests can craft headers the writer would never produce.
func craftFolio(header: String, data: [UInt8], pageSize: Int = 4096, chunkSize: Int = 1 << 20, version: UInt32 = 1) -> [UInt8] {
    craftFolio(headerBytes: Array(header.utf8), data: data, pageSize: pageSize, chunkSize: chunkSize, version: version)
}

func craftFolio(headerBytes: [UInt8], data: [UInt8], pageSize: Int = 4096, chunkSize: Int = 1 << 20, version: UInt32 = 1) -> [UInt8] {
    var h = headerBytes
    while h.last == 0x20 { h.removeLast() }
    while (32 + h.count) % pageSize != 0 { h.append(0x20) }
    var out = FolioFormat.magic
    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    out += le(version) + le(UInt32(0)) + le(UInt64(h.count)) + le(Checksum.xxh3(h))
    out += h
    out += data
    var table: [UInt8] = []
    var i = 0
    while i < data.count {
        let end = min(data.count, i + chunkSize)
        table += le(Checksum.xxh3(Array(data[i..<end])))
        i = end
    }
    out += table + le(Checksum.xxh3(table)) + FolioFormat.endMagic
    return out
}

func writeBytes(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

func readBytes(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

/// Opens a Folio file held in bytes (written to a temporary file).
func openFolio(_ bytes: [UInt8], in dir: TempDir, name: String = "x.folio") throws -> FolioFile {
    let p = dir.file(name)
    writeBytes(bytes, to: p)
    return try FolioFile(path: p)
}
