import Foundation
import Folio

/// LongCat-Flash-Lite's architecture (`longcat_flash_ngram`, arXiv 2601.21204), with the
/// tensor names of the published Hugging Face checkpoint (meituan-longcat/LongCat-Flash-Lite).
///
/// - Embedding: the token's row of `model.embed_tokens` plus, for each of the k(n-1) n-gram
///   tables `model.ngram_embeddings.embedders.{i}`, the table's row for the hashed n-gram
///   ending at the token (see `NgramHasher`) projected by `post_projs.{i}`; the sum is
///   divided by 1 + k(n-1). Rows are gathered from the mapped (possibly int8/int4) tables.
/// - Layers: two rounds of RMSNorm → MLA attention → residual, RMSNorm → dense SwiGLU MLP →
///   residual; the output of the first round's second norm also feeds the MoE, whose
///   output joins after the second round (the shortcut-connected MoE).
/// - MLA (`LatentAttention`, with LongCat's optional LoRA scale factors); interleaved RoPE
///   (YaRN) on the rotary part.
/// - MoE: softmax router; experts picked by score + e_score_correction_bias, weighted by
///   the uncorrected score × routed_scaling_factor; experts past the routed ones are zero
///   (identity) experts that return their input.
///
/// Two semantics differ between the checkpoint's own modeling code and mlx-lm 0.32
/// (Tools/reference/LONGCAT_NOTES.md): `.checkpoint` resets the n-gram history after an
/// end-of-sequence token and uses eps 1e-6 in the q/kv LoRA norms; `.mlxLM` does neither
/// (eps 1e-5).
final class LongcatNgramModel: CausalLM, @unchecked Sendable {
    // @unchecked: immutable after init.
    enum Semantics: String, Sendable { case checkpoint, mlxLM = "mlx-lm" }

    struct MLP { let gate, up, down: Matrix }
    struct Layer {
        let inNorm: [Weight], postNorm: [Weight]
        let attn: [LatentAttention]
        let mlps: [MLP]
        let router: Matrix, routerBias: Weight?, correction: Weight
        let experts: [MLP]
    }

    let semantics: Semantics
    let hidden, heads, layerCount, vocabSize: Int
    let qLoraRank: Int?, kvLoraRank, nopeDim, ropeDim, vDim, ffn, expertFfn: Int
    let routed, zeroExperts, topK: Int
    let routedScaling: Float, normTopK: Bool
    let eps, loraEps: Float
    let qScale: Float?, kvScale: Float?
    let attnScale: Float
    let rope: RoPE
    var positionLimit: Int { rope.positionLimit }
    let hasher: NgramHasher
    let resetTokens: Set<Int32>
    let words: EmbeddingTable
    let tables: [EmbeddingTable]
    /// The post projections side by side, [hidden, k(n-1) · tableWidth]: the sum of the
    /// projected rows is one product of the concatenated rows with this.
    let postProj: Matrix
    let tableWidth: Int
    let layers: [Layer]
    let norm: Weight, head: Matrix

