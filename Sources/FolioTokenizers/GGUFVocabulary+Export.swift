import Folio

/// A byte-level BPE tokenizer as GGUF's `tokenizer.ggml.*` keys describe one (model "gpt2"),
/// the inverse of `GGUFVocabulary`: what llama.cpp's converter (`convert_hf_to_gguf.py`,
/// `_set_vocab_gpt2`) writes for a Hugging Face tokenizer.json.
public struct GGUFTokenizerExport: Sendable {
    /// `tokenizer.ggml.pre`: llama.cpp's name of the pre-tokenizer ("gpt-2", "llama-bpe", "qwen2").
    public let pre: String
    /// One token per id, `vocabSize` of them: the vocabulary's byte-level strings, added
    /// tokens' contents, and "[PADi]" for ids the tokenizer does not define.
    public let tokens: [String]
    /// llama.cpp's token types: 1 normal, 3 control (special added tokens), 4 user-defined
    /// (other added tokens), 5 unused (padding ids).
    public let tokenTypes: [Int32]
    /// "a b" per merge, in rank order.
    public let merges: [String]
    /// The id the post-processor puts before the text, and the one it puts after, if any.
    public let bosID: Int32?
    public let eosID: Int32?
}

extension BPETokenizer {
    /// The GGUF description of this tokenizer for a model of `vocabSize` embedding rows.
    /// - Throws: `TokenizerError.unsupported` when llama.cpp has no pre-tokenizer of the same
    ///   behaviour, when the post-processor adds more than one token on either side, or when
    ///   the tokenizer defines ids beyond `vocabSize`.
    public func ggufExport(vocabSize rows: Int, file: String) throws -> GGUFTokenizerExport {
        func unsupported(_ reason: String) -> TokenizerError { .unsupported(file: file, reason: reason + " (GGUF export)") }
        let pre: String
        switch (preTokenizer.count, preTokenizer.first, preTokenizer.last) {
        case (1, .byteLevel(addPrefixSpace: false, useRegex: true)?, _) where !ignoreMerges && !nfc:
            pre = "gpt-2"
        case (2, .split(.regex(.llama3), .isolated, invert: false)?, .byteLevel(addPrefixSpace: false, useRegex: false)?) where ignoreMerges && !nfc:
            pre = "llama-bpe"
        case (2, .split(.regex(.qwen2), .isolated, invert: false)?, .byteLevel(addPrefixSpace: false, useRegex: false)?) where !ignoreMerges:
            pre = "qwen2"
        default:
            throw unsupported("the pre-tokenizer matches none of llama.cpp's gpt-2, llama-bpe and qwen2")
        }
        guard vocabSize <= rows else {
            throw unsupported("the tokenizer defines \(vocabSize) ids, the model's embedding has \(rows) rows")
        }
        var tokens = (0..<rows).map { "[PAD\($0)]" }
        var types = [Int32](repeating: 5, count: rows)
        for (bytes, id) in vocab {
            tokens[Int(id)] = String(decoding: bytes, as: UTF8.self)
            types[Int(id)] = 1
        }
        for (id, t) in added.tokenByID where Int(id) < rows {
            tokens[Int(id)] = String(decoding: t.content, as: UTF8.self)
            types[Int(id)] = t.special ? 3 : 4
        }
        let ranked = merges.map { (key, value) in (rank: value >> 32, a: Int32(truncatingIfNeeded: key >> 32), b: Int32(truncatingIfNeeded: key)) }
            .sorted { $0.rank < $1.rank }
        let mergeStrings = ranked.map { tokens[Int($0.a)] + " " + tokens[Int($0.b)] }
        // What the post-processor puts around one sequence: a sentinel id marks the text.
        let sentinel = Int32.min
        let framed = withSpecialTokens([sentinel])
        guard let at = framed.firstIndex(of: sentinel) else { throw unsupported("the post-processor drops the text") }
        let before = Array(framed[..<at]), after = Array(framed[(at + 1)...])
        guard before.count <= 1, after.count <= 1 else {
            throw unsupported("the post-processor adds \(before.count) tokens before and \(after.count) after the text (llama.cpp adds at most one bos and one eos)")
        }
        return GGUFTokenizerExport(pre: pre, tokens: tokens, tokenTypes: types, merges: mergeStrings, bosID: before.first, eosID: after.first)
    }
}
