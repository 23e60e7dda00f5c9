import Foundation

/// One layer of a decoder: x += outNorm(mixer(inNorm(x))); x += outNorm(mlp(inNorm(x))), each
/// norm optional (Llama: pre-norms only; Gemma 2/3: pre- and post-norms; OLMo 2: post-norms only).
struct DecoderLayer: Sendable {
    let attentionNorm: Norm?
    let attention: any TokenMixer
    let attentionOutNorm: Norm?
    let mlpNorm: Norm?
    let mlp: any FeedForward
    let mlpOutNorm: Norm?
}

/// A decoder-only transformer built from the blocks: token embeddings (scaled, as Gemma's,
/// plus learned positions, as GPT-2's), the layers, a final norm and the output head
/// (optionally soft-capped). Each architecture file reads its config and names its tensors,
/// then hands the parts to this one forward pass.
final class DecoderModel: CausalLM, @unchecked Sendable {
    // @unchecked: immutable after init.
    let vocabSize: Int
    let hidden: Int
    let embed: EmbeddingTable
    let embedScale: Float?
    let positions: EmbeddingTable?
    let layers: [DecoderLayer]
    let norm: Norm
    let head: Linear
    let finalSoftcap: Float?
    /// Positions past this are refused (max_position_embeddings, or what RoPE scaling allows).
    let positionLimit: Int

    init(vocabSize: Int, hidden: Int, embed: EmbeddingTable, embedScale: Float? = nil, positions: EmbeddingTable? = nil,
         layers: [DecoderLayer], norm: Norm, head: Linear, finalSoftcap: Float? = nil, positionLimit: Int) {
        self.vocabSize = vocabSize
        self.hidden = hidden
        self.embed = embed
        self.embedScale = embedScale
        self.positions = positions
        self.layers = layers
        self.norm = norm
        self.head = head
        self.finalSoftcap = finalSoftcap
        self.positionLimit = positionLimit
    }

    func makeState() -> KVCache { KVCache(widths: layers.map { ($0.attention.keyWidth, $0.attention.valueWidth) }) }

    func rewind(_ state: KVCache, to length: Int, sequence: [Int32]) { state.truncate(to: length) }

    func forward(_ tokens: [Int32], state cache: KVCache, allLogits: Bool) throws -> [Float] {
        let n = tokens.count, h = hidden
        guard n > 0 else { return [] }
        for t in tokens where t < 0 || Int(t) >= vocabSize {
            throw InferenceError.badInput("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
        }
        let past = cache.length
        guard past + n <= positionLimit else {
            throw InferenceError.badInput("position \(past + n - 1) is past what the model allows (\(positionLimit) positions: max_position_embeddings and its RoPE scaling)")
        }
        var x = [Float](repeating: 0, count: n * h)
        try x.withUnsafeMutableBufferPointer { try embed.gather(tokens, into: $0.baseAddress!) }
        if let s = embedScale { for i in 0..<x.count { x[i] *= s } }
        if let positions {
            var p = [Float](repeating: 0, count: n * h)
            try p.withUnsafeMutableBufferPointer { try positions.gather((0..<n).map { Int32(past + $0) }, into: $0.baseAddress!) }
            Math.add(&x, p, count: n * h)
        }
        var xn = [Float](repeating: 0, count: n * h), o = xn
        for (i, L) in layers.enumerated() {
            let input: [Float]
            if let nrm = L.attentionNorm { nrm.apply(x, rows: n, into: &xn); input = xn } else { input = x }
            L.attention.apply(input, count: n, past: past, slot: cache.slots[i], into: &o)
            if let nrm = L.attentionOutNorm { o.withUnsafeMutableBufferPointer { nrm.apply($0.baseAddress!, rows: n, into: $0.baseAddress!) } }
            Math.add(&x, o, count: n * h)
            let input2: [Float]
            if let nrm = L.mlpNorm { nrm.apply(x, rows: n, into: &xn); input2 = xn } else { input2 = x }
            L.mlp.apply(input2, rows: n, into: &o)
            if let nrm = L.mlpOutNorm { o.withUnsafeMutableBufferPointer { nrm.apply($0.baseAddress!, rows: n, into: $0.baseAddress!) } }
            Math.add(&x, o, count: n * h)
        }
        cache.advance(n)
        let first = allLogits ? 0 : n - 1, rows = n - first
        var normed = [Float](repeating: 0, count: rows * h)
        x.withUnsafeBufferPointer { norm.apply($0.baseAddress! + first * h, rows: rows, into: &normed) }
        var out = [Float](repeating: 0, count: rows * vocabSize)
        head.apply(normed, rows: rows, into: &out)
        if let cap = finalSoftcap {
            let inv = 1 / cap
            for i in 0..<out.count { out[i] = cap * tanhf(out[i] * inv) }
        }
        return out
    }
}

/// The sizes most decoder configs share, under transformers' key names.
struct DecoderDims {
    let hidden, heads, kvHeads, headDim, inter, layers, vocab: Int

