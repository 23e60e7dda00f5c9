import CXXHash

/// XXH3-64 (seed 0), the checksum of every Folio header and data chunk.
public enum Checksum {
    public static func xxh3(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    public static func xxh3(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { xxh3($0) }
    }
}

/// Incremental XXH3-64 for data that arrives in pieces.
final class StreamingHash {
    private let state: OpaquePointer

    init() {
        state = XXH3_createState()!
        XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    func reset() { XXH3_64bits_reset(state) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        XXH3_64bits_update(state, bytes.baseAddress, bytes.count)
    }

    var digest: UInt64 { XXH3_64bits_digest(state) }
}
