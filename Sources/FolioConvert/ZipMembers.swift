import Folio
import Foundation
import ZIPFoundation

/// One file inside a zip archive (a `.npz` file, a PyTorch checkpoint), listed by ZIPFoundation.
struct ZipMember: Sendable {
    let path: String
    let bytes: ByteSource
    var size: Int { bytes.count }
}

/// The members of a zip archive. ZIPFoundation reads the central directory (zip64 included),
/// decodes names and inflates deflated members; stored members, which is how `torch.save`
/// and `np.savez` write their arrays, are served zero-copy from the memory-mapped archive.
enum ZipMembers {
    /// Lists the regular files of the archive at `path` (`map` is the same file, mapped).
    /// Directories are skipped; symbolic links, encrypted members, compression methods other
    /// than stored and deflate, and duplicate names are refused.
    static func list(_ path: String, map: MappedFile) throws -> [ZipMember] {
        // Checked first: ZIPFoundation traps on offsets beyond 2^63 and stops silently on
        // others that run past the end, and the walk gives each member's data offset.
        let records = try map.withBytes { try ZipDirectory.walk($0, file: path) }
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw ConvertError.badFile(file: path, reason: "not a readable zip archive (\(error)): the central directory is missing or damaged")
        }
        var seen = Set<String>()
        var members: [ZipMember] = []
        var index = 0
        for entry in archive {
            guard index < records.count else { break }
            let record = records[index]
            index += 1
            let name = entry.path
            guard !record.name.allSatisfy({ $0 < 0x80 }) || record.name == Array(name.utf8) else {
                throw ConvertError.badFile(file: path, reason: "zip member \(index - 1) is named '\(name)' by ZIPFoundation, '\(String(decoding: record.name, as: UTF8.self))' by its header")
            }
            switch entry.type {
            case .directory: continue
            case .symlink: throw ConvertError.badFile(file: path, reason: "zip member '\(name)' is a symbolic link, not a file")
            case .file: break
            }
            guard seen.insert(name).inserted else {
                throw ConvertError.badFile(file: path, reason: "zip member '\(name)' appears twice")
            }
            guard entry.uncompressedSize <= UInt64(FolioFormat.maxElements), entry.compressedSize <= UInt64(map.size) else {
                throw ConvertError.badFile(file: path, reason: "zip member '\(name)' declares \(entry.uncompressedSize) bytes (\(entry.compressedSize) compressed) in a file of \(map.size) bytes")
            }
            guard record.flags & 1 == 0 else {
                throw ConvertError.unsupported(file: path, reason: "zip member '\(name)' is encrypted")
            }
            let size = Int(entry.uncompressedSize)
            switch record.method {
            case 0:
                let (end, o) = record.dataOffset.addingReportingOverflow(size)
                guard !o, end <= map.size else {
                    throw ConvertError.badFile(file: path, reason: "zip member '\(name)' (\(size) bytes at offset \(record.dataOffset)) runs past the end of the file (\(map.size) bytes)")
                }
                members.append(ZipMember(path: name, bytes: .mapped(map, offset: record.dataOffset, count: size)))
            case 8:
                members.append(ZipMember(path: name, bytes: .inflated(InflatedMember(archive: path, member: name, count: size))))
            default:
                throw ConvertError.unsupported(file: path, reason: "zip member '\(name)' uses compression method \(record.method); only stored and deflated members are supported")
            }
        }
        guard index == records.count else {
            throw ConvertError.badFile(file: path, reason: "the central directory lists \(records.count) members, ZIPFoundation read \(index)")
        }
        return members
    }
}

/// A check of a zip archive's central directory on its bytes, walking it the way
/// ZIPFoundation 0.9's `Archive.makeIterator` does (end record found from the end of the
/// file, the zip64 end record right before its locator, zip64 extra fields for values stored
/// as 0xFFFFFFFF), so that every offset it will seek to is known to lie within the file.
enum ZipDirectory {
    struct Record {
        let name: [UInt8]
        let method: UInt16
        let flags: UInt16
        /// Absolute offset of the member's data (after its local header).
        let dataOffset: Int
    }

