import Folio
import FolioTokenizers

/// Settings of one generation.
public struct GenerationOptions: Sendable {
    public var maxTokens = 128
    public var temperature: Float = 0
    public var topP: Float = 1
    /// Sample among the k most likely tokens only (0: no limit).
    public var topK = 0
    /// Drop tokens less likely than minP times the most likely one (0: off).
    public var minP: Float = 0
    /// Penalty on the logits of every id already in the prompt or the output (1: off).
    public var repetitionPenalty: Float = 1
    /// Stop when the generated text contains one of these; the text ends before it.
    public var stop: [String] = []
    /// Speculative decoding: tokens proposed by a draft model or found in the context, checked
    /// by the model in one pass (the output is what plain decoding gives).
    public var draft: Drafter? = nil
    public var seed: UInt64 = 0
    /// Keep the logits of every prompt position ([prompt, vocab]).
    public var promptLogits = false
    public init() {}
}

/// What a generation produced.
public struct GenerationResult: Sendable {
    public var promptTokens: [Int32]
    public var tokens: [Int32]
    public var text: String
    /// [prompt, vocab] when asked for, else empty.
    public var promptLogits: [Float]
    public var promptSeconds: Double
    public var decodeSeconds: Double
    /// Tokens made after the first (which the prompt pass gives): one forward pass each in
    /// plain decoding, fewer passes with a draft.
    public var decodeSteps: Int
    /// Why generation ended: "eos", "stop" (a stop string), "length" (max tokens).
    public var finishReason: String = "length"
    /// Speculative decoding: tokens proposed, tokens accepted, and the model's passes over them.
    public var draftProposed = 0
    public var draftAccepted = 0
    public var verifyPasses = 0
}

/// A causal language model in a .folio file made from a Hugging Face folder: the config,
/// the tokenizer and the weights all come from the one file. Architectures: those of
/// `Registry.decoders` (Models/), by config.json's `model_type`.
public final class TextGenerator: @unchecked Sendable {
    // @unchecked: immutable after init; one generation at a time.
    public static var architectures: [String] { Registry.decoderNames }
    /// Prompt tokens per forward pass during prefill.
    static let prefillChunk = 512

    public let path: String
    public let modelType: String
    public let vocabSize: Int
    public let eosIDs: Set<Int32>
    public let tokenizer: (any TextTokenizer)?
    let model: any CausalLM
    let source: ModelSource

    /// `semantics` picks, for longcat_flash_ngram, between the checkpoint's own modeling code
    /// ("checkpoint", the default) and mlx-lm's ("mlx-lm"); see LongcatNgramModel.
    public convenience init(path: String, semantics: String = "checkpoint") throws {
        try self.init(source: try FolioFile(path: path), semantics: semantics)
    }

    /// A model from any source: one file, or the shards of an index.
    public init(source file: ModelSource, semantics: String = "checkpoint") throws {
        let path = file.path
        self.path = path
        self.source = file
        try Math.requireBLAS(for: path)
        // The workers start while the weights load: a thread's first run on this 2-vCPU
        // guest took 10-100 ms, which the first prompt pass otherwise paid.
        Math.startWorkers()
        try file.fetchFiles()
        let config: ModelConfig
        var eos = Set<Int32>()
        let fromGGUF = file.fileBytes(named: "config.json") == nil && GGUFLlama.architecture(file) != nil
        if fromGGUF {
            // Converted from GGUF: the config comes from its key-value pairs.
            guard let arch = GGUFLlama.architecture(file), arch == "llama" else {
                throw InferenceError.unsupported(file: path, reason: "GGUF architecture '\(GGUFLlama.architecture(file) ?? "")' is not supported by folio run (llama is)")
            }
            let (c, ids) = try GGUFLlama.config(file)
            config = c
            eos.formUnion(ids)
        } else {
            guard let configBytes = file.fileBytes(named: "config.json") else {
                throw InferenceError.unsupported(file: path, reason: "no config.json inside: convert the model's Hugging Face folder, not a lone weights file")
            }
            config = try ModelConfig(file: path + ":config.json", bytes: configBytes)
        }
        modelType = try config.string("model_type")
        eos.formUnion(try config.ids("eos_token_id"))
        if let g = file.fileBytes(named: "generation_config.json") {
            eos.formUnion(try ModelConfig(file: path + ":generation_config.json", bytes: g).ids("eos_token_id"))
        }
        eosIDs = eos
        let weights = fromGGUF ? WeightStore(source: file, prefix: "", rename: GGUFLlama.rename) : WeightStore(source: file, prefix: "")
        guard let architecture = Registry.decoder(modelType) else {
            throw InferenceError.unsupported(file: path, reason: "model_type '\(modelType)' is not supported by folio run (supported: \(Self.architectures.joined(separator: ", ")))")
        }
        model = try architecture.build(config, weights, BuildContext(ggufLayout: fromGGUF, semantics: semantics, eosIDs: eos))
        try config.refuseUnread(modelType: modelType)
        let ignored = architecture.ignores
        let unused = weights.unused(ignoring: ignored)
        if let first = unused.first {
            throw InferenceError.unsupported(file: path, reason: "tensor '\(first)' is not part of a \(modelType) model (\(unused.count) such tensors)")
        }
        vocabSize = model.vocabSize
        if let t = file.fileBytes(named: "tokenizer.json") {
            tokenizer = try Tokenizers.load(json: t, file: path + ":tokenizer.json")
        } else {
            tokenizer = nil
        }
    }

