import FuzzSupport
import Folio
#if canImport(Glibc)
import Glibc
#endif

/// Compressed tensors (format version 2): the input is written to a file in /dev/shm and
/// opened; every compressed tensor's rows are read through the chunk cache (chunk index,
/// stored hash, lz4/zstd decompression, byte planes, raw hash) and the file is verified.
/// Every failure must be a thrown FolioError.
let scratch = "/dev/shm/folio-fuzz-compressed-\(getpid()).folio"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let fp = fopen(scratch, "wb") else { return 0 }
    _ = fwrite(data, 1, size, fp)
    fclose(fp)
    guard let f = try? FolioFile(path: scratch, cacheBytes: 1 << 20) else { return 0 }
    var out = [Float](repeating: 0, count: 1 << 16)
    for t in f.tensors where t.isCompressed && t.rowWidth <= out.count && t.nbytes <= 1 << 24 {
        for r in Set([0, t.rowCount / 2, t.rowCount - 1]) where r >= 0 && r < t.rowCount {
            _ = try? out.withUnsafeMutableBufferPointer { try f.readRow(t, r, into: $0) }
        }
        _ = try? f.withLogicalBytes(of: t, range: 0..<t.nbytes) { $0.count }
    }
    _ = f.verify()
    return 0
}

@_cdecl("FuzzCompressed_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { fuzz($0, $1) }
}