    static func walk(_ b: UnsafeRawBufferPointer, file: String) throws -> [Record] {
        func bad(_ r: String) -> ConvertError { .badFile(file: file, reason: "damaged zip archive: \(r)") }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        let n = b.count
        /// An offset read from the file, as an Int when `offset + need` bytes fit in the file.
        func within(_ offset: UInt64, _ need: Int, _ what: String) throws -> Int {
            guard offset <= UInt64(n), need <= n - Int(offset) else {
                throw bad("\(what) at offset \(offset) runs past the end of the file (\(n) bytes)")
            }
            return Int(offset)
        }

        // The end of central directory record: the last signature, searched from the end.
        guard n >= 22 else { throw bad("\(n) bytes is too short for a zip archive") }
        var eocd = n - 22
        while eocd >= 0 && u32(eocd) != 0x0605_4B50 { eocd -= 1 }
        guard eocd >= 0 else { throw bad("no end of central directory record") }
        _ = try within(UInt64(eocd), 22 + Int(u16(eocd + 20)), "the end of central directory record")
        var total = UInt64(u16(eocd + 10))
        var start = UInt64(u32(eocd + 16))
        if eocd >= 20 + 56 + 1, u32(eocd - 20) == 0x0706_4B50 {
            let record = eocd - 20 - 56
            if u32(record) == 0x0606_4B50, u16(record + 14) >= 45 {
                total = u64(record + 32)
                start = u64(record + 48)
            }
        }
        // Each entry takes at least 46 bytes, which bounds the count before any allocation.
        guard total <= UInt64(n / 46) else { throw bad("the central directory claims \(total) members in \(n) bytes") }

        var records: [Record] = []
        var at = try within(start, 0, "the central directory")
        for i in 0..<Int(total) {
            let entry = "central directory entry \(i)"
            _ = try within(UInt64(at), 46, entry)
            guard u32(at) == 0x0201_4B50 else { throw bad("\(entry) at offset \(at) has no signature") }
            let versionNeeded = u16(at + 6), flags = u16(at + 8), method = u16(at + 10)
            let compressed32 = u32(at + 20), uncompressed32 = u32(at + 24)
            let nameLength = Int(u16(at + 28)), extraLength = Int(u16(at + 30)), commentLength = Int(u16(at + 32))
            let disk = u16(at + 34), offset32 = u32(at + 42)
            let size = 46 + nameLength + extraLength + commentLength
            _ = try within(UInt64(at), size, entry)
            let name = Array(UnsafeRawBufferPointer(rebasing: b[(at + 46)..<(at + 46 + nameLength)]))

            // The zip64 extra field, read as ZIPFoundation reads it: the first field of ID 1,
            // holding exactly the values that the entry stores as all ones.
            var zip64: (uncompressed: UInt64, compressed: UInt64, offset: UInt64)?
            var e = at + 46 + nameLength
            let extraEnd = e + extraLength
            while e < extraEnd - 4 {
                let id = u16(e), length = Int(u16(e + 2))
                guard e + 4 + length <= extraEnd else { break }
                if id == 1 {
                    let wanted = [uncompressed32 == .max, compressed32 == .max, offset32 == .max]
                    let expected = wanted.filter { $0 }.count * 8 + (disk == .max ? 4 : 0)
                    if expected == length {
                        var r = e + 4
                        var values: [UInt64] = [0, 0, 0]
                        for (k, w) in wanted.enumerated() where w {
                            values[k] = u64(r)
                            r += 8
                        }
                        zip64 = (values[0], values[1], values[2])
                    }
                    break
                }
                e += 4 + length
            }
            let isZIP64 = UInt8(truncatingIfNeeded: versionNeeded) >= 45 || zip64 != nil
            func effective(_ long: UInt64?, _ short: UInt32) -> UInt64 {
                if isZIP64, let long, long > 0 { return long }
                return UInt64(short)
            }
            let localOffset = effective(zip64?.offset, offset32)
            let compressed = effective(zip64?.compressed, compressed32)
            let uncompressed = effective(zip64?.uncompressed, uncompressed32)

            let local = try within(localOffset, 30, "the local header of \(entry)")
            guard u32(local) == 0x0403_4B50 else { throw bad("the local header of \(entry) at offset \(local) has no signature") }
            guard u16(local + 8) == method else { throw bad("\(entry) has compression method \(method), its local header \(u16(local + 8))") }
            let localExtra = Int(u16(local + 26)) + Int(u16(local + 28))
            let data = try within(UInt64(local), 30 + localExtra, "the local header of \(entry)") + 30 + localExtra
            if flags & 8 != 0 {
                // The data descriptor follows the data; ZIPFoundation seeks to it.
                _ = try within(UInt64(data), 0, "the data of \(entry)")
                let length = method != 0 ? compressed : uncompressed
                guard length <= UInt64(n - data) else { throw bad("the data of \(entry) (\(length) bytes at offset \(data)) runs past the end of the file") }
            }
            records.append(Record(name: name, method: method, flags: flags, dataOffset: data))
            at += size
        }
        return records
    }
}

