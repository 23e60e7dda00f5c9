import Folio

/// Hugging Face RobertaModel and XLMRobertaModel (`roberta`, `xlm-roberta`): BERT's layout
/// (`Bert.build`) with positions counted from padding_idx + 1 (`pad_token_id`, 1 in every
/// released checkpoint), as transformers' `create_position_ids_from_input_ids` numbers the
/// tokens of a text padded at the end.
enum RoBERTa {
    static let architecture = EncoderArchitecture(modelTypes: ["roberta", "xlm-roberta"], prefixes: ["roberta."], build: { c, w in
        try Bert.build(c, w, positionOffset: try c.int("pad_token_id", 1, in: 0...(1 << 30)) + 1)
    }, ignores: { $0.hasPrefix("pooler.") || $0.hasSuffix("position_ids") || $0.hasPrefix("lm_head.") })
}