    init(_ c: ModelConfig) throws {
        hidden = try c.int("hidden_size")
        heads = try c.int("num_attention_heads")
        kvHeads = try c.int("num_key_value_heads", heads)
        headDim = try c.int("head_dim", hidden / heads)
        inter = try c.int("intermediate_size")
        layers = try c.int("num_hidden_layers")
        vocab = try c.int("vocab_size")
        guard heads % kvHeads == 0 else { throw c.bad("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)") }
    }
}

extension ModelConfig {
    /// Each layer's sliding window (nil: full attention), from `layer_types` with
    /// `sliding_window` as transformers 5 writes them; without `layer_types`, `fallback`
    /// says which layers slide (nil: none, and a `sliding_window` key is then unread, so
    /// refused unless the architecture reads it itself).
    func layerWindows(layers: Int, fallback: ((Int) -> Bool)?) throws -> [Int?] {
        let kinds: [Bool]
        if let types = try strings("layer_types") {
            guard types.count == layers else { throw bad("layer_types", "has \(types.count) entries for \(layers) layers") }
            kinds = try types.map { t in
                switch t {
                case "full_attention": return false
                case "sliding_attention": return true
                default: throw InferenceError.unsupported(file: file, reason: "layer_types entry '\(t)' is not implemented (full_attention, sliding_attention are)")
                }
            }
        } else if let fallback {
            kinds = (0..<layers).map(fallback)
        } else {
            return Array(repeating: nil, count: layers)
        }
        // No layer slides: the window, if any, changes nothing.
        guard kinds.contains(true) else { accept("sliding_window"); return kinds.map { _ in nil } }
        let window = try int("sliding_window")
        return kinds.map { $0 ? window : nil }
    }

