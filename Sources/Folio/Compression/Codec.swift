import CLZ4
import CZstd

/// A compression codec of compressed tensors (Formats/FOLIO.md, section 15).
public enum CompressionCodec: String, Sendable, Hashable, CaseIterable {
    case lz4
    case zstd

    /// The level used when none is given: lz4's fast mode (1) and zstd's default (3), as
    /// their command-line tools do.
    public var defaultLevel: Int { self == .lz4 ? 1 : 3 }

    /// Levels this codec accepts: lz4 1...12 (2 and above use LZ4HC), zstd 1...22.
    public var levels: ClosedRange<Int> { self == .lz4 ? 1...12 : 1...22 }

    /// Worst-case compressed size of `n` bytes.
    func bound(_ n: Int) -> Int {
        switch self {
        case .lz4: Int(LZ4_compressBound(Int32(clamping: n)))
        case .zstd: ZSTD_compressBound(n)
        }
    }

    /// Compresses `src` into `dst` (at least `bound(src.count)` bytes); returns the compressed
    /// size, or nil when the codec fails or the input exceeds its limits.
    func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, level: Int) -> Int? {
        guard src.count > 0 else { return 0 }
        switch self {
        case .lz4:
            guard src.count <= Int(LZ4_MAX_INPUT_SIZE) else { return nil }
            let s = src.baseAddress!.assumingMemoryBound(to: CChar.self)
            let d = dst.baseAddress!.assumingMemoryBound(to: CChar.self)
            let n = level <= 1
                ? LZ4_compress_default(s, d, Int32(src.count), Int32(clamping: dst.count))
                : LZ4_compress_HC(s, d, Int32(src.count), Int32(clamping: dst.count), Int32(level))
            return n > 0 ? Int(n) : nil
        case .zstd:
            let n = ZstdContexts.shared.withCompression { ctx in
                ZSTD_compressCCtx(ctx, dst.baseAddress, dst.count, src.baseAddress, src.count, Int32(level))
            }
            return ZSTD_isError(n) != 0 ? nil : n
        }
    }

    /// Decompresses `src` into `dst`, which must be filled exactly. Returns false on any
    /// codec error or size mismatch; never reads or writes outside the two buffers.
    func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) -> Bool {
        if dst.count == 0 { return src.count == 0 }
        guard src.count > 0 else { return false }
        switch self {
        case .lz4:
            guard src.count <= Int(Int32.max), dst.count <= Int(Int32.max) else { return false }
            let n = LZ4_decompress_safe(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                        dst.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(src.count), Int32(dst.count))
            return Int(n) == dst.count
        case .zstd:
            let n = ZstdContexts.shared.withDecompression { ctx in
                ZSTD_decompressDCtx(ctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
            return ZSTD_isError(n) == 0 && n == dst.count
        }
    }
}

/// Reused zstd contexts: creating one per chunk costs more than decompressing a small chunk.
final class ZstdContexts: @unchecked Sendable {
    // @unchecked: the free lists are only touched under `lock`.
    static let shared = ZstdContexts()
    private let lock = NSLockLike()
    private var compressors: [OpaquePointer] = []
    private var decompressors: [OpaquePointer] = []

    func withCompression<R>(_ body: (OpaquePointer) -> R) -> R {
        let ctx = lock.withLock { compressors.popLast() } ?? ZSTD_createCCtx()!
        defer { lock.withLock { compressors.append(ctx) } }
        return body(ctx)
    }

    func withDecompression<R>(_ body: (OpaquePointer) -> R) -> R {
        let ctx = lock.withLock { decompressors.popLast() } ?? ZSTD_createDCtx()!
        defer { lock.withLock { decompressors.append(ctx) } }
        return body(ctx)
    }
}

/// The byte-plane transform: the k-th bytes of all elements together, for k = 0..<size.
/// Floats keep sign and exponent in their high byte, which varies little within a tensor,
/// so grouping it lets the codec see the redundancy that interleaving hides.
enum BytePlanes {
    /// Splits `count` elements of `size` bytes at `src` into planes at `dst`.
    static func split(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count: Int, size: Int) {
        let s = src.assumingMemoryBound(to: UInt8.self), d = dst.assumingMemoryBound(to: UInt8.self)
        switch size {
        case 2:
            for i in 0..<count { d[i] = s[2 * i]; d[count + i] = s[2 * i + 1] }
        case 4:
            for i in 0..<count {
                d[i] = s[4 * i]; d[count + i] = s[4 * i + 1]; d[2 * count + i] = s[4 * i + 2]; d[3 * count + i] = s[4 * i + 3]
            }
        default:
            for i in 0..<count { for k in 0..<size { d[k * count + i] = s[size * i + k] } }
        }
    }

    /// Inverse of `split`.
    static func join(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count: Int, size: Int) {
        let s = src.assumingMemoryBound(to: UInt8.self), d = dst.assumingMemoryBound(to: UInt8.self)
        switch size {
        case 2:
            for i in 0..<count { d[2 * i] = s[i]; d[2 * i + 1] = s[count + i] }
        case 4:
            for i in 0..<count {
                d[4 * i] = s[i]; d[4 * i + 1] = s[count + i]; d[4 * i + 2] = s[2 * count + i]; d[4 * i + 3] = s[3 * count + i]
            }
        default:
            for i in 0..<count { for k in 0..<size { d[size * i + k] = s[k * count + i] } }
        }
    }
}
