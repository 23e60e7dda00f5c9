/// The syntax tree of a template: the Jinja statements and expressions chat templates use.
indirect enum Expression {
    case literal(TemplateValue)
    case name(String)
    case list([Expression])
    case dict([(Expression, Expression)])
    case attribute(Expression, String)
    case index(Expression, Expression)
    case slice(Expression, Expression?, Expression?, Expression?)
    case call(Expression, [Expression], [(String, Expression)])
    case filter(Expression, String, [Expression], [(String, Expression)])
    case test(Expression, String, [Expression], negated: Bool)
    case unary(String, Expression)
    case binary(String, Expression, Expression)
    case conditional(Expression, Expression, Expression?)
}

indirect enum Node {
    case text(String)
    case output(Expression)
    case ifChain([(Expression, [Node])], otherwise: [Node])
    case forLoop(targets: [String], iterable: Expression, condition: Expression?, body: [Node], otherwise: [Node])
    case set(target: String, attribute: String?, value: Expression)
    case setBlock(target: String, body: [Node])
    case macro(TemplateValue.Macro)
    case breakLoop, continueLoop
}

/// Splits template source into text and tags with Jinja's whitespace rules as transformers
/// configures them (`trim_blocks` and `lstrip_blocks` on): the first newline after a block or
/// comment tag is dropped, spaces and tabs before one at the start of a line are dropped
/// (unless it opens with `{%+`), and `-` on either side of any tag strips all whitespace there.
struct TemplateLexer {
    enum Piece { case text(String), output(String, line: Int), statement(String, line: Int) }

