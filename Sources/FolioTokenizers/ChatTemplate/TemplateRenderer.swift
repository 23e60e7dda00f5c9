import Foundation

/// Evaluates a parsed template as Jinja2 does under transformers' `apply_chat_template`
/// (an immutable sandbox: no list or dict mutation; `raise_exception`, `strftime_now` and the
/// loop controls available). Scoping follows Jinja: a `for` body has its own scope, so a
/// `set` inside it is gone after the loop; `namespace` objects carry state across.
final class TemplateRenderer {
    private var scopes: [[String: TemplateValue]]
    private var out = ""
    private var steps = 0
    static let stepLimit = 10_000_000

    enum Flow: Error { case breakLoop, continueLoop }

    init(globals: [String: TemplateValue]) {
        var g = globals
        for f in ["raise_exception", "namespace", "range", "strftime_now", "dict"] where g[f] == nil { g[f] = .function(f) }
        scopes = [g]
    }

    func render(_ nodes: [Node]) throws -> String {
        try run(nodes)
        return out
    }

    // MARK: statements

    private func run(_ nodes: [Node]) throws {
        for node in nodes {
            steps += 1
            guard steps < Self.stepLimit else { throw TemplateError("the template runs too long") }
            switch node {
            case .text(let t): out += t
            case .output(let e): out += try eval(e).text
            case let .ifChain(branches, otherwise):
                var done = false
                for (condition, body) in branches where try eval(condition).truthy {
                    try run(body)
                    done = true
                    break
                }
                if !done { try run(otherwise) }
            case let .forLoop(targets, iterable, condition, body, otherwise):
                let value = try eval(iterable)
                guard var items = value.iterationItems else { throw TemplateError("'\(value.typeName)' object is not iterable") }
                if let condition {
                    items = try items.filter { item in
                        scopes.append(try bind(targets, item))
                        defer { scopes.removeLast() }
                        return try eval(condition).truthy
                    }
                }
                if items.isEmpty { try run(otherwise); break }
                loop: for (i, item) in items.enumerated() {
                    var scope = try bind(targets, item)
                    scope["loop"] = .loop(.init(index0: i, length: items.count, previous: i > 0 ? items[i - 1] : .undefined("loop.previtem"),
                                                next: i + 1 < items.count ? items[i + 1] : .undefined("loop.nextitem")))
                    scopes.append(scope)
                    defer { scopes.removeLast() }
                    do { try run(body) } catch Flow.breakLoop { break loop } catch Flow.continueLoop { continue loop }
                }
            case let .set(target, attribute, value):
                let v = try eval(value)
                if let attribute {
                    guard case .namespace(let ns) = lookup(target) else {
                        throw TemplateError("cannot assign attribute on non-namespace object '\(target)'")
                    }
                    ns[attribute] = v
                } else {
                    scopes[scopes.count - 1][target] = v
                }
            case let .setBlock(target, body):
                let saved = out
                out = ""
                try run(body)
                scopes[scopes.count - 1][target] = .string(out)
                out = saved
            case .macro(let m): scopes[scopes.count - 1][m.name] = .macro(m)
            case .breakLoop: throw Flow.breakLoop
            case .continueLoop: throw Flow.continueLoop
            }
        }
    }

    private func bind(_ targets: [String], _ item: TemplateValue) throws -> [String: TemplateValue] {
        if targets.count == 1 { return [targets[0]: item] }
        guard case .list(let parts) = item, parts.count == targets.count else {
            throw TemplateError("cannot unpack \(item.typeName) into \(targets.count) loop variables")
        }
        return Dictionary(uniqueKeysWithValues: zip(targets, parts).map { ($0, $1) })
    }

    private func lookup(_ name: String) -> TemplateValue {
        for s in scopes.reversed() { if let v = s[name] { return v } }
        return .undefined(name)
    }

    // MARK: expressions

