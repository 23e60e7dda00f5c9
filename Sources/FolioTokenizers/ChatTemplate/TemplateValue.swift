import Foundation
import Folio

/// A value inside a chat template: Jinja's (Python's) types, as far as chat templates use
/// them. Dictionaries keep their insertion order, as Python's do (tojson and items() show it).
indirect enum TemplateValue {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    case dict([(String, TemplateValue)])
    case namespace(Namespace)
    case macro(Macro)
    case loop(LoopInfo)
    /// A bound method of a value (`s.strip`), called with arguments later.
    case method(String, TemplateValue)
    /// A global function (`raise_exception`, `namespace`, `range`, `strftime_now`).
    case function(String)

    final class Namespace {
        var fields: [(String, TemplateValue)]
        init(_ fields: [(String, TemplateValue)]) { self.fields = fields }
        subscript(key: String) -> TemplateValue? {
            get { fields.first { $0.0 == key }?.1 }
            set {
                if let i = fields.firstIndex(where: { $0.0 == key }) { fields[i].1 = newValue! } else { fields.append((key, newValue!)) }
            }
        }
    }

    struct Macro {
        let name: String
        let parameters: [(String, Expression?)]
        let body: [Node]
    }

    struct LoopInfo {
        let index0: Int
        let length: Int
        let previous: TemplateValue
        let next: TemplateValue
    }

    init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .number(let text):
            if let i = Int(text) { self = .int(i) } else { self = .double(Double(text) ?? .nan) }
        case .array(let a): self = .list(a.map(TemplateValue.init(json:)))
        case .object(let m): self = .dict(m.map { ($0.0, TemplateValue(json: $0.1)) })
        }
    }

    var isDefined: Bool { if case .undefined = self { return false } else { return true } }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        default: return true
        }
    }

    /// `str(x)` as Python prints it (what `{{ x }}` writes).
    var text: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s): return s
        case .list(let a): return "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { Self.pythonQuote($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .macro(let m): return "<Macro '\(m.name)'>"
        case .loop: return "<LoopContext>"
        case .method(let n, _): return "<method \(n)>"
        case .function(let n): return "<function \(n)>"
        }
    }

    /// `repr(x)`: strings quoted as Python quotes them.
    var repr: String {
        if case .string(let s) = self { return Self.pythonQuote(s) }
        return text
    }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .loop: return "LoopContext"
        case .method, .function: return "function"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    static func pythonQuote(_ s: String) -> String {
        let q: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(q)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(c) == q { out += "\\" + String(q) } else if c.value < 0x20 || c.value == 0x7F {
                    out += String(format: "\\x%02x", c.value)
                } else { out.unicodeScalars.append(c) }
            }
        }
        return out + String(q)
    }

    /// Python `==`.
    static func equal(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(x), .string(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case let (.list(x), .list(y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case let (.dict(x), .dict(y)):
            return x.count == y.count && x.allSatisfy { kv in y.contains { $0.0 == kv.0 && equal($0.1, kv.1) } }
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// The numeric value (bools count as 0 and 1, as in Python).
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Items iterated by `for` (dicts give their keys, strings their characters).
    var iterationItems: [TemplateValue]? {
        switch self {
        case .list(let a): return a
        case .dict(let d): return d.map { .string($0.0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined: return []
        default: return nil
        }
    }

    /// `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`, as
    /// transformers' `tojson` filter calls it.
    func json(indent: Int?, sortKeys: Bool = false, level: Int = 0) throws -> String {
        let item = indent == nil ? ", " : ","
        let pad = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) } ?? ""
        let close = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        switch self {
        case .none, .undefined: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
            return Self.pythonFloat(d)
        case .string(let s): return Self.jsonQuote(s)
        case .list(let a):
            if a.isEmpty { return "[]" }
            return "[" + pad + (try a.map { try $0.json(indent: indent, sortKeys: sortKeys, level: level + 1) }).joined(separator: item + pad) + close + "]"
        case .dict(let d):
            if d.isEmpty { return "{}" }
            let pairs = sortKeys ? d.sorted { $0.0 < $1.0 } : d
            return "{" + pad + (try pairs.map { Self.jsonQuote($0.0) + ": " + (try $0.1.json(indent: indent, sortKeys: sortKeys, level: level + 1)) })
                .joined(separator: item + pad) + close + "}"
        case .namespace(let n): return try TemplateValue.dict(n.fields).json(indent: indent, sortKeys: sortKeys, level: level)
        default: throw TemplateError("Object of type \(typeName) is not JSON serializable")
        }
    }

    static func jsonQuote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

/// An error raised while rendering (the template's own `raise_exception`, a type error).
struct TemplateError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