    static func split(_ source: String) throws -> [Piece] {
        let s = Array(source.unicodeScalars)
        var pieces: [Piece] = []
        var text: [Unicode.Scalar] = []
        var i = 0, line = 1
        var trimNextNewline = false, stripNextWhitespace = false
        // Whether the text since the last tag starts a line (the tag's own consumed text, a
        // trimmed newline included, ended in one), as Jinja's lexer tracks for lstrip_blocks.
        var lineStarting = true
        func flush() {
            if !text.isEmpty { pieces.append(.text(String(String.UnicodeScalarView(text)))) }
            text = []
        }
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" {
                let kind = s[i + 1]
                let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
                var j = i + 2
                var stripBefore = false, keepBefore = false
                if j < s.count, s[j] == "-" { stripBefore = true; j += 1 } else if j < s.count, s[j] == "+" { keepBefore = true; j += 1 }
                // The tag's end, outside string literals and brackets (Jinja balances them, so
                // `{{ {'a': {'b': 1}} }}` ends at the last braces).
                var k = j
                var quote: Unicode.Scalar? = nil
                var depth = 0
                var end = -1
                while k + 1 < s.count {
                    let c = s[k]
                    if let q = quote {
                        if c == "\\" { k += 2; continue }
                        if c == q { quote = nil }
                    } else if kind != "#" && (c == "'" || c == "\"") {
                        quote = c
                    } else if kind != "#" && (c == "(" || c == "[" || c == "{") {
                        depth += 1
                    } else if depth > 0 && (c == ")" || c == "]" || c == "}") {
                        depth -= 1
                    } else if c == close && s[k + 1] == "}" {
                        end = k
                        break
                    }
                    k += 1
                }
                guard end >= 0 else { throw TemplateError("line \(line): unclosed \(kind == "{" ? "{{" : kind == "%" ? "{%" : "{#") tag") }
                var innerEnd = end
                var stripAfter = false
                if innerEnd > j, s[innerEnd - 1] == "-" { stripAfter = true; innerEnd -= 1 }
                // Whitespace before the tag.
                if stripBefore {
                    while let last = text.last, last.properties.isWhitespace { text.removeLast() }
                } else if kind != "{" && !keepBefore {
                    // lstrip_blocks: spaces and tabs back to the start of the line.
                    var n = text.count
                    while n > 0, text[n - 1] == " " || text[n - 1] == "\t" { n -= 1 }
                    let atLineStart = n == 0 ? lineStarting : text[n - 1] == "\n"
                    if atLineStart { text.removeSubrange(n...) }
                }
                flush()
                let inner = String(String.UnicodeScalarView(s[j..<innerEnd]))
                let tagLine = line
                for c in s[i..<(end + 2)] where c == "\n" { line += 1 }
                if kind == "{" { pieces.append(.output(inner, line: tagLine)) } else if kind == "%" { pieces.append(.statement(inner, line: tagLine)) }
                i = end + 2
                stripNextWhitespace = stripAfter
                trimNextNewline = kind != "{" && !stripAfter
                lineStarting = false
                if stripNextWhitespace {
                    while i < s.count, s[i].properties.isWhitespace {
                        if s[i] == "\n" { line += 1 }
                        lineStarting = s[i] == "\n"
                        i += 1
                    }
                } else if trimNextNewline, i < s.count, s[i] == "\n" {
                    line += 1
                    i += 1
                    lineStarting = true
                }
                continue
            }
            if s[i] == "\n" { line += 1 }
            text.append(s[i])
            i += 1
        }
        flush()
        return pieces
    }
}

/// Tokens of an expression.
enum Token: Equatable {
    case name(String), string(String), int(Int), double(Double), op(String), end
}

struct ExpressionLexer {
    static func tokens(_ src: String, line: Int) throws -> [Token] {
        let s = Array(src.unicodeScalars)
        var out: [Token] = []
        var i = 0
        let ops3 = ["//=", "**="], ops2 = ["==", "!=", "<=", ">=", "//", "**"]
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while j < s.count, s[j] == "_" || s[j].properties.isAlphabetic || ("0"..."9").contains(s[j]) { j += 1 }
                out.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
                i = j
                continue
            }
            if ("0"..."9").contains(c) {
                var j = i
                while j < s.count, ("0"..."9").contains(s[j]) || s[j] == "_" { j += 1 }
                var isFloat = false
                if j + 1 < s.count, s[j] == ".", ("0"..."9").contains(s[j + 1]) {
                    isFloat = true
                    j += 1
                    while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
                }
                if j < s.count, s[j] == "e" || s[j] == "E" {
                    var k = j + 1
                    if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
                    if k < s.count, ("0"..."9").contains(s[k]) {
                        isFloat = true
                        j = k
                        while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
                    }
                }
                let text = String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: "")
                if isFloat { out.append(.double(Double(text) ?? 0)) } else {
                    guard let v = Int(text) else { throw TemplateError("line \(line): integer \(text) is too large") }
                    out.append(.int(v))
                }
                i = j
                continue
            }
            if c == "'" || c == "\"" {
                var j = i + 1
                var value = ""
                while j < s.count, s[j] != c {
                    if s[j] == "\\", j + 1 < s.count {
                        j += 1
                        switch s[j] {
                        case "n": value += "\n"
                        case "t": value += "\t"
                        case "r": value += "\r"
                        case "\\": value += "\\"
                        case "'": value += "'"
                        case "\"": value += "\""
                        case "u" where j + 4 < s.count:
                            let hex = String(String.UnicodeScalarView(s[(j + 1)...(j + 4)]))
                            if let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) { value.unicodeScalars.append(u); j += 4 } else { value += "\\u" }
                        case "x" where j + 2 < s.count:
                            let hex = String(String.UnicodeScalarView(s[(j + 1)...(j + 2)]))
                            if let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) { value.unicodeScalars.append(u); j += 2 } else { value += "\\x" }
                        default: value += "\\"; value.unicodeScalars.append(s[j])
                        }
                    } else {
                        value.unicodeScalars.append(s[j])
                    }
                    j += 1
                }
                guard j < s.count else { throw TemplateError("line \(line): unterminated string") }
                out.append(.string(value))
                i = j + 1
                continue
            }
            let rest = String(String.UnicodeScalarView(s[i..<min(s.count, i + 3)]))
            if let op = ops3.first(where: { rest.hasPrefix($0) }) { out.append(.op(op)); i += 3; continue }
            if let op = ops2.first(where: { rest.hasPrefix($0) }) { out.append(.op(op)); i += 2; continue }
            guard "+-*/%~<>=()[]{}.,:|!".unicodeScalars.contains(c) else { throw TemplateError("line \(line): unexpected character '\(c)'") }
            out.append(.op(String(c)))
            i += 1
        }
        out.append(.end)
        return out
    }
}

