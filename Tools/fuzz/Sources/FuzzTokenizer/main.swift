import FuzzSupport
import FolioInference
import FolioTokenizers

/// tokenizer.json parsing, then encoding a fixed text with whatever tokenizer was accepted.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let t = try? WordPieceTokenizer(json: bytes, file: "fuzz.json") {
        _ = t.encode("Héllo, wörld! 你好 [CLS] tokens ##x", maxLength: 64)
    }
    return 0
}


@_cdecl("FuzzTokenizer_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { fuzz($0, $1) }
}