    init(config c: ModelConfig, weights w: WeightStore, semantics: Semantics, eosIDs: Set<Int32>) throws {
        self.semantics = semantics
        let method = try c.string("attention_method", "MLA"), act = try c.string("hidden_act", "silu")
        guard method == "MLA" else { throw InferenceError.unsupported(file: c.file, reason: "attention_method '\(method)' is not implemented (MLA is)") }
        guard act == "silu" else { throw InferenceError.unsupported(file: c.file, reason: "hidden_act '\(act)' is not implemented for longcat_flash_ngram (silu is)") }
        if try c.bool("tie_word_embeddings", false), !w.has("lm_head.weight") {
            throw InferenceError.unsupported(file: c.file, reason: "tie_word_embeddings without lm_head.weight is not implemented for longcat_flash_ngram")
        }
        hidden = try c.int("hidden_size")
        heads = try c.int("num_attention_heads")
        layerCount = try c.int("num_layers")
        vocabSize = try c.int("vocab_size")
        qLoraRank = c.has("q_lora_rank") ? try c.int("q_lora_rank") : nil
        kvLoraRank = try c.int("kv_lora_rank")
        nopeDim = try c.int("qk_nope_head_dim")
        ropeDim = try c.int("qk_rope_head_dim")
        vDim = try c.int("v_head_dim")
        ffn = try c.int("ffn_hidden_size")
        expertFfn = try c.int("expert_ffn_hidden_size")
        routed = try c.int("n_routed_experts")
        zeroExperts = try c.int("zero_expert_num", 0, in: 0...(1 << 20))
        topK = try c.int("moe_topk", nil, in: 1...(routed + zeroExperts))
        routedScaling = Float(try c.double("routed_scaling_factor", 1))
        normTopK = try c.bool("norm_topk_prob", false)
        eps = Float(try c.double("rms_norm_eps", 1e-6))
        loraEps = semantics == .checkpoint ? 1e-6 : 1e-5
        let zeroType = try c.string("zero_expert_type", "identity")
        guard zeroType == "identity" else { throw InferenceError.unsupported(file: c.file, reason: "zero_expert_type '\(zeroType)' is not supported (identity is)") }
        let h = hidden
        qScale = try c.bool("mla_scale_q_lora", false) ? Float((Double(h) / Double(qLoraRank ?? h)).squareRoot()) : nil
        kvScale = try c.bool("mla_scale_kv_lora", false) ? Float((Double(h) / Double(kvLoraRank)).squareRoot()) : nil
        let scaling = try c.object("rope_scaling")
        var scale = 1 / Double(nopeDim + ropeDim).squareRoot()
        if let s = scaling, try s.double("mscale_all_dim", 0) != 0, try s.double("factor", 1) > 1 {
            let m = RoPE.yarnMscale(try s.double("factor"), try s.double("mscale_all_dim"))
            scale *= m * m
        }
        attnScale = Float(scale)
        rope = try RoPE(dims: ropeDim, theta: try c.double("rope_theta", 10000), scaling: scaling,
                        maxPositions: try c.int("max_position_embeddings", 4096), interleaved: true)
        let k = try c.int("emb_split_num", 4), n = try c.int("emb_neighbor_num", 4)
        hasher = try NgramHasher(vocabSize: vocabSize, ratio: try c.int("ngram_vocab_size_ratio", 78), splits: k, neighbors: n)
        let count = hasher.tables.count
        guard h % count == 0 else { throw c.bad("hidden_size", "\(h) is not divisible by emb_split_num × (emb_neighbor_num - 1) = \(count)") }
        tableWidth = h / count
        resetTokens = semantics == .checkpoint ? eosIDs : []

        let (heads, nope, ropeD, vD, rank, qRank) = (heads, nopeDim, ropeDim, vDim, kvLoraRank, qLoraRank)
        let (loraEps, qScale, kvScale, attnScale, rope) = (loraEps, qScale, kvScale, attnScale, rope)
        let attnBias = try c.bool("attention_bias", false), routerBias = try c.bool("router_bias", false)
        words = try w.table("model.embed_tokens.weight", rows: vocabSize, width: h)
        tables = try hasher.tables.enumerated().map { i, t in
            try w.table("model.ngram_embeddings.embedders.\(i).weight", rows: Int(t.modulus), width: h / count)
        }
        var concat = [Float](repeating: 0, count: h * h)
        for i in 0..<count {
            let p = try w.dense("model.ngram_embeddings.post_projs.\(i).weight", shape: [h, h / count])
            for r in 0..<h { for j in 0..<(h / count) { concat[r * h + i * (h / count) + j] = p[r * (h / count) + j] } }
        }
        postProj = Matrix(copying: concat, rows: h, cols: h)
        func mla(_ p: String) throws -> LatentAttention {
            try LatentAttention.load(w, p, hidden: h, heads: heads, qRank: qRank, kvRank: rank, nope: nope, ropeDims: ropeD, vDim: vD,
                                     bias: attnBias, loraEps: loraEps, qScale: qScale, kvScale: kvScale, scale: attnScale, rope: rope)
        }
        func mlp(_ p: String, _ f: Int) throws -> MLP {
            MLP(gate: try w.matrix(p + "gate_proj.weight", shape: [f, h]), up: try w.matrix(p + "up_proj.weight", shape: [f, h]),
                down: try w.matrix(p + "down_proj.weight", shape: [h, f]))
        }
        let (ffn, expertFfn, routed, all) = (ffn, expertFfn, routed, routed + zeroExperts)
        layers = try (0..<layerCount).map { l in
            let p = "model.layers.\(l)."
            return Layer(
                inNorm: try (0..<2).map { try w.weight(p + "input_layernorm.\($0).weight", shape: [h]) },
                postNorm: try (0..<2).map { try w.weight(p + "post_attention_layernorm.\($0).weight", shape: [h]) },
                attn: try (0..<2).map { try mla(p + "self_attn.\($0).") },
                mlps: try (0..<2).map { try mlp(p + "mlps.\($0).", ffn) },
                router: try w.matrix(p + "mlp.router.classifier.weight", shape: [all, h]),
                routerBias: routerBias ? try w.weight(p + "mlp.router.classifier.bias", shape: [all]) : nil,
                correction: try w.weight(p + "mlp.router.e_score_correction_bias", shape: [all]),
                experts: try (0..<routed).map { try mlp(p + "mlp.experts.\($0).", expertFfn) })
        }
        norm = try w.weight("model.norm.weight", shape: [h])
        head = try w.matrix("lm_head.weight", shape: [vocabSize, h])
    }

