import Testing
@testable import Folio

@Suite struct JSONTests {
    @Test func duplicateKeysAreRejected() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\"a\":1,\"a\":2}") }
    }

    /// Keys are told apart by their bytes: a vocabulary may hold "é" precomposed and
    /// decomposed as two tokens, which Swift's String equality would call one.
    @Test func canonicallyEqualKeysAreDistinct() throws {
        let v = try JSONParser.parse("{\"\u{E9}\":1,\"e\u{301}\":2}")
        #expect(v.objectValue?.count == 2)
    }

    @Test func largeIntegersAreExact() throws {
        let v = try JSONParser.parse("{\"n\":18446744073709551615,\"m\":9007199254740993}")
        #expect(v["n"]?.uint64Value == UInt64.max)
        #expect(v["m"]?.intValue == 9_007_199_254_740_993)
        #expect(v["n"]?.intValue == nil)
    }

    @Test func invalidUTF8IsRejected() {
        let bytes: [UInt8] = Array("{\"a\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }

    @Test func deepNestingIsRejected() {
        let text = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test(arguments: ["", "{", "{\"a\"}", "{\"a\":}", "[1,]", "01", "1.", "-", "\"\\x\"", "nul", "{} x", "\"\\ud800\""])
    func malformedTextIsRejected(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func serializationRoundTrips() throws {
        let text = "{\"b\":[1,2.5,-3e2,true,false,null],\"a\":\"q\\\"\\\\\\n\\u0001é😀\"}"
        let v = try JSONParser.parse(text)
        #expect(try JSONParser.parse(v.serialized()) == v)
        #expect(v.objectValue?.map(\.0) == ["b", "a"])
    }
}
