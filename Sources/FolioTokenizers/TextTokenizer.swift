import Folio

/// A tokenizer read from a Hugging Face tokenizer.json, as a model runner uses it.
public protocol TextTokenizer: AnyObject, Sendable {
    /// One more than the largest id of the vocabulary and the added tokens.
    var vocabSize: Int { get }
    /// The id the template puts before the text, if it puts one there.
    var bosID: Int32? { get }
    /// Ids of `text`; with `addSpecialTokens` the post-processor's template is applied.
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int32]
    /// The post-processor's template around ids encoded without special tokens.
    func withSpecialTokens(_ ids: [Int32]) -> [Int32]
    /// The text of `ids`, as the library decodes it.
    func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String
    /// The bytes of the decoded text, possibly ending inside a character (for streaming).
    func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool) -> [UInt8]
    /// How many of the last ids may still decode differently once more ids follow (the text
    /// of the others is settled: a prefix of the text of any continuation).
    func unsettledTokens(_ ids: [Int32]) -> Int
    /// The id of a token as tokenizer.json writes it (added tokens first).
    func id(of token: String) -> Int32?
}

extension TextTokenizer {
    public func unsettledTokens(_ ids: [Int32]) -> Int { 0 }

    /// How many ids the template adds to a single sequence.
    public var specialTokensAdded: Int { withSpecialTokens([]).count }
}

/// Opens a tokenizer.json with the reader its model needs: byte-level BPE (GPT-2, Llama 3,
/// Qwen2, RoBERTa, ModernBERT), SentencePiece-style BPE or Unigram (Llama 2, Mistral, Gemma,
/// XLM-R), WordPiece (BERT, DistilBERT, MPNet).
public enum Tokenizers {
    public static func load(json: [UInt8], file: String) throws -> any TextTokenizer {
        let doc: JSONValue
        do { doc = try JSONParser.parse(json) } catch { throw TokenizerError.unsupported(file: file, reason: "not valid JSON: \(error)") }
        switch doc["model"]?["type"]?.stringValue {
        case "WordPiece":
            return try WordPieceTokenizer(json: json, file: file)
        case "Unigram":
            return try SentencePieceTokenizer(json: json, file: file)
        case "BPE" where !mentionsByteLevel(doc["pre_tokenizer"]) && !mentionsByteLevel(doc["decoder"]):
            return try SentencePieceTokenizer(json: json, file: file)
        default:
            return try BPETokenizer(json: json, file: file)
        }
    }

    static func mentionsByteLevel(_ v: JSONValue?) -> Bool {
        guard let v else { return false }
        if v["type"]?.stringValue == "ByteLevel" { return true }
        for key in ["pretokenizers", "decoders"] {
            if let list = v[key]?.arrayValue, list.contains(where: { mentionsByteLevel($0) }) { return true }
        }
        return false
    }
}