/// Parses template pieces into nodes, and expressions by Jinja's precedence: conditional,
/// or, and, not, comparisons (and `in`), `~`, `+ -`, `* / // %`, `**`, unary minus, then
/// filters and tests, then attribute, subscript and call postfixes.
struct TemplateParser {
    let pieces: [TemplateLexer.Piece]
    var at = 0

    init(_ pieces: [TemplateLexer.Piece]) { self.pieces = pieces }

    static func parse(_ source: String) throws -> [Node] {
        // As Jinja's lexer: line endings become "\n", and one final newline is dropped
        // (keep_trailing_newline off).
        var text = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        var p = TemplateParser(try TemplateLexer.split(text))
        let (nodes, end) = try p.block(until: [])
        if let end { throw TemplateError("line \(end.line): unexpected {% \(end.keyword) %}") }
        return nodes
    }

    /// Nodes up to a statement whose keyword is in `until` (returned with its tokens).
    mutating func block(until: Set<String>) throws -> ([Node], (keyword: String, tokens: [Token], line: Int)?) {
        var nodes: [Node] = []
        while at < pieces.count {
            let piece = pieces[at]
            at += 1
            switch piece {
            case .text(let t): nodes.append(.text(t))
            case let .output(src, line):
                var e = ExpressionParser(try ExpressionLexer.tokens(src, line: line), line: line)
                let expr = try e.expression()
                try e.expectEnd()
                nodes.append(.output(expr))
            case let .statement(src, line):
                let tokens = try ExpressionLexer.tokens(src, line: line)
                guard case .name(let keyword) = tokens.first else { throw TemplateError("line \(line): empty or unknown statement '\(src)'") }
                if until.contains(keyword) { return (nodes, (keyword, Array(tokens.dropFirst()), line)) }
                nodes.append(contentsOf: try statement(keyword, Array(tokens.dropFirst()), line: line))
            }
        }
        if !until.isEmpty { throw TemplateError("unexpected end of template: missing {% \(until.sorted().joined(separator: " or ")) %}") }
        return (nodes, nil)
    }

    mutating func statement(_ keyword: String, _ tokens: [Token], line: Int) throws -> [Node] {
        var e = ExpressionParser(tokens, line: line)
        switch keyword {
        case "if":
            var branches: [(Expression, [Node])] = []
            var condition = try e.expression()
            try e.expectEnd()
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let end else { break }
                if end.keyword == "elif" {
                    var c = ExpressionParser(end.tokens, line: end.line)
                    condition = try c.expression()
                    try c.expectEnd()
                    continue
                }
                if end.keyword == "else" {
                    let (otherwise, _) = try block(until: ["endif"])
                    return [.ifChain(branches, otherwise: otherwise)]
                }
                break
            }
            return [.ifChain(branches, otherwise: [])]
        case "for":
            var targets: [String] = []
            repeat {
                guard case .name(let n) = e.next() else { throw TemplateError("line \(line): for needs a loop variable") }
                targets.append(n)
            } while e.accept(.op(","))
            guard e.accept(.name("in")) else { throw TemplateError("line \(line): for needs 'in'") }
            let iterable = try e.orExpression(allowConditional: false)
            var condition: Expression? = nil
            if e.accept(.name("if")) { condition = try e.expression() }
            if e.accept(.name("recursive")) { throw TemplateError("line \(line): recursive loops are not supported") }
            try e.expectEnd()
            let (body, end) = try block(until: ["else", "endfor"])
            var otherwise: [Node] = []
            if end?.keyword == "else" { otherwise = try block(until: ["endfor"]).0 }
            return [.forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise)]
        case "set":
            guard case .name(let target) = e.next() else { throw TemplateError("line \(line): set needs a name") }
            var attribute: String? = nil
            if e.accept(.op(".")) {
                guard case .name(let a) = e.next() else { throw TemplateError("line \(line): set needs an attribute name after '.'") }
                attribute = a
            }
            if e.accept(.end) {
                guard attribute == nil else { throw TemplateError("line \(line): a set block assigns a name") }
                let (body, _) = try block(until: ["endset"])
                return [.setBlock(target: target, body: body)]
            }
            guard e.accept(.op("=")) else { throw TemplateError("line \(line): set needs '='") }
            let value = try e.expression()
            try e.expectEnd()
            return [.set(target: target, attribute: attribute, value: value)]
        case "macro":
            guard case .name(let name) = e.next(), e.accept(.op("(")) else { throw TemplateError("line \(line): macro needs a name and parameters") }
            var params: [(String, Expression?)] = []
            while !e.accept(.op(")")) {
                guard case .name(let p) = e.next() else { throw TemplateError("line \(line): bad macro parameter") }
                params.append((p, e.accept(.op("=")) ? try e.expression() : nil))
                _ = e.accept(.op(","))
            }
            try e.expectEnd()
            let (body, _) = try block(until: ["endmacro"])
            return [.macro(TemplateValue.Macro(name: name, parameters: params, body: body))]
        case "break": try e.expectEnd(); return [.breakLoop]
        case "continue": try e.expectEnd(); return [.continueLoop]
        case "generation", "endgeneration":
            // transformers' AssistantTracker marks assistant text; rendering is unchanged.
            return []
        case "filter":
            guard case .name(let f) = e.next() else { throw TemplateError("line \(line): filter needs a name") }
            try e.expectEnd()
            let (body, _) = try block(until: ["endfilter"])
            return [.setBlock(target: "\u{0}filter", body: body), .output(.filter(.name("\u{0}filter"), f, [], []))]
        default:
            throw TemplateError("line \(line): statement '\(keyword)' is not supported")
        }
    }
}

