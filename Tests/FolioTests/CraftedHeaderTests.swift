import Testing
@testable import Folio

/// Headers that a writer would never produce: each must be refused with a FolioError that
/// names the file and the culprit, never a trap.
@Suite struct CraftedHeaderTests {
    static let base = #"{"page_size":4096,"chunk_size":4096,"data_size":%SIZE%,"tensors":[%T%]}"#

    func header(_ tensors: String, dataSize: Int) -> String {
        CraftedHeaderTests.base.replacingOccurrences(of: "%SIZE%", with: String(dataSize)).replacingOccurrences(of: "%T%", with: tensors)
    }

    @Test func wellFormedCraftedFileOpens() throws {
        let dir = TempDir()
        let f = try openFolio(craftFolio(header: header(#"{"name":"a","dtype":"F32","shape":[2],"offset":0,"nbytes":8}"#, dataSize: 8),
                                         data: [0, 0, 128, 63, 0, 0, 0, 192]), in: dir)
        var out: [Float] = [0, 0]
        try out.withUnsafeMutableBufferPointer { try f.readRow(f.requireTensor("a"), 0, into: $0) }
        #expect(out == [1, -2])
    }

    static let cases: [(String, String, Int, String)] = [
        ("offsetOutOfBounds", #"{"name":"a","dtype":"F32","shape":[2],"offset":64,"nbytes":8}"#, 8, "outside the data region"),
        ("overlap", #"{"name":"a","dtype":"F32","shape":[16],"offset":0,"nbytes":64},{"name":"b","dtype":"F32","shape":[2],"offset":0,"nbytes":8}"#, 64, "overlaps"),
        ("shapeOverflow", #"{"name":"a","dtype":"F32","shape":[4294967296,4294967296,16],"offset":0,"nbytes":8}"#, 8, "overflow"),
        ("hugeDim", #"{"name":"a","dtype":"F32","shape":[18446744073709551615],"offset":0,"nbytes":8}"#, 8, "shape"),
        ("unknownDtype", #"{"name":"a","dtype":"F128","shape":[2],"offset":0,"nbytes":8}"#, 8, "unknown dtype"),
        ("aliasDtype", #"{"name":"a","dtype":"int4","shape":[32],"offset":0,"nbytes":20,"layout":"paged","row_stride":20,"rows_per_page":204}"#, 20, "unknown dtype"),
        ("duplicateName", #"{"name":"a","dtype":"U8","shape":[1],"offset":0,"nbytes":1},{"name":"a","dtype":"U8","shape":[1],"offset":64,"nbytes":1}"#, 65, "duplicate"),
        ("wrongNbytes", #"{"name":"a","dtype":"F32","shape":[2],"offset":0,"nbytes":7}"#, 8, "nbytes"),
        ("misaligned", #"{"name":"a","dtype":"U8","shape":[1],"offset":3,"nbytes":1}"#, 8, "multiple of 64"),
        ("negativeOffset", #"{"name":"a","dtype":"U8","shape":[1],"offset":-1,"nbytes":1}"#, 8, "offset"),
        ("floatOffset", #"{"name":"a","dtype":"U8","shape":[1],"offset":0.5,"nbytes":1}"#, 8, "offset"),
        ("wrongStride", #"{"name":"a","dtype":"int8","shape":[2,256],"offset":0,"nbytes":520,"layout":"paged","row_stride":256,"rows_per_page":15}"#, 520, "row_stride"),
        ("pagedMisaligned", #"{"name":"a","dtype":"int8","shape":[1,256],"offset":64,"nbytes":260,"layout":"paged","row_stride":260,"rows_per_page":15}"#, 324, "page size"),
        ("denseQuantized", #"{"name":"a","dtype":"int8","shape":[1,256],"offset":0,"nbytes":260}"#, 260, "paged"),
        ("unknownLayout", #"{"name":"a","dtype":"U8","shape":[1],"offset":0,"nbytes":1,"layout":"sparse"}"#, 8, "layout"),
        ("unknownField", #"{"name":"a","dtype":"U8","shape":[1],"offset":0,"nbytes":1,"crc":1}"#, 8, "unknown field"),
        ("emptyName", #"{"name":"","dtype":"U8","shape":[1],"offset":0,"nbytes":1}"#, 8, "name"),
        ("groupMismatch", #"{"name":"a","dtype":"int4/g32","shape":[1,48],"offset":0,"nbytes":32,"layout":"paged","row_stride":32,"rows_per_page":128}"#, 32, "group size"),
        ("zeroRowsHugeWidth", #"{"name":"a","dtype":"affine8/g32","shape":[0,9223372036854775776],"offset":0,"nbytes":0,"layout":"paged","row_stride":4096,"rows_per_page":1}"#, 8, "2^59"),
        ("zeroThenHuge", #"{"name":"a","dtype":"U8","shape":[0,1152921504606846976],"offset":0,"nbytes":0}"#, 8, "2^59"),
        ("dataSizeTooLarge", #"{"name":"a","dtype":"U8","shape":[1],"offset":0,"nbytes":1}"#, 64, "data_size"),
        ("tooDeepRank", "{\"name\":\"a\",\"dtype\":\"U8\",\"shape\":[" + Array(repeating: "1", count: 40).joined(separator: ",") + "],\"offset\":0,\"nbytes\":1}", 8, "rank"),
    ]

    @Test(arguments: 0..<CraftedHeaderTests.cases.count)
    func craftedTensorEntryIsRejected(_ i: Int) throws {
        let (label, tensors, size, expected) = CraftedHeaderTests.cases[i]
        let dir = TempDir()
        let e = #expect(throws: FolioError.self, "\(label)") {
            try openFolio(craftFolio(header: header(tensors, dataSize: size), data: [UInt8](repeating: 0, count: size)), in: dir)
        }
        #expect(e?.description.contains(expected) == true, "\(label): \(e?.description ?? "no error")")
        #expect(e?.description.contains("x.folio") == true)
    }

    @Test(arguments: [
        ("notJSON", "{page_size:1}"), ("notObject", "[1,2]"), ("dupKey", #"{"page_size":4096,"page_size":4096}"#),
        ("badPage", #"{"page_size":1000,"chunk_size":4096,"data_size":0,"tensors":[]}"#),
        ("bigChunk", #"{"page_size":4096,"chunk_size":4194304,"data_size":0,"tensors":[]}"#),
        ("noTensors", #"{"page_size":4096,"chunk_size":4096,"data_size":0}"#),
        ("metaNotString", #"{"page_size":4096,"chunk_size":4096,"data_size":0,"tensors":[],"metadata":{"a":1}}"#),
        ("hugeDataSize", #"{"page_size":4096,"chunk_size":4096,"data_size":9223372036854775807,"tensors":[]}"#),
        ("hugePage", #"{"page_size":1073741824,"chunk_size":4096,"data_size":0,"tensors":[]}"#),
        ("fileUnknownKey", #"{"page_size":4096,"chunk_size":4096,"data_size":0,"tensors":[],"files":[{"name":"a","offset":0,"nbytes":0,"mode":1}]}"#),
        ("fileEscapes", #"{"page_size":4096,"chunk_size":4096,"data_size":0,"tensors":[],"files":[{"name":"../etc/passwd","offset":0,"nbytes":0}]}"#),
        ("fileAbsolute", #"{"page_size":4096,"chunk_size":4096,"data_size":0,"tensors":[],"files":[{"name":"/x","offset":0,"nbytes":0}]}"#),
    ])
    func craftedHeaderIsRejected(_ c: (String, String)) throws {
        let dir = TempDir()
        #expect(throws: FolioError.self, "\(c.0)") { try openFolio(craftFolio(header: c.1, data: []), in: dir) }
    }

    @Test func invalidUTF8InHeaderIsRejected() throws {
        let dir = TempDir()
        var bytes = craftFolio(header: header(#"{"name":"aé","dtype":"U8","shape":[1],"offset":0,"nbytes":1}"#, dataSize: 1), data: [7])
        // Corrupt the é into an invalid sequence and fix up the header hash so only UTF-8 is wrong.
        let start = 32
        let len = Int(bytes[16]) | Int(bytes[17]) << 8
        let h = Array(bytes[start..<(start + len)])
        let i = h.firstIndex(of: 0xC3)!
        bytes[start + i + 1] = 0x28
        let hash = Checksum.xxh3(Array(bytes[start..<(start + len)]))
        withUnsafeBytes(of: hash.littleEndian) { for k in 0..<8 { bytes[24 + k] = $0[k] } }
        let e = #expect(throws: FolioError.self) { try openFolio(bytes, in: dir) }
        #expect(e?.description.contains("UTF-8") == true)
    }

    @Test func absurdHeaderLengthIsRejected() throws {
        let dir = TempDir()
        for len in [UInt64(0), UInt64.max, UInt64(1) << 40, 100] {
            var bytes = craftFolio(header: header("", dataSize: 0), data: [])
            withUnsafeBytes(of: len.littleEndian) { for k in 0..<8 { bytes[16 + k] = $0[k] } }
            #expect(throws: FolioError.self) { try openFolio(bytes, in: dir) }
        }
    }

    @Test func wrongMagicAndVersionAreRejected() throws {
        let dir = TempDir()
        var bytes = craftFolio(header: header("", dataSize: 0), data: [])
        bytes[1] = UInt8(ascii: "X")
        #expect(throws: FolioError.self) { try openFolio(bytes, in: dir) }
        let e = #expect(throws: FolioError.self) { try openFolio(craftFolio(header: header("", dataSize: 0), data: [], version: 9), in: dir) }
        #expect(e?.description.contains("version 9") == true)
        #expect(throws: FolioError.self) { try openFolio([], in: dir) }
    }
}
