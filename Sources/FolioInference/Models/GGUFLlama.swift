import Folio

/// A llama model converted from a GGUF file (`folio convert model.gguf model.folio`, with
/// `--keep-quantized` to carry Q8_0 / Q4_0 / Q4_1 blocks without loss): there is no
/// config.json, the architecture comes from the GGUF key-value pairs the converter keeps as
/// metadata (`gguf.llama.embedding_length` = "2048", FOREIGN.md 4.5), the tensors keep
/// llama.cpp's names, and the rows of `attn_q` / `attn_k` are in the order llama.cpp's
/// converter writes (`convert_hf_to_gguf.py`, `LlamaModel.permute`: each head's two halves
/// interleaved), for which RoPE rotates adjacent pairs (llama.cpp's LLAMA_ROPE_TYPE_NORM).
/// llama3 frequency scaling is stored as the tensor `rope_freqs.weight`, one divisor per pair.
///
/// Every `llama.*` key is either honoured or refused by name; `general.*` and `tokenizer.*`
/// keys do not change the math (the end-of-sequence ids are read).
enum GGUFLlama {
    static let ropeFactors = "rope_freqs.weight"
    static let architectureKey = "gguf.general.architecture"

    /// Keys of `llama.*` that are honoured (mapped onto the config or checked equal to what
    /// the tensors say).
    static let honoured: Set<String> = [
        "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
        "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.dimension_count",
        "attention.key_length", "attention.value_length", "vocab_size", "rope.scaling.type", "rope.scaling.factor",
        "rope.scaling.original_context_length", "rope.scaling.finetuned", "expert_count", "expert_used_count",
    ]

    /// The stored name of a tensor the llama model asks for by its Hugging Face name.
    @Sendable static func rename(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return name }
        let sub = parts[3..<(parts.count - 1)].joined(separator: "."), kind = parts[parts.count - 1]
        let map = ["input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
                   "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                   "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"]
        guard let g = map[sub] else { return name }
        return "blk.\(layer).\(g).\(kind)"
    }

    /// The architecture named by a GGUF-converted source, or nil when it is not one.
    static func architecture(_ source: ModelSource) -> String? {
        guard let v = source.metadataPairs.first(where: { $0.0 == architectureKey })?.1 else { return nil }
        return (try? JSONParser.parse(v))?.stringValue ?? v
    }

    /// The Hugging Face style config of a GGUF llama, built from its key-value pairs.
    static func config(_ source: ModelSource) throws -> (config: ModelConfig, eos: [Int32]) {
        let file = source.path + ":gguf metadata"
        var values: [String: JSONValue] = [:]
        for (k, v) in source.metadataPairs where k.hasPrefix("gguf.llama.") || k.hasPrefix("gguf.tokenizer.ggml.") && k.hasSuffix("_token_id") {
            values[String(k.dropFirst(5))] = try? JSONParser.parse(v)
        }
        for (k, _) in source.metadataPairs where k.hasPrefix("gguf.llama.") {
            let key = String(k.dropFirst("gguf.llama.".count))
            guard honoured.contains(key) else {
                throw InferenceError.unsupported(file: file, reason: "GGUF key 'llama.\(key)' changes the model and is not supported by folio run")
            }
        }
        func bad(_ key: String, _ reason: String) -> InferenceError { .badConfig(file: file, field: key, reason: reason) }
        func int(_ key: String, _ def: Int? = nil) throws -> Int {
            guard let v = values[key] else {
                if let def { return def }
                throw bad(key, "is required")
            }
            guard let i = v.intValue, i >= 0 else { throw bad(key, "must be a non-negative integer") }
            return i
        }
        func number(_ key: String, _ def: Double? = nil) throws -> Double {
            guard let v = values[key] else {
                if let def { return def }
                throw bad(key, "is required")
            }
            guard let d = v.doubleValue, d.isFinite else { throw bad(key, "must be a finite number") }
            return d
        }
        let hidden = try int("llama.embedding_length"), heads = try int("llama.attention.head_count")
        guard heads > 0, hidden % heads == 0 || values["llama.attention.key_length"] != nil else {
            throw bad("llama.attention.head_count", "\(heads) does not divide llama.embedding_length \(hidden)")
        }
        let headDim = try int("llama.attention.key_length", heads > 0 ? hidden / heads : 0)
        guard try int("llama.attention.value_length", headDim) == headDim else {
            throw InferenceError.unsupported(file: file, reason: "llama.attention.value_length differs from llama.attention.key_length")
        }
        guard try int("llama.rope.dimension_count", headDim) == headDim else {
            throw InferenceError.unsupported(file: file, reason: "llama.rope.dimension_count \(try int("llama.rope.dimension_count")) is not the head size \(headDim): partial rotary embeddings are not supported")
        }
        guard try int("llama.expert_count", 0) == 0, try int("llama.expert_used_count", 0) == 0 else {
            throw InferenceError.unsupported(file: file, reason: "llama.expert_count: mixture-of-experts GGUF llamas are not supported by folio run")
        }
        guard let embed = source.parts(of: "token_embd.weight")?.first?.tensor, embed.shape.count == 2 else {
            throw InferenceError.missingWeight(file: source.path, tensor: "token_embd.weight")
        }
        let vocab = embed.shape[0] + (source.parts(of: "token_embd.weight")!.dropFirst().reduce(0) { $0 + $1.tensor.rowCount })
        if values["llama.vocab_size"] != nil, try int("llama.vocab_size") != vocab {
            throw bad("llama.vocab_size", "is \(try int("llama.vocab_size")), token_embd.weight has \(vocab) rows")
        }
        var members: [(String, JSONValue)] = [
            ("model_type", .string("llama")),
            ("hidden_size", .number(String(hidden))),
            ("num_hidden_layers", .number(String(try int("llama.block_count")))),
            ("intermediate_size", .number(String(try int("llama.feed_forward_length")))),
            ("num_attention_heads", .number(String(heads))),
            ("num_key_value_heads", .number(String(try int("llama.attention.head_count_kv", heads)))),
            ("head_dim", .number(String(headDim))),
            ("rms_norm_eps", .number(String(try number("llama.attention.layer_norm_rms_epsilon")))),
            ("rope_theta", .number(String(try number("llama.rope.freq_base", 10000)))),
            ("max_position_embeddings", .number(String(try int("llama.context_length")))),
            ("vocab_size", .number(String(vocab))),
            ("tie_word_embeddings", .bool(source.parts(of: "output.weight") == nil)),
        ]
        switch values["llama.rope.scaling.type"]?.stringValue ?? "none" {
        case "none": break
        case "linear":
            members.append(("rope_scaling", .object([("type", .string("linear")), ("factor", .number(String(try number("llama.rope.scaling.factor"))))])))
        case let t:
            throw InferenceError.unsupported(file: file, reason: "llama.rope.scaling.type '\(t)' is not supported for GGUF llamas (none, linear are)")
        }
        var eos: [Int32] = []
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] where values[key] != nil {
            eos.append(Int32(clamping: try int(key)))
        }
        return (ModelConfig(file: file, json: .object(members)), eos)
    }
}