    func eval(_ e: Expression) throws -> TemplateValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map(eval))
        case .dict(let pairs):
            var d: [(String, TemplateValue)] = []
            for (k, v) in pairs {
                guard case .string(let key) = try eval(k) else { throw TemplateError("dict keys must be strings") }
                let value = try eval(v)
                if let i = d.firstIndex(where: { $0.0 == key }) { d[i].1 = value } else { d.append((key, value)) }
            }
            return .dict(d)
        case let .attribute(base, name): return try attribute(try eval(base), name)
        case let .index(base, key): return try item(try eval(base), try eval(key))
        case let .slice(base, a, b, c):
            return try slice(try eval(base), try a.map(eval), try b.map(eval), try c.map(eval))
        case let .call(callee, args, kwargs):
            return try call(try eval(callee), try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) })
        case let .filter(base, name, args, kwargs):
            return try TemplateFilters.apply(name, try eval(base), try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) }, renderer: self)
        case let .test(base, name, args, negated):
            let r = try TemplateFilters.test(name, try eval(base), try args.map(eval))
            return .bool(negated ? !r : r)
        case let .unary(op, x):
            let v = try eval(x)
            if op == "not" { return .bool(!v.truthy) }
            switch v {
            case .int(let i):
                guard i != Int.min else { throw TemplateError("integer overflow") }
                return .int(-i)
            case .double(let d): return .double(-d)
            default: throw TemplateError("bad operand type for unary -: '\(v.typeName)'")
            }
        case let .binary(op, a, b):
            if op == "and" { let x = try eval(a); return x.truthy ? try eval(b) : x }
            if op == "or" { let x = try eval(a); return x.truthy ? x : try eval(b) }
            return try binary(op, try eval(a), try eval(b))
        case let .conditional(condition, yes, no):
            if try eval(condition).truthy { return try eval(yes) }
            return try no.map(eval) ?? .undefined("conditional")
        }
    }

    private func binary(_ op: String, _ x: TemplateValue, _ y: TemplateValue) throws -> TemplateValue {
        switch op {
        case "==": return .bool(TemplateValue.equal(x, y))
        case "!=": return .bool(!TemplateValue.equal(x, y))
        case "~": return .string(x.text + y.text)
        case "in", "not in":
            let r: Bool
            switch y {
            case .string(let s):
                guard case .string(let sub) = x else { throw TemplateError("'in <string>' requires string as left operand, not \(x.typeName)") }
                r = sub.isEmpty || s.contains(sub)
            case .list(let a): r = a.contains { TemplateValue.equal($0, x) }
            case .dict(let d): r = d.contains { if case .string(let k) = x { return $0.0 == k }; return false }
            case .undefined: throw TemplateError("argument of type 'Undefined' is not iterable")
            default: throw TemplateError("argument of type '\(y.typeName)' is not iterable")
            }
            return .bool(op == "in" ? r : !r)
        case "<", ">", "<=", ">=":
            let c: Bool
            if case .string(let s) = x, case .string(let t) = y {
                let a = Array(s.unicodeScalars).map(\.value), b = Array(t.unicodeScalars).map(\.value)
                c = op == "<" ? a.lexicographicallyPrecedes(b) : op == ">" ? b.lexicographicallyPrecedes(a)
                    : op == "<=" ? !b.lexicographicallyPrecedes(a) : !a.lexicographicallyPrecedes(b)
            } else if let a = x.number, let b = y.number {
                c = op == "<" ? a < b : op == ">" ? a > b : op == "<=" ? a <= b : a >= b
            } else {
                throw TemplateError("'\(op)' not supported between instances of '\(x.typeName)' and '\(y.typeName)'")
            }
            return .bool(c)
        case "+":
            switch (x, y) {
            case let (.string(a), .string(b)): return .string(a + b)
            case let (.list(a), .list(b)): return .list(a + b)
            case let (.int(a), .int(b)):
                let (r, o) = a.addingReportingOverflow(b)
                guard !o else { throw TemplateError("integer overflow") }
                return .int(r)
            default:
                if let a = x.number, let b = y.number, !(x.isString || y.isString) { return .double(a + b) }
                throw TemplateError("unsupported operand type(s) for +: '\(x.typeName)' and '\(y.typeName)'")
            }
        case "-", "*", "/", "//", "%", "**":
            if op == "*", case .string(let s) = x, case .int(let n) = y { return .string(String(repeating: s, count: max(0, n))) }
            if op == "%", case .string = x { throw TemplateError("printf-style string formatting is not supported") }
            guard let a = x.number, let b = y.number else {
                throw TemplateError("unsupported operand type(s) for \(op): '\(x.typeName)' and '\(y.typeName)'")
            }
            if case .int(let i) = x, case .int(let j) = y, op != "/" {
                func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> TemplateValue {
                    guard !r.overflow else { throw TemplateError("integer overflow") }
                    return .int(r.partialValue)
                }
                switch op {
                case "-": return try checked(i.subtractingReportingOverflow(j))
                case "*": return try checked(i.multipliedReportingOverflow(by: j))
                case "//", "%":
                    guard j != 0 else { throw TemplateError("integer division or modulo by zero") }
                    guard !(i == Int.min && j == -1) else { throw TemplateError("integer overflow") }
                    // Python's floor division and a remainder with the divisor's sign.
                    var q = i / j, r = i % j
                    if r != 0 && ((r < 0) != (j < 0)) { q -= 1; r += j }
                    return op == "//" ? .int(q) : .int(r)
                default:
                    guard j >= 0 else { return .double(pow(Double(i), Double(j))) }
                    var result = 1, base = i, e = j
                    while e > 0 {
                        if e & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: base)).intValue }
                        e >>= 1
                        if e > 0 { base = try checked(base.multipliedReportingOverflow(by: base)).intValue }
                    }
                    return .int(result)
                }
            }
            switch op {
            case "-": return .double(a - b)
            case "*": return .double(a * b)
            case "/":
                guard b != 0 else { throw TemplateError("division by zero") }
                return .double(a / b)
            case "//": return .double((a / b).rounded(.down))
            case "%": return .double(a - (a / b).rounded(.down) * b)
            default: return .double(pow(a, b))
            }
        default: throw TemplateError("unknown operator \(op)")
        }
    }

    private func attribute(_ v: TemplateValue, _ name: String) throws -> TemplateValue {
        switch v {
        case .dict(let d):
            if let x = d.first(where: { $0.0 == name })?.1 { return x }
            if ["items", "keys", "values", "get"].contains(name) { return .method(name, v) }
            return .undefined(name)
        case .namespace(let ns): return ns[name] ?? .undefined(name)
        case .loop(let l):
            switch name {
            case "index": return .int(l.index0 + 1)
            case "index0": return .int(l.index0)
            case "revindex": return .int(l.length - l.index0)
            case "revindex0": return .int(l.length - l.index0 - 1)
            case "first": return .bool(l.index0 == 0)
            case "last": return .bool(l.index0 == l.length - 1)
            case "length": return .int(l.length)
            case "previtem": return l.previous
            case "nextitem": return l.next
            default: return .undefined("loop.\(name)")
            }
        case .string:
            let methods = ["strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "upper", "lower", "title",
                           "capitalize", "replace", "find", "count", "join", "format", "splitlines"]
            return methods.contains(name) ? .method(name, v) : .undefined(name)
        case .undefined(let n):
            throw TemplateError("'\(n)' is undefined")
        case .none:
            throw TemplateError("'None' has no attribute '\(name)'")
        default:
            return .undefined(name)
        }
    }

    private func item(_ v: TemplateValue, _ index: TemplateValue) throws -> TemplateValue {
        switch (v, index) {
        case let (.dict(d), .string(k)): return d.first { $0.0 == k }?.1 ?? .undefined(k)
        case let (.list(a), .int(i)):
            let j = i < 0 ? a.count + i : i
            return a.indices.contains(j) ? a[j] : .undefined("[\(i)]")
        case let (.string(s), .int(i)):
            let c = Array(s)
            let j = i < 0 ? c.count + i : i
            return c.indices.contains(j) ? .string(String(c[j])) : .undefined("[\(i)]")
        case (.namespace, .string(let k)), (.loop, .string(let k)): return try attribute(v, k)
        case (.undefined(let n), _): throw TemplateError("'\(n)' is undefined")
        default: return .undefined("[\(index.text)]")
        }
    }

    private func slice(_ v: TemplateValue, _ a: TemplateValue?, _ b: TemplateValue?, _ c: TemplateValue?) throws -> TemplateValue {
        func int(_ x: TemplateValue?) throws -> Int? {
            guard let x, !(x.isNone) else { return nil }
            guard case .int(let i) = x else { throw TemplateError("slice indices must be integers or None") }
            return i
        }
        let step = try int(c) ?? 1
        guard step != 0 else { throw TemplateError("slice step cannot be zero") }
        func pick<T>(_ items: [T]) throws -> [T] {
            let n = items.count
            func norm(_ i: Int?, _ def: Int) -> Int {
                guard var i else { return def }
                if i < 0 { i += n }
                return step > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
            }
            let start = norm(try int(a), step > 0 ? 0 : n - 1), end = norm(try int(b), step > 0 ? n : -1)
            var r: [T] = []
            var i = start
            while step > 0 ? i < end : i > end { r.append(items[i]); i += step }
            return r
        }
        switch v {
        case .list(let items): return .list(try pick(items))
        case .string(let s): return .string(String(try pick(Array(s))))
        default: throw TemplateError("'\(v.typeName)' object is not subscriptable")
        }
    }

    private func call(_ f: TemplateValue, _ args: [TemplateValue], _ kwargs: [(String, TemplateValue)]) throws -> TemplateValue {
        switch f {
        case .function(let name):
            switch name {
            case "raise_exception": throw TemplateError(args.first?.text ?? "raise_exception called")
            case "namespace", "dict":
                var fields: [(String, TemplateValue)] = []
                if case .dict(let d)? = args.first { fields = d }
                for (k, v) in kwargs {
                    if let i = fields.firstIndex(where: { $0.0 == k }) { fields[i].1 = v } else { fields.append((k, v)) }
                }
                return name == "namespace" ? .namespace(.init(fields)) : .dict(fields)
            case "range":
                let ints = try args.map { v -> Int in
                    guard case .int(let i) = v else { throw TemplateError("range() takes integers") }
                    return i
                }
                let (lo, hi, step) = ints.count == 1 ? (0, ints[0], 1) : ints.count == 2 ? (ints[0], ints[1], 1) : ints.count == 3 ? (ints[0], ints[1], ints[2]) : (0, 0, 0)
                guard step != 0, ints.count <= 3, ints.count >= 1 else { throw TemplateError("bad arguments to range()") }
                let span = Double(hi) - Double(lo)
                guard abs(span / Double(step)) < 1_000_000 else { throw TemplateError("range() too large") }
                return .list(stride(from: lo, to: hi, by: step).map { .int($0) })
            case "strftime_now":
                guard case .string(let format)? = args.first else { throw TemplateError("strftime_now needs a format") }
                return .string(Self.strftime(format, Date()))
            default: throw TemplateError("unknown function \(name)")
            }
        case let .method(name, receiver):
            return try TemplateFilters.method(name, receiver, args, kwargs)
        case .macro(let m):
            var scope: [String: TemplateValue] = [:]
            for (i, (p, def)) in m.parameters.enumerated() {
                if let kw = kwargs.first(where: { $0.0 == p }) { scope[p] = kw.1 } else if i < args.count { scope[p] = args[i] } else if let def {
                    scope[p] = try eval(def)
                } else { scope[p] = .undefined(p) }
            }
            let saved = out
            out = ""
            scopes.append(scope)
            defer { scopes.removeLast() }
            try run(m.body)
            let result = out
            out = saved
            return .string(result)
        case .undefined(let n): throw TemplateError("'\(n)' is undefined")
        default: throw TemplateError("'\(f.typeName)' object is not callable")
        }
    }

    /// C strftime of the current local time (transformers' `strftime_now`).
    static func strftime(_ format: String, _ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [Int8](repeating: 0, count: 256)
        let n = Foundation.strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension TemplateValue {
    var intValue: Int { if case .int(let i) = self { return i }; return 0 }
    var isString: Bool { if case .string = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }
}