struct ExpressionParser {
    var tokens: [Token]
    var at = 0
    let line: Int

    init(_ tokens: [Token], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var peek: Token { tokens[at] }
    mutating func next() -> Token { let t = tokens[at]; if at < tokens.count - 1 { at += 1 }; return t }
    mutating func accept(_ t: Token) -> Bool {
        if peek == t { _ = next(); return true }
        return false
    }
    func error(_ m: String) -> TemplateError { TemplateError("line \(line): \(m)") }
    mutating func expect(_ t: Token) throws { guard accept(t) else { throw error("expected \(t), found \(peek)") } }
    mutating func expectEnd() throws { guard peek == .end else { throw error("unexpected \(peek)") } }

    mutating func expression() throws -> Expression { try orExpression(allowConditional: true) }

    mutating func orExpression(allowConditional: Bool) throws -> Expression {
        var e = try andExpression()
        while accept(.name("or")) { e = .binary("or", e, try andExpression()) }
        if allowConditional, accept(.name("if")) {
            let condition = try orExpression(allowConditional: false)
            let otherwise = accept(.name("else")) ? try expression() : nil
            return .conditional(condition, e, otherwise)
        }
        return e
    }

    mutating func andExpression() throws -> Expression {
        var e = try notExpression()
        while accept(.name("and")) { e = .binary("and", e, try notExpression()) }
        return e
    }

    mutating func notExpression() throws -> Expression {
        if accept(.name("not")) { return .unary("not", try notExpression()) }
        return try comparison()
    }

    /// Comparisons chain as in Python: `a < b < c` is `a < b and b < c`.
    mutating func comparison() throws -> Expression {
        var left = try concat()
        var result: Expression? = nil
        while true {
            let op: String
            if case .op(let o) = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                _ = next()
                op = o
            } else if accept(.name("in")) {
                op = "in"
            } else if peek == .name("not"), tokens.count > at + 1, tokens[at + 1] == .name("in") {
                _ = next(); _ = next()
                op = "not in"
            } else {
                return result ?? left
            }
            let right = try concat()
            let link = Expression.binary(op, left, right)
            result = result.map { .binary("and", $0, link) } ?? link
            left = right
        }
    }

    mutating func concat() throws -> Expression {
        var e = try sum()
        while accept(.op("~")) { e = .binary("~", e, try sum()) }
        return e
    }

    mutating func sum() throws -> Expression {
        var e = try product()
        while case .op(let o) = peek, o == "+" || o == "-" {
            _ = next()
            e = .binary(o, e, try product())
        }
        return e
    }