    /// Prompt ids of a text, with the special tokens the tokenizer's template adds.
    public func encode(_ text: String) throws -> [Int32] {
        guard let tokenizer else { throw InferenceError.unsupported(file: path, reason: "no tokenizer.json inside; give --tokens instead of a text prompt") }
        return tokenizer.encode(text, addSpecialTokens: true)
    }

    /// The prompt of a conversation through the checkpoint's chat template
    /// (`chat_template.jinja`, else tokenizer_config.json's `chat_template`), with a
    /// generation prompt, and its ids encoded without special tokens (the template writes
    /// them, as transformers' `apply_chat_template` encodes).
    public func chatPrompt(_ messages: [JSONValue]) throws -> (text: String, ids: [Int32]) {
        guard let tokenizer else { throw InferenceError.unsupported(file: path, reason: "no tokenizer.json inside; --chat needs one") }
        var template: ChatTemplate? = nil
        var variables: [(String, JSONValue)] = []
        if let c = source.fileBytes(named: "tokenizer_config.json") {
            (template, variables) = try ChatTemplate.fromTokenizerConfig(c, file: path + ":tokenizer_config.json")
        }
        if let j = source.fileBytes(named: "chat_template.jinja") {
            template = try ChatTemplate(source: String(decoding: j, as: UTF8.self), file: path + ":chat_template.jinja")
        }
        guard let template else {
            throw InferenceError.unsupported(file: path, reason: "has no chat template (chat_template.jinja or tokenizer_config.json's chat_template); run without --chat")
        }
        let text = try template.render(messages: messages, addGenerationPrompt: true, variables: variables)
        return (text, tokenizer.encode(text, addSpecialTokens: false))
    }

    /// Logits of every position of `tokens` in one forward pass, [count, vocab].
    public func logits(_ tokens: [Int32]) throws -> [Float] {
        try model.startSession().forward(tokens, allLogits: true)
    }

    /// Logits of every position, computed one token at a time through the cache.
    public func logitsIncrementally(_ tokens: [Int32]) throws -> [Float] {
        let session = model.startSession()
        var out: [Float] = []
        for t in tokens { out += try session.forward([t], allLogits: false) }
        return out
    }

    /// The most positions a sequence may have: prompt plus generated tokens.
    public var positionLimit: Int { model.positionLimit }