    /// The output head: `lm_head.weight`, or the embeddings when `tie_word_embeddings` (the
    /// default given) holds and the file has no separate head.
    func head(_ w: WeightStore, vocab: Int, hidden: Int, embedding: String = "model.embed_tokens.weight", tiedByDefault: Bool = false,
              name: String = "lm_head.weight") throws -> Linear {
        let tied = try bool("tie_word_embeddings", tiedByDefault)
        if !tied || w.has(name) { return Linear(matrix: try w.matrix(name, shape: [vocab, hidden]), bias: nil) }
        return Linear(matrix: try w.matrix(embedding, shape: [vocab, hidden]), bias: nil)
    }
}

/// How the decoders laid out as Llama's (`model.embed_tokens`, `model.layers.L.self_attn.*`,
/// `model.layers.L.mlp.*`, `model.norm`, `lm_head`) differ from one another.
struct LlamaLayout {
    /// Where the layer norms sit: before each block (Llama), before and after (Gemma 2/3:
    /// `input_layernorm`, `post_attention_layernorm`, `pre_feedforward_layernorm`,
    /// `post_feedforward_layernorm`), or after only (OLMo 2).
    enum Norms { case pre, sandwich, post }
    var norms = Norms.pre
    /// RMSNorms scaled by 1 + w (Gemma).
    var plusOneNorms = false
    var qkvBias = false
    var outBias = false
    /// One `self_attn.qkv_proj` matrix instead of q, k and v (Phi-3).
    var fusedQKV = false
    /// q/k RMSNorms, per head or over the whole projection.
    var qkNorm: (perHead: Bool, plusOne: Bool)?
    var embedScale: Float?
    /// Attention scale (1/sqrt(head_dim) when nil).
    var scale: Float?
    var softcap: Float?
    var finalSoftcap: Float?
    var tiedByDefault = false
}

extension DecoderModel {
    /// A decoder with Llama's tensor names: each layer's RoPE (nil: none) and window from the
    /// closures, its position-wise block from `mlp` (given the layer and its prefix
    /// `model.layers.L.`), its attention from `attention` when given (else `SelfAttention`
    /// under `self_attn.`, as the layout says).
    static func llamaLayout(_ c: ModelConfig, _ w: WeightStore, dims d: DecoderDims, layout: LlamaLayout, eps: Float,
                            rope: (Int) -> RoPE?, windows: [Int?],
                            attention custom: ((Int, String) throws -> any TokenMixer)? = nil,
                            mlp: (Int, String) throws -> any FeedForward) throws -> DecoderModel {
        let h = d.hidden, plus = layout.plusOneNorms
        func norm(_ name: String) throws -> Norm { try Norm.rms(w, name, width: h, eps: eps, plusOne: plus) }
        let layers = try (0..<d.layers).map { i -> DecoderLayer in
            let p = "model.layers.\(i)."
            let attention: any TokenMixer = try custom?(i, p) ?? SelfAttention.load(
                w, p + "self_attn.", hidden: h, heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, bias: layout.qkvBias,
                outBias: layout.outBias, rope: rope(i), window: windows[i], scale: layout.scale, softcap: layout.softcap,
                qkNorm: layout.qkNorm.map { (eps, $0.perHead, $0.plusOne) }, fused: layout.fusedQKV ? "qkv_proj" : nil)
            switch layout.norms {
            case .pre:
                return DecoderLayer(attentionNorm: try norm(p + "input_layernorm"), attention: attention, attentionOutNorm: nil,
                                    mlpNorm: try norm(p + "post_attention_layernorm"), mlp: try mlp(i, p), mlpOutNorm: nil)
            case .sandwich:
                return DecoderLayer(attentionNorm: try norm(p + "input_layernorm"), attention: attention,
                                    attentionOutNorm: try norm(p + "post_attention_layernorm"),
                                    mlpNorm: try norm(p + "pre_feedforward_layernorm"), mlp: try mlp(i, p),
                                    mlpOutNorm: try norm(p + "post_feedforward_layernorm"))
            case .post:
                return DecoderLayer(attentionNorm: nil, attention: attention, attentionOutNorm: try norm(p + "post_attention_layernorm"),
                                    mlpNorm: nil, mlp: try mlp(i, p), mlpOutNorm: try norm(p + "post_feedforward_layernorm"))
            }
        }
        let fallbackLimit = try c.int("max_position_embeddings", 2048)
        let limit = (0..<d.layers).compactMap { rope($0)?.positionLimit }.max() ?? fallbackLimit
        return DecoderModel(vocabSize: d.vocab, hidden: h, embed: try w.table("model.embed_tokens.weight", rows: d.vocab, width: h),
                            embedScale: layout.embedScale, layers: layers, norm: try norm("model.norm"),
                            head: try c.head(w, vocab: d.vocab, hidden: h, tiedByDefault: layout.tiedByDefault),
                            finalSoftcap: layout.finalSoftcap, positionLimit: limit)
    }
}

extension ModelConfig {
    /// Windows of families that slide in every layer when `sliding_window` is set (Mistral,
    /// Mixtral, Phi-3), or as `layer_types` says.
    func uniformWindows(layers: Int) throws -> [Int?] {
        let sliding = has("sliding_window")
        return try layerWindows(layers: layers, fallback: sliding ? { _ in true } : nil)
    }

    /// Qwen2/Qwen3's windows: `layer_types`, else layers from `max_window_layers` on slide
    /// when `use_sliding_window` is set (transformers' Qwen2Config).
    func qwenWindows(layers: Int) throws -> [Int?] {
        let use = try bool("use_sliding_window", false), from = try int("max_window_layers", layers, in: 0...(1 << 20))
        let sliding = use && has("sliding_window")
        if !use { accept("sliding_window") }
        return try layerWindows(layers: layers, fallback: { $0 >= from && sliding })
    }
}
