import Foundation

/// The data region as it is written: bytes hashed per checksum chunk on their way out, and
/// the checksum trailer after them (FolioWriter and the compressor both write through it).
struct DataStream {
    let out: AtomicOutput
    let dataStart: Int
    let chunkSize: Int
    private let hash = StreamingHash()
    private(set) var hashes: [UInt64] = []

    init(out: AtomicOutput, dataStart: Int, chunkSize: Int) {
        self.out = out
        self.dataStart = dataStart
        self.chunkSize = chunkSize
    }

    /// Bytes of the data region written so far.
    var cursor: Int { out.position - dataStart }

    mutating func emit(_ bytes: UnsafeRawBufferPointer) throws {
        var src = bytes
        while !src.isEmpty {
            let room = chunkSize - cursor % chunkSize
            let n = min(room, src.count)
            let part = UnsafeRawBufferPointer(rebasing: src[..<n])
            hash.update(part)
            try out.write(part)
            if n == room { hashes.append(hash.digest); hash.reset() }
            src = UnsafeRawBufferPointer(rebasing: src[n...])
        }
    }

    mutating func pad(to alignment: Int) throws {
        let gap = (alignment - cursor % alignment) % alignment
        guard gap > 0 else { return }
        try [UInt8](repeating: 0, count: gap).withUnsafeBytes { try emit($0) }
    }

    /// Writes the checksum trailer (chunk hashes, their hash, end magic).
    mutating func finish() throws {
        if cursor % chunkSize != 0 { hashes.append(hash.digest) }
        var table: [UInt8] = []
        table.reserveCapacity(hashes.count * 8 + 16)
        for v in hashes { withUnsafeBytes(of: v.littleEndian) { table += $0 } }
        let tableHash = Checksum.xxh3(table)
        withUnsafeBytes(of: tableHash.littleEndian) { table += $0 }
        try out.write(table + FolioFormat.endMagic)
    }
}