    /// Runs the prompt, then samples up to `maxTokens` tokens, stopping after an end-of-sequence
    /// token or once the text contains a stop string (the text then ends before it). `onText`
    /// receives the text as it is made, in pieces of whole UTF-8 characters; text that may be
    /// the start of a stop string is held back until it is known not to be one. With a
    /// drafter (`options.draft`) tokens are proposed and verified in batches
    /// (`SpeculativeDecoding`); the tokens are those plain decoding gives.
    public func generate(prompt: [Int32], options o: GenerationOptions, onText: ((String) -> Void)? = nil) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw InferenceError.badInput("the prompt has no tokens") }
        guard prompt.count + o.maxTokens <= model.positionLimit else {
            throw InferenceError.badInput("a prompt of \(prompt.count) tokens and \(o.maxTokens) new tokens need \(prompt.count + o.maxTokens) positions; \(path) allows \(model.positionLimit) (max_position_embeddings and its RoPE scaling)")
        }
        let stops = o.stop.filter { !$0.isEmpty }.map { Array($0.utf8) }
        if !stops.isEmpty && tokenizer == nil {
            throw InferenceError.unsupported(file: path, reason: "stop strings need the tokenizer, and there is no tokenizer.json inside")
        }
        let session = model.startSession()
        var sampler = Sampler(temperature: o.temperature, topP: o.topP, seed: o.seed, topK: o.topK, minP: o.minP,
                              repetitionPenalty: o.repetitionPenalty)
        sampler.observe(prompt)
        var speculative = try o.draft.map { try SpeculativeDecoding(target: self, drafter: $0, options: o, prompt: prompt) }
        let t0 = FileSystem.monotonicSeconds()
        // The prompt runs in chunks: attention scores of a chunk are [chunk, positions so far],
        // so a long prompt never needs a [prompt, prompt] matrix per head.
        var logits: [Float] = []
        var start = 0
        while start < prompt.count {
            let end = min(prompt.count, start + Self.prefillChunk)
            let part = try session.forward(Array(prompt[start..<end]), allLogits: o.promptLogits)
            if o.promptLogits { logits += part } else { logits = part }
            start = end
        }
        let t1 = FileSystem.monotonicSeconds()
        var result = GenerationResult(promptTokens: prompt, tokens: [], text: "", promptLogits: o.promptLogits ? logits : [],
                                      promptSeconds: t1 - t0, decodeSeconds: 0, decodeSteps: 0)
        // The text so far as bytes, and how much of it has been handed to onText.
        var text: [UInt8] = []
        var shown = 0
        var end: Int? = nil
        // Every token so far; the last generated one is not yet fed to the model.
        var sequence = prompt
        var first = true
        generation: while result.tokens.count < o.maxTokens {
            var batch: [Int32]
            if first {
                let row = logits.count - vocabSize
                batch = [logits.withUnsafeBufferPointer { sampler.next(UnsafeBufferPointer(rebasing: $0[row...])) }]
                first = false
            } else if var spec = speculative {
                batch = try spec.step(session: session, sequence: sequence, sampler: &sampler,
                                      remaining: o.maxTokens - result.tokens.count, result: &result)
                speculative = spec
            } else {
                logits = try session.forward([sequence.last!], allLogits: false)
                batch = [logits.withUnsafeBufferPointer { sampler.next($0) }]
            }
            sequence += batch
            for t in batch {
                result.tokens.append(t)
                sampler.observe(CollectionOfOne(t))
                if eosIDs.contains(t) { result.finishReason = "eos"; break }
                if result.tokens.count == o.maxTokens { break }
            }
            if let tokenizer, onText != nil || !stops.isEmpty {
                let stream = result.finishReason == "eos" ? Array(result.tokens.dropLast()) : result.tokens
                let settled = stream.count - tokenizer.unsettledTokens(stream)
                text = tokenizer.decodeBytes(Array(stream[..<settled]), skipSpecialTokens: false)
                if let cut = Self.firstStop(stops, in: text, from: max(0, shown - (stops.map(\.count).max() ?? 0))) {
                    end = cut
                    result.finishReason = "stop"
                    // A batch of drafted tokens may run past the stop: keep the tokens up to
                    // the one that completes it, as plain decoding would.
                    while result.tokens.count > 1,
                          Self.firstStop(stops, in: tokenizer.decodeBytes(Array(result.tokens.dropLast()), skipSpecialTokens: false), from: 0) != nil {
                        result.tokens.removeLast()
                    }
                }
                let safe = end ?? Self.completeUTF8Prefix(Array(text[..<(text.count - Self.heldBack(stops, text))]))
                if let onText, safe > shown {
                    onText(String(decoding: text[shown..<safe], as: UTF8.self))
                    shown = safe
                }
            }
            if result.finishReason != "length" { break generation }
        }
        result.decodeSteps = max(0, result.tokens.count - 1)
        result.decodeSeconds = FileSystem.monotonicSeconds() - t1
        if let tokenizer {
            let textTokens = result.finishReason == "eos" ? Array(result.tokens.dropLast()) : result.tokens
            let bytes = tokenizer.decodeBytes(textTokens, skipSpecialTokens: false)
            // Byte-fallback tokens held back from the stop search settle only now.
            if end == nil, let cut = Self.firstStop(stops, in: bytes, from: max(0, shown - (stops.map(\.count).max() ?? 0))) {
                end = cut
                result.finishReason = "stop"
            }
            let final = end.map { Array(bytes[..<$0]) } ?? bytes
            if let onText, final.count > shown { onText(String(decoding: final[shown...], as: UTF8.self)) }
            result.text = String(decoding: final, as: UTF8.self)
        }
        return result
    }

    /// Byte offset of the earliest stop string in `text` that starts at or after `from`.
    static func firstStop(_ stops: [[UInt8]], in text: [UInt8], from: Int) -> Int? {
        guard !stops.isEmpty, !text.isEmpty else { return nil }
        var i = from
        while i < text.count {
            for s in stops where i + s.count <= text.count && text[i..<(i + s.count)].elementsEqual(s) { return i }
            i += 1
        }
        return nil
    }

    /// How many bytes at the end of `text` could be the start of a stop string.
    static func heldBack(_ stops: [[UInt8]], _ text: [UInt8]) -> Int {
        var held = 0
        for s in stops {
            var k = min(s.count - 1, text.count)
            while k > held {
                if text[(text.count - k)...].elementsEqual(s[..<k]) { held = k; break }
                k -= 1
            }
        }
        return held
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
    static func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
        var i = bytes.count
        var back = 0
        while i > 0 && back < 4 {
            let b = bytes[i - 1]
            if b & 0xC0 != 0x80 {
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= need ? bytes.count : i - 1
            }
            i -= 1
            back += 1
        }
        return bytes.count
    }
}