    /// Per sequence: the attention caches (two per layer) and the n-gram history, the last
    /// n-1 tokens since the start or the last reset.
    final class State: SequenceState {
        let cache: KVCache
        var history: [Int32] = []
        init(cache: KVCache) { self.cache = cache }
        var length: Int { cache.length }
    }

    func makeState() -> State {
        State(cache: KVCache(slots: 2 * layerCount, keyWidth: heads * (nopeDim + ropeDim), valueWidth: heads * vDim))
    }

    /// Back to `length` positions: the caches truncated, the history rebuilt from the
    /// sequence (its last n-1 tokens since the last reset).
    func rewind(_ state: State, to length: Int, sequence: [Int32]) {
        state.cache.truncate(to: length)
        let seen = sequence.prefix(length)
        let floor = seen.lastIndex(where: { resetTokens.contains($0) }).map { $0 + 1 } ?? 0
        state.history = Array(seen[floor...].suffix(hasher.history))
    }

    /// N-gram table rows of `tokens` given the state's history, [tokens.count, tables], and
    /// the history after them.
    func ngramIDs(_ tokens: [Int32], history: [Int32]) -> (ids: [Int64], history: [Int32]) {
        let all = history + tokens
        let count = hasher.tables.count
        var ids = [Int64](repeating: 0, count: tokens.count * count)
        var floor = 0
        all.withUnsafeBufferPointer { buf in
            ids.withUnsafeMutableBufferPointer { out in
                for i in 0..<tokens.count {
                    let t = history.count + i
                    hasher.ids(buf, at: t, floor: floor, into: out.baseAddress! + i * count)
                    if resetTokens.contains(buf[t]) { floor = t + 1 }
                }
            }
        }
        let kept = all[floor...].suffix(hasher.history)
        return (ids, Array(kept))
    }

    /// The embedding of `tokens`, [count, hidden].
    func embed(_ tokens: [Int32], state: State) throws -> [Float] {
        let n = tokens.count, h = hidden, count = tables.count, w = tableWidth
        var x = [Float](repeating: 0, count: n * h)
        try x.withUnsafeMutableBufferPointer { try words.gather(tokens, into: $0.baseAddress!) }
        let (ids, history) = ngramIDs(tokens, history: state.history)
        state.history = history
        // First the kernel is asked for every page these rows are on (MADV_WILLNEED, one call
        // per row), so that rows not yet in memory are read together rather than one page
        // fault at a time (the gain `bench lookups --willneed-ahead` measures). When the pages
        // are already cached this costs about 1 us per row (12 us a token with 12 tables,
        // measured with `bench lookups --batch 1 --willneed-ahead 1`), small beside a step of
        // a model whose tables need it.
        for (k, table) in tables.enumerated() { table.willNeed(rows: stride(from: k, to: ids.count, by: count).lazy.map { ids[$0] }) }
        // rows[t, i·w ..< (i+1)·w] = table i's row for token t (h = count · w), the rows of
        // all tables fetched together by the lookup kernel, the tokens split over the cores
        // on the same spinning pool as the matmuls (a decoding step's one token takes one).
        var rows = [Float](repeating: 0, count: n * h)
        try rows.withUnsafeMutableBufferPointer {
            try EmbeddingTable.gather(tables, rows: ids, into: $0.baseAddress!, stride: count * w, threads: Math.cores)
        }
        var proj = [Float](repeating: 0, count: n * h)
        Math.linear(rows, rows: n, inFeatures: h, matrix: postProj, bias: nil, into: &proj)
        let inv = 1 / Float(1 + count)
        for i in 0..<(n * h) { x[i] = (x[i] + proj[i]) * inv }
        return x
    }

