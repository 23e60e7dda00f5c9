import Foundation
import Folio
import FolioConvert
import FolioTokenizers

/// `folio convert X out.gguf`: a llama-family checkpoint (config.json `model_type` llama or
/// mistral) written as a GGUF v3 file that llama.cpp runs, with the names, metadata keys and
/// row order of llama.cpp's own converter (`convert_hf_to_gguf.py`, `LlamaModel`):
///
/// - tensors renamed as `GGUFLlama.rename` reads them back (`token_embd.weight`,
///   `blk.L.attn_q.weight`, ...); the rows of `attn_q` / `attn_k` permuted per head so that
///   llama.cpp's RoPE, which rotates adjacent pairs, computes Hugging Face's rotate_half;
/// - `int8/gN` records as Q8_0 blocks and `int4/gN` as Q4_1 (N a multiple of 32), bit for bit
///   the same values; F32, F16 and BF16 matrices as they are; norms as F32; every other
///   encoding dequantized exactly to F32 (each said in the tensor's report);
/// - RoPE scaling other than none as `rope_freqs.weight` (one divisor per rotated pair, as
///   llama.cpp's converter writes llama3 scaling), YaRN refused;
/// - the byte-level BPE tokenizer as `tokenizer.ggml.*` (model gpt2), the chat template and
///   the end-of-sequence id.
///
/// Every config.json key that changes the math is mapped onto GGUF or refused, by the same
/// reads the runner makes (`ModelConfig.refuseUnread`).
public enum GGUFExport {
    public static func write(_ c: Checkpoint, to dst: String) throws -> [TensorReport] {
        guard let configBytes = c.files.first(where: { $0.name == "config.json" })?.bytes else {
            throw InferenceError.unsupported(file: c.path, reason: "has no config.json; GGUF export needs the model's architecture")
        }
        let configFile = c.path + ":config.json"
        let cfg = try ModelConfig(file: configFile, bytes: configBytes)
        let type = try cfg.string("model_type")
        guard type == "llama" || type == "mistral" else {
            throw InferenceError.unsupported(file: configFile, reason: "model_type '\(type)' has no GGUF export (llama and mistral have)")
        }
        let d = try DecoderDims(cfg)
        let eps = try cfg.double("rms_norm_eps", 1e-6)
        let act = try cfg.string("hidden_act", "silu")
        guard act == "silu" else { throw cfg.bad("hidden_act", "'\(act)': llama.cpp's llama architecture uses silu") }
        let rope = try RoPE.from(cfg, headDim: d.headDim)
        guard rope.attentionFactor == 1 else {
            throw InferenceError.unsupported(file: configFile, reason: "YaRN rope scaling has no GGUF llama export (default, linear and llama3 have)")
        }
        for key in ["attention_bias", "mlp_bias"] {
            if try cfg.bool(key, false) { throw cfg.bad(key, "true: biases have no GGUF llama export") }
        }
        let windows = type == "mistral" ? try cfg.uniformWindows(layers: d.layers) : try cfg.layerWindows(layers: d.layers, fallback: nil)
        if let w = windows.compactMap({ $0 }).min(), w < rope.positionLimit {
            throw cfg.bad("sliding_window", "\(w) is shorter than the context (\(rope.positionLimit)); llama.cpp's llama architecture has no sliding window")
        }
        let tied = try cfg.bool("tie_word_embeddings", false)
        try cfg.refuseUnread(modelType: type)

        let byName = Dictionary(c.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func tensor(_ name: String, _ shape: [Int]) throws -> SourceTensor {
            guard let t = byName[name] else { throw InferenceError.unsupported(file: c.path, reason: "tensor '\(name)' is missing") }
            guard t.shape == shape else {
                throw InferenceError.unsupported(file: c.path, reason: "tensor '\(name)' has shape \(t.shape), the config says \(shape)")
            }
            return t
        }
        // (source, GGUF name, heads whose rows are permuted).
        var plan: [(SourceTensor, String, Int?)] = [(try tensor("model.embed_tokens.weight", [d.vocab, d.hidden]), "token_embd.weight", nil)]
        for l in 0..<d.layers {
            let p = "model.layers.\(l)."
            let parts: [(String, [Int], Int?)] = [
                ("input_layernorm.weight", [d.hidden], nil),
                ("self_attn.q_proj.weight", [d.heads * d.headDim, d.hidden], d.heads),
                ("self_attn.k_proj.weight", [d.kvHeads * d.headDim, d.hidden], d.kvHeads),
                ("self_attn.v_proj.weight", [d.kvHeads * d.headDim, d.hidden], nil),
                ("self_attn.o_proj.weight", [d.hidden, d.heads * d.headDim], nil),
                ("post_attention_layernorm.weight", [d.hidden], nil),
                ("mlp.gate_proj.weight", [d.inter, d.hidden], nil),
                ("mlp.up_proj.weight", [d.inter, d.hidden], nil),
                ("mlp.down_proj.weight", [d.hidden, d.inter], nil),
            ]
            for (suffix, shape, heads) in parts {
                plan.append((try tensor(p + suffix, shape), GGUFLlama.rename(p + suffix), heads))
            }
        }
        plan.append((try tensor("model.norm.weight", [d.hidden]), "output_norm.weight", nil))
        if byName["lm_head.weight"] != nil {
            plan.append((try tensor("lm_head.weight", [d.vocab, d.hidden]), "output.weight", nil))
        } else if !tied {
            throw InferenceError.unsupported(file: c.path, reason: "tensor 'lm_head.weight' is missing and tie_word_embeddings is false")
        }
        let used = Set(plan.map { $0.0.name })
        if let extra = c.tensors.first(where: { !used.contains($0.name) }) {
            throw InferenceError.unsupported(file: c.path, reason: "tensor '\(extra.name)' is not part of a llama model (GGUF export)")
        }

        var tensors: [GGUFWriter.Tensor] = []
        var reports: [TensorReport] = []
        for (t, name, heads) in plan {
            let (ggml, note) = target(t)
            let out = GGUFWriter.Tensor(name: name, type: ggml, shape: t.shape) { emit in
                try emitRows(t, as: ggml, headRows: heads.map { _ in d.headDim }, emit)
            }
            tensors.append(out)
            reports.append(TensorReport(name: t.name, sourceDType: t.storedType, scheme: "\(name) \(ggml.name)", shape: t.shape,
                                        bytesIn: t.storedBytes, bytesOut: out.nbytes, paged: false, error: nil, note: note))
        }
        // RoPE scaling as llama.cpp stores llama3's: the divisor of each pair's frequency.
        let base = (0..<(rope.dims / 2)).map { 1 / pow(rope.theta, Double(2 * $0) / Double(rope.dims)) }
        let factors = zip(base, rope.invFreq).map { Float($0 / $1) }
        if factors.contains(where: { $0 != 1 }) {
            tensors.append(GGUFWriter.Tensor(name: GGUFLlama.ropeFactors, type: .f32, shape: [factors.count]) { emit in
                try factors.withUnsafeBytes { try emit($0) }
            })
        }

        var meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string(modelName(c, cfg))),
            ("llama.vocab_size", .u32(d.vocab)),
            ("llama.context_length", .u32(rope.positionLimit)),
            ("llama.embedding_length", .u32(d.hidden)),
            ("llama.block_count", .u32(d.layers)),
            ("llama.feed_forward_length", .u32(d.inter)),
            ("llama.rope.dimension_count", .u32(d.headDim)),
            ("llama.attention.head_count", .u32(d.heads)),
            ("llama.attention.head_count_kv", .u32(d.kvHeads)),
            ("llama.attention.layer_norm_rms_epsilon", .f32(eps)),
            ("llama.rope.freq_base", .f32(rope.theta)),
        ]
        if d.headDim * d.heads != d.hidden {
            meta += [("llama.attention.key_length", .u32(d.headDim)), ("llama.attention.value_length", .u32(d.headDim))]
        }
        meta.append(("general.file_type", .u32(Int(fileType(tensors)))))
        if tensors.contains(where: { $0.type == .q8_0 || $0.type == .q4_1 }) { meta.append(("general.quantization_version", .u32(2))) }
        meta += try tokenizerKeys(c, cfg: cfg, vocab: d.vocab)
        try GGUFWriter.write(to: dst, metadata: meta, tensors: tensors)
        return reports
    }

    /// The ggml type a tensor is written as, and why when it is not its own encoding.
    static func target(_ t: SourceTensor) -> (GGMLType, String?) {
        if t.shape.count == 1 {
            return (.f32, t.encoding == .plain(.f32) ? nil : "a vector: written as F32 (exact), as llama.cpp keeps norms")
        }
        if let q = GGMLBlocks.losslessType(for: t.encoding) { return (q, nil) }
        switch t.encoding {
        case .plain(.f32): return (.f32, nil)
        case .plain(.f16): return (.f16, nil)
        case .plain(.bf16): return (.bf16, nil)
        default: return (.f32, "\(t.encoding.name) has no ggml type holding it exactly: written as F32 (exact)")
        }
    }

    /// Streams the rows of `t` as `type`; with `headRows`, each head's rows are reordered
    /// from Hugging Face's halves [0, h/2), [h/2, h) to llama.cpp's interleaved pairs: GGUF
    /// row 2j + s of a head is row s·h/2 + j (`LlamaModel.permute`).
    static func emitRows(_ t: SourceTensor, as type: GGMLType, headRows: Int?, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let rows = t.rowCount, width = t.rowWidth
        let rowBytes = (width / type.blockSize) * type.typeSize
        let unit = headRows ?? 1
        let step = max(unit, ((4 << 20) / max(1, width) / unit) * unit)
        var block = [UInt8](repeating: 0, count: step * rowBytes)
        var ordered = block
        var floats = [Float](), records = [UInt8]()
        var start = 0
        while start < rows {
            let count = min(step, rows - start)
            try block.withUnsafeMutableBytes { out in
                switch type {
                case .q8_0, .q4_1:
                    let rs = t.recordSize!
                    if records.count < count * rs { records = [UInt8](repeating: 0, count: count * rs) }
                    try records.withUnsafeMutableBytes { r in
                        try t.copyRecords(start: start, count: count, into: r.baseAddress!)
                        for i in 0..<count {
                            GGMLBlocks.convert(record: r.baseAddress! + i * rs, encoding: t.encoding, width: width, into: out.baseAddress! + i * rowBytes)
                        }
                    }
                case .f32 where t.encoding != .plain(.f32):
                    if floats.count < count * width { floats = [Float](repeating: 0, count: count * width) }
                    try floats.withUnsafeMutableBufferPointer { f in
                        try t.readRows(start: start, count: count, into: f.baseAddress!)
                        out.baseAddress!.copyMemory(from: f.baseAddress!, byteCount: count * rowBytes)
                    }
                default:
                    var at = 0
                    try t.forDenseRows(start: start, count: count) { piece in
                        (out.baseAddress! + at).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
                        at += piece.count
                    }
                }
            }
            if let h = headRows {
                for head in 0..<(count / h) {
                    for j in 0..<(h / 2) {
                        for s in 0..<2 {
                            let from = (head * h + s * (h / 2) + j) * rowBytes, to = (head * h + 2 * j + s) * rowBytes
                            ordered.replaceSubrange(to..<(to + rowBytes), with: block[from..<(from + rowBytes)])
                        }
                    }
                }
                try ordered.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<(count * rowBytes)])) }
            } else {
                try block.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<(count * rowBytes)])) }
            }
            start += count
        }
        t.release()
    }

    /// llama.cpp's `general.file_type`: the type most of the matrices have.
    static func fileType(_ tensors: [GGUFWriter.Tensor]) -> UInt32 {
        var bytes: [GGMLType: Int] = [:]
        for t in tensors where t.shape.count == 2 { bytes[t.type, default: 0] += t.shape.reduce(1, *) }
        let most = bytes.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key ?? .f32
        switch most {
        case .f16: return 1
        case .q4_1: return 3
        case .q8_0: return 7
        case .bf16: return 32
        default: return 0
        }
    }

    static func modelName(_ c: Checkpoint, _ cfg: ModelConfig) -> String {
        if let n = cfg.json["_name_or_path"]?.stringValue, !n.isEmpty { return n }
        let base = c.path.split(separator: "/").last.map(String.init) ?? c.path
        return base.hasSuffix(".folio") ? String(base.dropLast(6)) : base
    }

    /// `tokenizer.ggml.*` and `tokenizer.chat_template` from the carried tokenizer files, and
    /// the end-of-sequence id of generation_config.json (else config.json, else the
    /// tokenizer's post-processor).
    static func tokenizerKeys(_ c: Checkpoint, cfg: ModelConfig, vocab: Int) throws -> [(String, GGUFValue)] {
        func file(_ n: String) -> [UInt8]? { c.files.first(where: { $0.name == n })?.bytes }
        guard let json = file("tokenizer.json") else {
            throw InferenceError.unsupported(file: c.path, reason: "has no tokenizer.json; llama.cpp cannot load a GGUF without its vocabulary")
        }
        let tok = try BPETokenizer(json: json, file: c.path + ":tokenizer.json")
        let v = try tok.ggufExport(vocabSize: vocab, file: c.path + ":tokenizer.json")
        func firstID(_ value: JSONValue?) -> Int? {
            if let i = value?.intValue { return i }
            return value?.arrayValue?.first?.intValue
        }
        var generation: JSONValue? = nil
        if let g = file("generation_config.json") { generation = try? JSONParser.parse(g) }
        let eos = firstID(generation?["eos_token_id"]) ?? firstID(cfg.json["eos_token_id"]) ?? v.eosID.map(Int.init)
        let bos = v.bosID.map(Int.init) ?? firstID(generation?["bos_token_id"]) ?? firstID(cfg.json["bos_token_id"])
        var keys: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(v.pre)),
            ("tokenizer.ggml.tokens", .strings(v.tokens)), ("tokenizer.ggml.token_type", .i32s(v.tokenTypes)),
            ("tokenizer.ggml.merges", .strings(v.merges)),
        ]
        for (key, id) in [("bos", bos), ("eos", eos)] {
            guard let id else { continue }
            guard id >= 0, id < vocab else { throw InferenceError.unsupported(file: c.path, reason: "\(key)_token_id \(id) is outside the vocabulary of \(vocab)") }
            keys.append(("tokenizer.ggml.\(key)_token_id", .u32(id)))
        }
        keys += [("tokenizer.ggml.add_bos_token", .bool(v.bosID != nil)), ("tokenizer.ggml.add_eos_token", .bool(v.eosID != nil))]
        if let t = file("chat_template.jinja") {
            keys.append(("tokenizer.chat_template", .string(String(decoding: t, as: UTF8.self))))
        } else if let cfgBytes = file("tokenizer_config.json"), let tc = try? JSONParser.parse(cfgBytes), let t = tc["chat_template"]?.stringValue {
            keys.append(("tokenizer.chat_template", .string(t)))
        }
        return keys
    }
}