    mutating func product() throws -> Expression {
        var e = try power()
        while case .op(let o) = peek, ["*", "/", "//", "%"].contains(o) {
            _ = next()
            e = .binary(o, e, try power())
        }
        return e
    }

    mutating func power() throws -> Expression {
        var e = try unary()
        while accept(.op("**")) { e = .binary("**", e, try unary()) }
        return e
    }

    mutating func unary() throws -> Expression {
        if accept(.op("-")) { return .unary("-", try unary()) }
        if accept(.op("+")) { return try unary() }
        return try filtered(try postfix(try primary()))
    }

    mutating func filtered(_ base: Expression) throws -> Expression {
        var e = base
        while true {
            if accept(.op("|")) {
                guard case .name(let f) = next() else { throw error("expected a filter name") }
                var args: [Expression] = [], kwargs: [(String, Expression)] = []
                if accept(.op("(")) { (args, kwargs) = try arguments() }
                e = .filter(e, f, args, kwargs)
                e = try postfix(e)
            } else if accept(.name("is")) {
                let negated = accept(.name("not"))
                guard case .name(let t) = next() else { throw error("expected a test name") }
                var args: [Expression] = []
                if accept(.op("(")) {
                    args = try arguments().0
                } else if case .name(let n) = peek, !["and", "or", "else", "if", "not", "in", "is"].contains(n) {
                    args = [try primary()]
                } else if case .string = peek { args = [try primary()] } else if case .int = peek { args = [try primary()] }
                e = .test(e, t, args, negated: negated)
            } else {
                return e
            }
        }
    }

    mutating func arguments() throws -> ([Expression], [(String, Expression)]) {
        var args: [Expression] = [], kwargs: [(String, Expression)] = []
        while !accept(.op(")")) {
            if case .name(let n) = peek, tokens.count > at + 1, tokens[at + 1] == .op("=") {
                _ = next(); _ = next()
                kwargs.append((n, try expression()))
            } else {
                args.append(try expression())
            }
            if !accept(.op(",")) { try expect(.op(")")); break }
        }
        return (args, kwargs)
    }

    mutating func postfix(_ base: Expression) throws -> Expression {
        var e = base
        while true {
            if accept(.op(".")) {
                switch next() {
                case .name(let n): e = .attribute(e, n)
                case .int(let i): e = .index(e, .literal(.int(i)))
                default: throw error("expected an attribute name after '.'")
                }
            } else if accept(.op("[")) {
                var parts: [Expression?] = [nil]
                var colons = 0
                while !accept(.op("]")) {
                    if accept(.op(":")) { colons += 1; parts.append(nil); continue }
                    guard parts[parts.count - 1] == nil else { throw error("expected ']'") }
                    parts[parts.count - 1] = try expression()
                }
                if colons == 0 {
                    guard let index = parts[0] else { throw error("empty subscript") }
                    e = .index(e, index)
                } else {
                    while parts.count < 3 { parts.append(nil) }
                    e = .slice(e, parts[0], parts[1], parts[2])
                }
            } else if accept(.op("(")) {
                let (args, kwargs) = try arguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    mutating func primary() throws -> Expression {
        switch next() {
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .string(var s):
            while case .string(let more) = peek { s += more; _ = next() }  // adjacent literals join
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .op("("):
            let e = try expression()
            if accept(.op(",")) {
                var items = [e]
                while !accept(.op(")")) {
                    items.append(try expression())
                    if !accept(.op(",")) { try expect(.op(")")); break }
                }
                return .list(items)
            }
            try expect(.op(")"))
            return e
        case .op("["):
            var items: [Expression] = []
            while !accept(.op("]")) {
                items.append(try expression())
                if !accept(.op(",")) { try expect(.op("]")); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(Expression, Expression)] = []
            while !accept(.op("}")) {
                let k = try expression()
                try expect(.op(":"))
                pairs.append((k, try expression()))
                if !accept(.op(",")) { try expect(.op("}")); break }
            }
            return .dict(pairs)
        case let t:
            throw error("unexpected \(t)")
        }
    }
}