    func forward(_ tokens: [Int32], state: State, allLogits: Bool) throws -> [Float] {
        let n = tokens.count, h = hidden
        guard n > 0 else { return [] }
        for t in tokens where t < 0 || Int(t) >= vocabSize {
            throw InferenceError.badInput("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
        }
        let past = state.cache.length
        guard past + n <= positionLimit else {
            throw InferenceError.badInput("position \(past + n - 1) is past what the model allows (\(positionLimit) positions: max_position_embeddings and its RoPE scaling)")
        }
        var x = try embed(tokens, state: state)
        var xn = [Float](repeating: 0, count: n * h), o = xn, shortcut = xn
        for (l, L) in layers.enumerated() {
            for r in 0..<2 {
                Math.rmsNorm(x, rows: n, width: h, weight: L.inNorm[r].values, eps: eps, into: &xn)
                L.attn[r].apply(xn, count: n, past: past, slot: state.cache.slots[2 * l + r], into: &o)
                Math.add(&x, o, count: n * h)
                Math.rmsNorm(x, rows: n, width: h, weight: L.postNorm[r].values, eps: eps, into: &xn)
                if r == 0 { moe(L, xn, count: n, into: &shortcut) }
                mlp(L.mlps[r], xn, count: n, into: &o)
                Math.add(&x, o, count: n * h)
            }
            Math.add(&x, shortcut, count: n * h)
        }
        state.cache.advance(n)
        return logits(hidden: x, count: n, width: h, allLogits: allLogits, norm: norm, eps: eps, head: head)
    }

    func mlp(_ m: MLP, _ x: UnsafePointer<Float>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        let f = m.gate.rows
        var g = [Float](repeating: 0, count: n * f), u = g
        Math.linear(x, rows: n, inFeatures: hidden, matrix: m.gate, bias: nil, into: &g)
        Math.linear(x, rows: n, inFeatures: hidden, matrix: m.up, bias: nil, into: &u)
        Math.siluMul(&g, u, count: n * f)
        Math.linear(g, rows: n, inFeatures: f, matrix: m.down, bias: nil, into: out)
    }

    /// The routed mixture of experts over `n` normed positions.
    func moe(_ L: Layer, _ x: [Float], count n: Int, into out: inout [Float]) {
        let h = hidden, all = routed + zeroExperts
        var scores = [Float](repeating: 0, count: n * all)
        Math.linear(x, rows: n, inFeatures: h, matrix: L.router, bias: L.routerBias?.values, into: &scores)
        scores.withUnsafeMutableBufferPointer { Math.softmaxRows($0.baseAddress!, rows: n, width: all) }
        for i in 0..<(n * h) { out[i] = 0 }
        var assigned = [[(token: Int, weight: Float)]](repeating: [], count: routed)
        for t in 0..<n {
            let s = Array(scores[(t * all)..<((t + 1) * all)])
            let picked = (0..<all).sorted { a, b in
                let ca = s[a] + L.correction[a], cb = s[b] + L.correction[b]
                return ca > cb || (ca == cb && a < b)
            }.prefix(topK)
            var ws = picked.map { s[$0] }
            if normTopK {
                let d = ws.reduce(0, +) + 1e-20
                ws = ws.map { $0 / d }
            }
            for (e, wgt) in zip(picked, ws) {
                let weight = wgt * routedScaling
                if e < routed {
                    assigned[e].append((t, weight))
                } else {
                    for j in 0..<h { out[t * h + j] += weight * x[t * h + j] }
                }
            }
        }
        for (e, list) in assigned.enumerated() where !list.isEmpty {
            var xe = [Float](repeating: 0, count: list.count * h), ye = xe
            for (i, a) in list.enumerated() { for j in 0..<h { xe[i * h + j] = x[a.token * h + j] } }
            mlp(L.experts[e], xe, count: list.count, into: &ye)
            for (i, a) in list.enumerated() { for j in 0..<h { out[a.token * h + j] += a.weight * ye[i * h + j] } }
        }
    }
}

/// The registry entry of `longcat_flash_ngram` (multi-token-prediction layers unused).
enum LongcatNgram {
    static let architecture = Architecture(modelType: "longcat_flash_ngram", build: { c, w, context in
        guard let s = LongcatNgramModel.Semantics(rawValue: context.semantics) else {
            throw InferenceError.badInput("semantics '\(context.semantics)' is not known (checkpoint, mlx-lm)")
        }
        return try LongcatNgramModel(config: c, weights: w, semantics: s, eosIDs: context.eosIDs)
    }, ignores: { $0.hasPrefix("model.mtp.") })
}
