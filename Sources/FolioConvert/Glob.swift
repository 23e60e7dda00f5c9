/// Shell-style pattern matching for tensor names: `*` any run of characters (dots
/// included), `?` one character, `[abc]` / `[a-z]` / `[!a]` one character of a set.
public struct Glob: Sendable, Hashable {
    public let pattern: String
    private let chars: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        chars = Array(pattern)
    }

    /// True when the pattern can match more than one name.
    public var hasWildcards: Bool { chars.contains { $0 == "*" || $0 == "?" || $0 == "[" } }

    public func matches(_ name: String) -> Bool {
        let s = Array(name)
        var p = 0, i = 0
        var starP = -1, starI = 0
        while i < s.count {
            if p < chars.count, chars[p] == "*" {
                starP = p; starI = i; p += 1
            } else if p < chars.count, let (ok, next) = matchOne(at: p, s[i]), ok {
                p = next; i += 1
            } else if starP >= 0 {
                p = starP + 1; starI += 1; i = starI
            } else {
                return false
            }
        }
        while p < chars.count, chars[p] == "*" { p += 1 }
        return p == chars.count
    }

    /// Whether the pattern element at `p` matches `c`, and where the next element starts.
    private func matchOne(at p: Int, _ c: Character) -> (Bool, Int)? {
        switch chars[p] {
        case "?": return (true, p + 1)
        case "[":
            var j = p + 1
            var negate = false
            if j < chars.count, chars[j] == "!" || chars[j] == "^" { negate = true; j += 1 }
            var found = false
            var first = true
            while j < chars.count, chars[j] != "]" || first {
                first = false
                if j + 2 < chars.count, chars[j + 1] == "-", chars[j + 2] != "]" {
                    if chars[j] <= c && c <= chars[j + 2] { found = true }
                    j += 3
                } else {
                    if chars[j] == c { found = true }
                    j += 1
                }
            }
            guard j < chars.count else { return (chars[p] == c, p + 1) }  // unterminated: literal '['
            return (found != negate, j + 1)
        default:
            return (chars[p] == c, p + 1)
        }
    }
}
