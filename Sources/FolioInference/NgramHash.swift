/// The hashed n-gram ids of LongCat-Flash-Lite's n-gram embedding (arXiv 2601.21204).
///
/// With vocabulary size V, k = emb_split_num, n = emb_neighbor_num and
/// m = ngram_vocab_size_ratio · V, there are k(n-1) tables; table `index` = (g-2)·k + j
/// (g = 2...n the n-gram length, j < k the split) has M = m + 2·index + 1 rows, and the
/// row of token t is (Σ_{d=0}^{g-1} x[t-d] · (V^d mod M)) mod M, positions before the start
/// counting as token 0. V^d is reduced mod M before the product so that every term stays
/// below V·M and the sum fits 64 bits (checked when the hasher is made).
public struct NgramHasher: Sendable {
    public struct Table: Sendable {
        /// n-gram length g (2...n).
        public let length: Int
        /// Rows of the table, M.
        public let modulus: Int64
        /// V^d mod M for d = 1 ..< length.
        public let multipliers: [Int64]
    }

    public let vocabSize: Int
    public let tables: [Table]
    /// n - 1: the tokens of history an id needs.
    public let history: Int

    /// Throws a one-line reason when the sizes are out of range or a sum could overflow.
    public init(vocabSize v: Int, ratio: Int, splits k: Int, neighbors n: Int) throws {
        func bad(_ field: String, _ reason: String) -> InferenceError { .badConfig(file: "config.json", field: field, reason: reason) }
        guard v >= 1, v <= 1 << 31 else { throw bad("vocab_size", "must be in 1...2^31") }
        guard ratio >= 1, ratio <= 1 << 20 else { throw bad("ngram_vocab_size_ratio", "must be in 1...2^20") }
        guard k >= 1, k <= 64 else { throw bad("emb_split_num", "must be in 1...64") }
        guard n >= 2, n <= 16 else { throw bad("emb_neighbor_num", "must be in 2...16") }
        let m = Int64(v) * Int64(ratio)
        var list: [(length: Int, modulus: Int64)] = []
        for g in 2...n {
            for j in 0..<k { list.append((g, m + 2 * Int64((g - 2) * k + j) + 1)) }
        }
        try self.init(vocabSize: v, tables: list)
    }

    /// Tables of given n-gram lengths (2...16) and row counts, for synthetic workloads.
    public init(vocabSize v: Int, tables list: [(length: Int, modulus: Int64)]) throws {
        func bad(_ field: String, _ reason: String) -> InferenceError { .badConfig(file: "config.json", field: field, reason: reason) }
        guard v >= 1, v <= 1 << 31 else { throw bad("vocab_size", "must be in 1...2^31") }
        var tables: [Table] = []
        for (g, modulus) in list {
            guard g >= 2, g <= 16 else { throw bad("emb_neighbor_num", "n-gram length \(g) must be in 2...16") }
            guard modulus >= 1, modulus < 1 << 52 else { throw bad("ngram_vocab_size_ratio", "table rows \(modulus) must be in 1..<2^52") }
            var mult: [Int64] = []
            var p: Int64 = 1
            for _ in 1..<g {
                // p and V mod M are below M < 2^52: their product needs 128 bits, and its
                // quotient by M (below M) fits 64.
                let (hi, lo) = p.multipliedFullWidth(by: Int64(v) % modulus)
                p = Int64(truncatingIfNeeded: modulus.dividingFullWidth((hi, lo)).remainder)
                mult.append(p)
            }
            // Largest sum: (V-1) · (1 + Σ multipliers) must stay below 2^63.
            var bound: Int64 = 1
            for x in mult {
                let (s, o) = bound.addingReportingOverflow(x)
                guard !o else { throw bad("ngram_vocab_size_ratio", "n-gram sums would overflow 64 bits") }
                bound = s
            }
            guard !bound.multipliedReportingOverflow(by: Int64(v)).overflow else {
                throw bad("ngram_vocab_size_ratio", "n-gram sums would overflow 64 bits")
            }
            tables.append(Table(length: g, modulus: modulus, multipliers: mult))
        }
        vocabSize = v
        self.tables = tables
        history = (tables.map(\.length).max() ?? 1) - 1
    }

    /// Row ids for the token `tokens[t]`, one per table, into `out` (tables.count values).
    /// `tokens` holds at least `history` earlier tokens before t or starts at the sequence's
    /// start; earlier positions count as 0. `floor` is the first index that counts as history
    /// (positions before it read as 0, so that a sequence can restart at an end token).
    @inlinable
    public func ids(_ tokens: UnsafeBufferPointer<Int32>, at t: Int, floor: Int = 0, into out: UnsafeMutablePointer<Int64>) {
        for (i, table) in tables.enumerated() {
            var sum = Int64(tokens[t])
            for d in 1..<table.length {
                let p = t - d
                if p >= floor { sum += Int64(tokens[p]) * table.multipliers[d - 1] }
            }
            out[i] = sum % table.modulus
        }
    }
}
