import Foundation

/// Jinja's built-in filters and tests, and the Python string and dict methods, that chat
/// templates call.
enum TemplateFilters {
    static func apply(_ name: String, _ v: TemplateValue, _ args: [TemplateValue], _ kwargs: [(String, TemplateValue)],
                      renderer: TemplateRenderer) throws -> TemplateValue {
        func kw(_ k: String, _ i: Int) -> TemplateValue? { kwargs.first { $0.0 == k }?.1 ?? (i < args.count ? args[i] : nil) }
        switch name {
        case "trim":
            return .string(try string(v, name).trimmingCharacters(in: .whitespacesAndNewlines))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .list(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw TemplateError("object of type '\(v.typeName)' has no len()")
            }
        case "tojson":
            var indent: Int? = nil
            if case .int(let i)? = kw("indent", 0) { indent = i }
            let sort = kw("sort_keys", 2)?.truthy ?? false
            return .string(try v.json(indent: indent, sortKeys: sort))
        case "upper": return .string(try string(v, name).uppercased())
        case "lower": return .string(try string(v, name).lowercased())
        case "capitalize":
            let s = try string(v, name)
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(try string(v, name).capitalized)
        case "string": return .string(v.text)
        case "int":
            switch v {
            case .int: return v
            case .double(let d):
                guard d.isFinite, abs(d) < 9.2e18 else { throw TemplateError("cannot convert \(TemplateValue.pythonFloat(d)) to int") }
                return .int(Int(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            default: return .int(0)
            }
        case "float":
            if let n = v.number { return .double(n) }
            if case .string(let s) = v { return .double(Double(s) ?? 0) }
            return .double(0)
        case "default", "d":
            let boolean = kw("boolean", 1)?.truthy ?? false
            let fallback = kw("default_value", 0) ?? .string("")
            return (!v.isDefined || (boolean && !v.truthy)) ? fallback : v
        case "first":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            return items.first ?? .undefined("first")
        case "last":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            return items.last ?? .undefined("last")
        case "join":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            let sep = kw("d", 0)?.text ?? ""
            if let attr = kw("attribute", 1)?.text {
                return .string(try items.map { try pick($0, attr).text }.joined(separator: sep))
            }
            return .string(items.map(\.text).joined(separator: sep))
        case "list":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            return .list(items)
        case "items":
            guard case .dict(let d) = v else { if !v.isDefined { return .list([]) }; throw TemplateError("items filter needs a mapping") }
            return .list(d.map { .list([.string($0.0), $0.1]) })
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            return .list(items.reversed())
        case "replace":
            guard args.count >= 2 else { throw TemplateError("replace needs two arguments") }
            return .string(try string(v, name).replacingOccurrences(of: args[0].text, with: args[1].text))
        case "safe":
            return v
        case "selectattr", "rejectattr":
            guard let items = v.iterationItems, let attr = args.first?.text else { throw TemplateError("\(name) needs an attribute") }
            let keep = name == "selectattr"
            return .list(try items.filter { item in
                let a = try pick(item, attr)
                let r = args.count > 1 ? try test(args[1].text, a, Array(args.dropFirst(2))) : a.truthy
                return r == keep
            })
        case "select", "reject":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            let keep = name == "select"
            return .list(try items.filter { item in
                let r = args.isEmpty ? item.truthy : try test(args[0].text, item, Array(args.dropFirst()))
                return r == keep
            })
        case "map":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1.text {
                return .list(try items.map { try pick($0, attr) })
            }
            guard let f = args.first?.text else { throw TemplateError("map needs a filter or attribute=") }
            return .list(try items.map { try apply(f, $0, Array(args.dropFirst()), [], renderer: renderer) })
        case "unique":
            guard let items = v.iterationItems else { throw TemplateError("'\(v.typeName)' object is not iterable") }
            var seen: [TemplateValue] = []
            for i in items where !seen.contains(where: { TemplateValue.equal($0, i) }) { seen.append(i) }
            return .list(seen)
        case "indent":
            let width = (kw("width", 0)?.number).map { Int($0) } ?? 4
            let first = kw("first", 1)?.truthy ?? false
            let pad = String(repeating: " ", count: width)
            let lines = try string(v, name).components(separatedBy: "\n")
            return .string(lines.enumerated().map { i, l in (i == 0 && !first) || l.isEmpty ? l : pad + l }.joined(separator: "\n"))
        case "\u{0}filter":
            return v
        default:
            throw TemplateError("no filter named '\(name)'")
        }
    }

    /// An item's attribute or key (dotted paths allowed), for selectattr, map and join.
    static func pick(_ item: TemplateValue, _ path: String) throws -> TemplateValue {
        var v = item
        for part in path.split(separator: ".") {
            switch v {
            case .dict(let d): v = d.first { $0.0 == part }?.1 ?? .undefined(String(part))
            case .list(let a): v = Int(part).flatMap { a.indices.contains($0) ? a[$0] : nil } ?? .undefined(String(part))
            default: v = .undefined(String(part))
            }
        }
        return v
    }

    static func string(_ v: TemplateValue, _ filter: String) throws -> String {
        switch v {
        case .string(let s): return s
        case .undefined: return ""
        default: return v.text
        }
    }

    static func test(_ name: String, _ v: TemplateValue, _ args: [TemplateValue]) throws -> Bool {
        switch name {
        case "defined": return v.isDefined
        case "undefined": return !v.isDefined
        case "none": return v.isNone
        case "string": return v.isString
        case "number":
            switch v { case .int, .double: return true; default: return false }
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "mapping": if case .dict = v { return true }; if case .namespace = v { return true }; return false
        case "sequence", "iterable":
            switch v { case .list, .string, .dict: return true; default: return false }
        case "callable":
            switch v { case .macro, .method, .function: return true; default: return false }
        case "odd", "even":
            guard case .int(let i) = v else { throw TemplateError("\(name) needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case .int(let i) = v, case .int(let j)? = args.first, j != 0 else { throw TemplateError("divisibleby needs integers") }
            return i % j == 0
        case "eq", "equalto", "==", "sameas": return args.first.map { TemplateValue.equal(v, $0) } ?? false
        case "ne", "!=": return args.first.map { !TemplateValue.equal(v, $0) } ?? false
        case "in":
            guard let c = args.first else { return false }
            switch c {
            case .list(let a): return a.contains { TemplateValue.equal($0, v) }
            case .string(let s): return v.isString && s.contains(v.text)
            case .dict(let d): return d.contains { $0.0 == v.text }
            default: return false
            }
        case "lower": if case .string(let s) = v { return s == s.lowercased() }; return false
        case "upper": if case .string(let s) = v { return s == s.uppercased() }; return false
        default: throw TemplateError("no test named '\(name)'")
        }
    }

    static func method(_ name: String, _ receiver: TemplateValue, _ args: [TemplateValue], _ kwargs: [(String, TemplateValue)]) throws -> TemplateValue {
        if case .dict(let d) = receiver {
            switch name {
            case "items": return .list(d.map { .list([.string($0.0), $0.1]) })
            case "keys": return .list(d.map { .string($0.0) })
            case "values": return .list(d.map(\.1))
            case "get":
                guard case .string(let k)? = args.first else { return args.count > 1 ? args[1] : .none }
                return d.first { $0.0 == k }?.1 ?? (args.count > 1 ? args[1] : .none)
            default: break
            }
        }
        guard case .string(let s) = receiver else { throw TemplateError("'\(receiver.typeName)' has no method \(name)") }
        func chars(_ i: Int) -> CharacterSet {
            if case .string(let c)? = (i < args.count ? args[i] : nil) { return CharacterSet(charactersIn: c) }
            return .whitespacesAndNewlines
        }
        switch name {
        case "strip": return .string(s.trimmingCharacters(in: chars(0)))
        case "lstrip":
            let set = chars(0)
            return .string(String(s.unicodeScalars.drop { set.contains($0) }))
        case "rstrip":
            let set = chars(0)
            var u = Array(s.unicodeScalars)
            while let l = u.last, set.contains(l) { u.removeLast() }
            return .string(String(String.UnicodeScalarView(u)))
        case "startswith", "endswith":
            let options: [String]
            switch args.first {
            case .string(let p)?: options = [p]
            case .list(let a)?: options = a.map(\.text)
            default: throw TemplateError("\(name) needs a string")
            }
            return .bool(options.contains { name == "startswith" ? s.hasPrefix($0) : s.hasSuffix($0) })
        case "split", "rsplit":
            let limit: Int? = { if case .int(let n)? = (args.count > 1 ? args[1] : kwargs.first { $0.0 == "maxsplit" }?.1) { return n >= 0 ? n : nil }; return nil }()
            if case .string(let sep)? = args.first {
                guard !sep.isEmpty else { throw TemplateError("empty separator") }
                var parts = s.components(separatedBy: sep)
                if let limit, parts.count > limit + 1 {
                    if name == "split" {
                        parts = Array(parts[0..<limit]) + [parts[limit...].joined(separator: sep)]
                    } else {
                        let cut = parts.count - limit
                        parts = [parts[0..<cut].joined(separator: sep)] + Array(parts[cut...])
                    }
                }
                return .list(parts.map { .string($0) })
            }
            return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        case "splitlines": return .list(s.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { .string(String($0)) })
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "title": return .string(s.capitalized)
        case "capitalize": return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "replace":
            guard args.count >= 2 else { throw TemplateError("replace needs two arguments") }
            return .string(s.replacingOccurrences(of: args[0].text, with: args[1].text))
        case "find":
            guard case .string(let sub)? = args.first else { throw TemplateError("find needs a string") }
            guard let r = s.range(of: sub) else { return .int(-1) }
            return .int(s.distance(from: s.startIndex, to: r.lowerBound))
        case "count":
            guard case .string(let sub)? = args.first, !sub.isEmpty else { throw TemplateError("count needs a string") }
            return .int(s.components(separatedBy: sub).count - 1)
        case "join":
            guard let items = args.first?.iterationItems else { throw TemplateError("join needs a list") }
            return .string(items.map(\.text).joined(separator: s))
        default:
            throw TemplateError("str has no method \(name)")
        }
    }
}
