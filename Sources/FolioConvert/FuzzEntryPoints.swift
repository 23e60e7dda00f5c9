import Folio

/// Entry points for the fuzz targets (Tools/fuzz): each runs one parser over untrusted bytes
/// the way the converter does and reports whether it accepted them. Errors are the expected
/// outcome for most inputs; a crash, trap, leak or hang is a bug.
public enum FuzzEntryPoints {
    @discardableResult
    public static func safetensors(_ bytes: UnsafeRawBufferPointer) -> Bool {
        (try? SafetensorsHeader.parse(bytes, file: "fuzz.safetensors")) != nil
    }

    @discardableResult
    public static func gguf(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let h = try? GGUFHeader.parse(bytes, file: "fuzz.gguf") else { return false }
        // Dequantize the first block of every tensor, as a conversion would.
        var out = [Float](repeating: 0, count: 256)
        for t in h.tensors where t.nbytes >= t.type.typeSize {
            let start = h.dataStart + t.offset
            out.withUnsafeMutableBufferPointer { o in
                GGMLDequant.dequantize(t.type, bytes.baseAddress! + start, blocks: 1, into: o.baseAddress!)
            }
        }
        return true
    }

    @discardableResult
    public static func pickle(_ bytes: [UInt8]) -> Bool {
        let u = RestrictedUnpickler(bytes: bytes, file: "fuzz.pt", member: "archive/data.pkl")
        defer { u.tearDown() }
        guard let root = try? u.load() else { return false }
        return (try? u.tensors(of: root)) != nil
    }

    @discardableResult
    public static func npyHeader(_ bytes: [UInt8]) -> Bool {
        (try? NpyHeader.parse(bytes, file: "fuzz.npy", tensor: "x")) != nil
    }

    @discardableResult
    public static func zipDirectory(_ bytes: UnsafeRawBufferPointer) -> Bool {
        (try? ZipDirectory.walk(bytes, file: "fuzz.npz")) != nil
    }
}
