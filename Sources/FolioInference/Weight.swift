import Folio

/// The float32 values of one weight tensor: a view into the file's mapping when the file
/// stores them as aligned float32 (no copy, pages shared with the page cache), otherwise a
/// decoded copy. Holds the file open as long as the values are in use.
final class Weight: @unchecked Sendable {
    // @unchecked: immutable after init; the values are only read.
    let values: UnsafePointer<Float>
    let count: Int
    private let owned: UnsafeMutablePointer<Float>?
    private let file: FolioFile?

    init(copying array: [Float]) {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, array.count))
        array.withUnsafeBufferPointer { if let b = $0.baseAddress { p.update(from: b, count: array.count) } }
        owned = p
        values = UnsafePointer(p)
        count = array.count
        file = nil
    }

    init(file: FolioFile, tensor t: TensorInfo) throws {
        count = t.elementCount
        if t.paged == nil, t.encoding.plainDType == .f32,
           let base = try? file.withBytes(of: t, { $0.baseAddress }), Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            values = base.assumingMemoryBound(to: Float.self)
            owned = nil
            self.file = file
            // Fill the mapping's page tables now (MADV_POPULATE_READ, reading from disk what
            // the page cache lacks), as llama.cpp maps its weights with MAP_POPULATE: the
            // first forward pass would otherwise take a page fault per 4 KiB of weights.
            file.advise(t, .populate)
        } else {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
            if count > 0 {
                do { try file.readRows(t, start: 0, count: t.rowCount, into: p) } catch { p.deallocate(); throw error }
            }
            owned = p
            values = UnsafePointer(p)
            self.file = nil
        }
    }

    deinit { owned?.deallocate() }

    subscript(i: Int) -> Float { values[i] }
}