/// Where a run of bytes lives: a range of a mapped file, or a deflated zip member.
enum ByteSource: Sendable {
    case mapped(MappedFile, offset: Int, count: Int)
    case inflated(InflatedMember)

    var isMapped: Bool {
        if case .mapped = self { return true }
        return false
    }

    var count: Int {
        switch self {
        case let .mapped(_, _, count): return count
        case let .inflated(m): return m.count
        }
    }

    /// Calls `body` with bytes `range` (the caller keeps `range` within `count`).
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch self {
        case let .mapped(map, offset, _):
            return try map.withBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[(offset + range.lowerBound)..<(offset + range.upperBound)])) }
        case let .inflated(m):
            return try m.withBytes(range, body)
        }
    }

    /// Streams bytes `range` in order in pieces of at most `piece` bytes: at least one call
    /// (an empty piece for an empty range); pages behind are released.
    func forEachPiece(_ range: Range<Int>, piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let piece = Swift.max(1, piece)
        switch self {
        case let .mapped(map, offset, _):
            var at = range.lowerBound
            repeat {
                let n = Swift.min(piece, range.upperBound - at)
                try map.withBytes { all in try body(UnsafeRawBufferPointer(rebasing: all[(offset + at)..<(offset + at + n)])) }
                map.advise(.dontNeed, offset: offset + at, length: n)
                at += n
            } while at < range.upperBound
        case let .inflated(m):
            try m.stream(range, piece: piece, body)
        }
    }

    /// Lets go of cached pages or inflated bytes of `range`.
    func release(_ range: Range<Int>) {
        switch self {
        case let .mapped(map, offset, _): map.advise(.dontNeed, offset: offset + range.lowerBound, length: range.count)
        case let .inflated(m): m.release()
        }
    }
}

/// A deflated zip member. A deflate stream cannot be entered in the middle, so each read
/// inflates from the start and stops after the bytes it needs; memory stays bounded (one
/// window of at most `windowBytes`, or the range asked for). Sequential row reads hit the
/// window, so a tensor of up to `windowBytes` is inflated once.
final class InflatedMember: @unchecked Sendable {
    // @unchecked: `window` is only touched while `lock` is held; the rest is immutable.
    let archive: String
    let member: String
    let count: Int
    /// The most bytes inflated ahead of a read and kept for the next one.
    let windowBytes: Int
    static let defaultWindowBytes = 64 << 20
    private let lock = NSLock()
    private var window: (start: Int, bytes: [UInt8])?

    init(archive: String, member: String, count: Int, windowBytes: Int = InflatedMember.defaultWindowBytes) {
        self.archive = archive
        self.member = member
        self.count = count
        self.windowBytes = windowBytes
    }

    private struct Enough: Error {}

