/// A JSON value that keeps object key order and exact number text.
///
/// Folio parses headers with its own strict parser rather than Foundation's because headers
/// are untrusted: duplicate keys must be rejected (not silently collapsed), integers up to
/// 2^64-1 must be read exactly, nesting is capped and invalid UTF-8 is an error.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's literal text, validated against the JSON grammar.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; keys are unique.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(members) = self {
            for (k, v) in members where k == key { return v }
        }
        return nil
    }

    public var stringValue: String? { if case let .string(s) = self { return s } else { return nil } }
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a } else { return nil } }
    public var objectValue: [(String, JSONValue)]? { if case let .object(o) = self { return o } else { return nil } }
    public var boolValue: Bool? { if case let .bool(b) = self { return b } else { return nil } }

    /// The value as an exact unsigned 64-bit integer, or nil when it is not a non-negative
    /// integer literal that fits.
    public var uint64Value: UInt64? {
        guard case let .number(text) = self else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    /// The value as an exact Int (non-negative and within Int's range), or nil.
    public var intValue: Int? {
        guard let u = uint64Value, u <= UInt64(Int.max) else { return nil }
        return Int(u)
    }

    public var doubleValue: Double? {
        guard case let .number(text) = self else { return nil }
        return Double(text)
    }
}

/// Why a JSON text was rejected, with the byte offset where it went wrong.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Strict RFC 8259 parser over bytes.
public struct JSONParser {
    public static let maxDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var pos = 0

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Parses one JSON document; whitespace may surround it, nothing else.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var p = JSONParser(bytes)
        p.skipWhitespace()
        let v = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos != bytes.count { throw p.fail("unexpected data after the document") }
        return v
    }

    public static func parse(_ text: String) throws -> JSONValue {
        var copy = text
        return try copy.withUTF8 { buf throws in try parse(UnsafeRawBufferPointer(buf)) }
    }

    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBytes { buf throws in try parse(buf) }
    }

    private func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: pos, reason: reason) }

    private var atEnd: Bool { pos >= bytes.count }
    private var current: UInt8 { bytes[pos] }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    private mutating func expectLiteral(_ lit: StaticString) throws {
        let n = lit.utf8CodeUnitCount
        guard bytes.count - pos >= n else { throw fail("truncated literal") }
        let p = lit.utf8Start
        for i in 0..<n where bytes[pos + i] != p[i] { throw fail("invalid literal") }
        pos += n
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth <= JSONParser.maxDepth else { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
        guard !atEnd else { throw fail("unexpected end of input") }
        switch current {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character 0x\(String(current, radix: 16))")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        pos += 1
        var members: [(String, JSONValue)] = []
        var seen = Set<[UInt8]>()  // by bytes: String equality merges canonically equal keys
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyPos = pos
            let key = try parseString()
            if !seen.insert(Array(key.utf8)).inserted {
                throw JSONParseError(offset: keyPos, reason: "duplicate key \"\(key)\"")
            }
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: ":") else { throw fail("expected ':'") }
            pos += 1
            skipWhitespace()
            let v = try parseValue(depth: depth + 1)
            members.append((key, v))
            skipWhitespace()
            guard !atEnd else { throw fail("unterminated object") }
            if current == UInt8(ascii: ",") { pos += 1; continue }
            if current == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard !atEnd else { throw fail("unterminated array") }
            if current == UInt8(ascii: ",") { pos += 1; continue }
            if current == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func parseNumber() throws -> JSONValue {
        let start = pos
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        if current == UInt8(ascii: "-") { pos += 1 }
        guard !atEnd, isDigit(current) else { throw fail("invalid number") }
        if current == UInt8(ascii: "0") {
            pos += 1
        } else {
            while !atEnd && isDigit(current) { pos += 1 }
        }
        if !atEnd && current == UInt8(ascii: ".") {
            pos += 1
            guard !atEnd, isDigit(current) else { throw fail("invalid number fraction") }
            while !atEnd && isDigit(current) { pos += 1 }
        }
        if !atEnd && (current == UInt8(ascii: "e") || current == UInt8(ascii: "E")) {
            pos += 1
            if !atEnd && (current == UInt8(ascii: "+") || current == UInt8(ascii: "-")) { pos += 1 }
            guard !atEnd, isDigit(current) else { throw fail("invalid number exponent") }
            while !atEnd && isDigit(current) { pos += 1 }
        }
        guard pos - start <= 400 else { throw JSONParseError(offset: start, reason: "number literal too long") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        return .number(text)
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard bytes.count - pos >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = current
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private mutating func parseString() throws -> String {
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard !atEnd else { throw fail("unterminated string") }
            let c = current
            if c == UInt8(ascii: "\"") { pos += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                pos += 1
                guard !atEnd else { throw fail("unterminated escape") }
                let e = current
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard bytes.count - pos >= 6, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        pos += 2
                        let low = try parseHex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid low surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid unicode scalar") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("invalid escape")
                }
                continue
            }
            // Copy a run of plain bytes; UTF-8 validity is checked once at the end.
            out.append(c)
            pos += 1
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
        return s
    }
}

extension JSONValue {
    /// Compact JSON text. Object members keep their order.
    public func serialized(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): out += n
        case let .string(s): JSONValue.writeString(s, to: &out)
        case let .array(items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += pretty ? ", " : "," }
                v.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            out += "]"
        case let .object(members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                JSONValue.writeString(k, to: &out)
                out += pretty ? ": " : ":"
                v.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// A JSON number from an integer.
    public static func int<T: BinaryInteger>(_ v: T) -> JSONValue { .number(String(v)) }

    /// A JSON number from a double; non-finite values become null (JSON has no NaN).
    public static func double(_ v: Double) -> JSONValue {
        guard v.isFinite else { return .null }
        if v == v.rounded(), abs(v) < 1e15 { return .number(String(Int64(v))) }
        return .number("\(v)")
    }
}
