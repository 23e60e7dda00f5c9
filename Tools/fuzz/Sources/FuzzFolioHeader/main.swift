import FuzzSupport
import Folio

/// The Folio header and tensor table: parse, then read every row of every tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let h = try? FolioHeader.parse(bytes, file: "fuzz.folio") {
        var out = [Float](repeating: 0, count: 1 << 16)
        // Compressed tensors (no bytes at their logical offsets) are FuzzCompressed's.
        for t in h.tensors where t.rowWidth <= out.count && t.rowCount > 0 && !t.isCompressed {
            let range = t.paged.map { p in p.rowOffset(t.rowCount - 1)..<(p.rowOffset(t.rowCount - 1) + p.recordSize) }
                ?? (t.nbytes - t.rowWidth * (t.encoding.plainDType?.size ?? 1))..<t.nbytes
            out.withUnsafeMutableBufferPointer { o in
                RowCodec.decode(t.encoding, record: bytes.baseAddress! + h.dataOffset + t.offset + range.lowerBound, width: t.rowWidth, into: o.baseAddress!)
            }
        }
    }
    return 0
}


@_cdecl("FuzzFolioHeader_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { fuzz($0, $1) }
}