    /// Streams `range` of the inflated bytes in pieces of at most `piece` bytes (at least one
    /// call). The CRC-32 is checked when the read runs to the end of the member.
    func stream(_ range: Range<Int>, piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if range.isEmpty { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let archiveObject: Archive
        do { archiveObject = try Archive(url: URL(fileURLWithPath: archive), accessMode: .read) } catch {
            throw ConvertError.badFile(file: archive, reason: "cannot reopen the zip archive (\(error))")
        }
        guard let entry = archiveObject[member] else {
            throw ConvertError.badFile(file: archive, reason: "zip member '\(member)' vanished")
        }
        let toEnd = range.upperBound == count
        var position = 0
        var pending: [UInt8] = []
        pending.reserveCapacity(Swift.min(piece, range.count))
        do {
            _ = try archiveObject.extract(entry, bufferSize: 1 << 20, skipCRC32: !toEnd) { data in
                let lo = Swift.max(range.lowerBound, position), hi = Swift.min(range.upperBound, position + data.count)
                if lo < hi {
                    try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                        var at = lo - position
                        while at < hi - position {
                            let take = Swift.min(piece - pending.count, hi - position - at)
                            pending.append(contentsOf: raw[at..<(at + take)])
                            at += take
                            if pending.count == piece {
                                try pending.withUnsafeBytes { try body($0) }
                                pending.removeAll(keepingCapacity: true)
                            }
                        }
                    }
                }
                position += data.count
                if position > count {
                    throw ConvertError.badFile(file: archive, reason: "zip member '\(member)' inflates to more than its declared \(count) bytes")
                }
                if position >= range.upperBound && !toEnd { throw Enough() }
            }
        } catch is Enough {
        } catch let e as ConvertError {
            throw e
        } catch {
            throw ConvertError.badFile(file: archive, reason: "zip member '\(member)' is damaged (\(error))")
        }
        guard position >= range.upperBound else {
            throw ConvertError.badFile(file: archive, reason: "zip member '\(member)' inflates to \(position) bytes, expected \(count)")
        }
        if !pending.isEmpty { try pending.withUnsafeBytes { try body($0) } }
    }

    /// The first `n` bytes (or fewer when the member is shorter), without caching them.
    func prefix(_ n: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        try stream(0..<Swift.min(n, count), piece: 1 << 16) { out.append(contentsOf: $0) }
        return out
    }

    /// Calls `body` with bytes `range`, inflating a window that starts there when the current
    /// one does not hold them.
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        if let w = window, w.start <= range.lowerBound, range.upperBound <= w.start + w.bytes.count {
            return try w.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[(range.lowerBound - w.start)..<(range.upperBound - w.start)])) }
        }
        window = nil
        let end = Swift.max(range.upperBound, Swift.min(count, range.lowerBound + windowBytes))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(end - range.lowerBound)
        try stream(range.lowerBound..<end, piece: 1 << 20) { bytes.append(contentsOf: $0) }
        window = (range.lowerBound, bytes)
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<range.count])) }
    }

    /// Drops the inflated window.
    func release() {
        lock.lock()
        window = nil
        lock.unlock()
    }
}

/// A dense tensor whose bytes are a contiguous run of a `ByteSource` (a .npy file, a member
/// of a .npz file, a storage of a PyTorch checkpoint).
struct ByteSourceStorage: TensorStorage {
    let source: ByteSource
    /// Where the tensor starts within the source, and its length.
    let begin: Int
    let nbytes: Int
    let dtype: DType

    var storedBytes: Int { nbytes }
    var denseDType: DType? { dtype }
    /// Mapped bytes can be read from any thread; a deflated member is one stream.
    var supportsConcurrentReads: Bool { source.isMapped }

    func forEachDensePiece(piece: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try source.forEachPiece(begin..<(begin + nbytes), piece: piece, body)
    }

    func withDenseBytes(range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try source.withBytes((begin + range.lowerBound)..<(begin + range.upperBound), body)
    }

    func readRows(start: Int, count: Int, width: Int, encoding: Encoding, into out: UnsafeMutablePointer<Float>) throws {
        let size = dtype.size
        let range = (begin + start * width * size)..<(begin + (start + count) * width * size)
        try source.withBytes(range) { b in
            if let base = b.baseAddress { dtype.toFloat(base, count: count * width, into: out) }
        }
        if case .mapped = source { source.release(range) }
    }

    func release() { source.release(begin..<(begin + nbytes)) }
}
