import Folio
import Foundation
import ZIPFoundation

/// One file inside a zip archive (a `.npz` file, a PyTorch checkpoint), listed by ZIPFoundation.
struct ZipMember: Sendable {
    let path: String
    let bytes: ByteSource
    var size: Int { bytes.count }
}

/// The members of a zip archive. ZIPFoundation reads the central directory (zip64 included)
/// and inflates deflated members; stored members, which is how `torch.save` and `np.savez`
/// write their arrays, are served zero-copy from the memory-mapped archive.
enum ZipMembers {
    /// Lists the regular files of the archive at `path` (`map` is the same file, mapped).
    /// Directories are skipped; symbolic links, encrypted members, compression methods other
    /// than stored and deflate, and duplicate names are refused.
    static func list(_ path: String, map: MappedFile) throws -> [ZipMember] {
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw ConvertError.badFile(file: path, reason: "not a readable zip archive (\(error)): the central directory is missing or damaged")
        }
        var seen = Set<String>()
        var members: [ZipMember] = []
        for entry in archive {
            let name = entry.path
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
            let size = Int(entry.uncompressedSize)
            let local = try localHeader(of: entry, name: name, map: map, file: path)
            if let local {
                guard local.flags & 1 == 0 else {
                    throw ConvertError.unsupported(file: path, reason: "zip member '\(name)' is encrypted")
                }
                switch local.method {
                case 0:
                    let (end, o) = local.dataOffset.addingReportingOverflow(size)
                    guard !o, end <= map.size else {
                        throw ConvertError.badFile(file: path, reason: "zip member '\(name)' (\(size) bytes at offset \(local.dataOffset)) runs past the end of the file (\(map.size) bytes)")
                    }
                    members.append(ZipMember(path: name, bytes: .mapped(map, offset: local.dataOffset, count: size)))
                    continue
                case 8: break
                default:
                    throw ConvertError.unsupported(file: path, reason: "zip member '\(name)' uses compression method \(local.method); only stored and deflated members are supported")
                }
            }
            members.append(ZipMember(path: name, bytes: .inflated(InflatedMember(archive: path, member: name, count: size))))
        }
        return members
    }

    /// The member's local file header, read from the mapping: compression method, flags and
    /// where its data starts. ZIPFoundation keeps the header's offset internal, so it is read
    /// from the entry by reflection; nil when that is not possible (another ZIPFoundation
    /// version), in which case the member is read through ZIPFoundation's own streaming.
    static func localHeader(of entry: Entry, name: String, map: MappedFile, file: String) throws -> (method: UInt16, flags: UInt16, dataOffset: Int)? {
        guard let offset = localHeaderOffset(entry) else { return nil }
        func bad(_ r: String) -> ConvertError { .badFile(file: file, reason: "zip member '\(name)': \(r)") }
        guard offset <= UInt64(map.size), UInt64(map.size) - offset >= 30 else {
            throw bad("local header offset \(offset) is outside the file (\(map.size) bytes)")
        }
        let at = Int(offset)
        return try map.withBytes { all in
            func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: all.loadUnaligned(fromByteOffset: at + o, as: UInt16.self)) }
            guard all.loadUnaligned(fromByteOffset: at, as: UInt32.self) == UInt32(0x0403_4B50).littleEndian else {
                throw bad("no local header signature at offset \(offset)")
            }
            let nameLength = Int(u16(26)), extraLength = Int(u16(28))
            let dataOffset = at + 30 + nameLength + extraLength
            guard dataOffset <= map.size else { throw bad("local header at offset \(offset) runs past the end of the file") }
            let stored = Array(all[(at + 30)..<(at + 30 + nameLength)])
            if stored.allSatisfy({ $0 < 0x80 }), stored != Array(name.utf8) {
                throw bad("local header names '\(String(decoding: stored, as: UTF8.self))', the central directory '\(name)'")
            }
            return (u16(8), u16(6), dataOffset)
        }
    }

    /// The local header offset of an entry, as ZIPFoundation computes it internally
    /// (`effectiveRelativeOffsetOfLocalHeader`): the zip64 extra field's offset when present and
    /// non-zero, else the central directory's 32-bit one.
    static func localHeaderOffset(_ entry: Entry) -> UInt64? {
        guard let central = Mirror(reflecting: entry).descendant("centralDirectoryStructure") else { return nil }
        let m = Mirror(reflecting: central)
        guard let short = m.descendant("relativeOffsetOfLocalHeader") as? UInt32 else { return nil }
        if let fields = m.descendant("extraFields", "some") {
            for field in Mirror(reflecting: fields).children {
                let f = Mirror(reflecting: field.value)
                guard String(describing: f.subjectType).contains("ZIP64ExtendedInformation") else { continue }
                if let long = f.descendant("relativeOffsetOfLocalHeader") as? UInt64, long > 0 { return long }
            }
        }
        return short == UInt32.max ? nil : UInt64(short)
    }
}

/// Where a run of bytes lives: a range of a mapped file, or a deflated zip member.
enum ByteSource: Sendable {
    case mapped(MappedFile, offset: Int, count: Int)
    case inflated(InflatedMember)

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
