import Foundation
import ArgumentParser
import Folio
import FolioConvert
import FolioInference

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a causal language model (llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, gemma2, gemma3_text, phi3, olmo2, gpt2, smollm3, deepseek_v2, deepseek_v3, longcat_flash_ngram).",
        discussion: "MODEL is a .folio file converted from a Hugging Face model folder; it carries the config and the tokenizer. Text is streamed to stdout as it is made.")

    @Argument(help: "The .folio model.") var model: String
    @Option(help: "The prompt text (special tokens of the tokenizer's template are added).") var prompt: String?
    @Option(help: "The prompt as comma-separated token ids.") var tokens: String?
    @Flag(help: "Chat: put the prompt (a user message) through the checkpoint's chat template (chat_template.jinja or tokenizer_config.json) with a generation prompt. Without --prompt or --messages: an interactive conversation on a terminal, or stdin as one user message.") var chat = false
    @Option(help: "With --chat: a system message before the conversation.") var system: String?
    @Option(help: "With --chat: a JSON file holding the conversation, [{\"role\": ..., \"content\": ...}, ...].") var messages: String?
    @Option(help: "Tokens to generate (0: only evaluate the prompt).") var maxTokens: Int = 128
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass.") var topP: Float = 1
    @Option(help: "Sample among the k most likely tokens only (0: no limit).") var topK: Int = 0
    @Option(help: "Drop tokens less likely than this fraction of the most likely one (0: off).") var minP: Float = 0
    @Option(help: "Divide positive logits (multiply negative ones) of every id already in the prompt or output by this (1: off), as transformers does.") var repetitionPenalty: Float = 1
    @Option(help: "Stop once the text contains this string; the text ends before it (repeatable).") var stop: [String] = []
    @Option(help: "Speculative decoding with this draft model (same vocabulary): it proposes --draft-tokens tokens, the model checks them in one pass; the output is what plain decoding gives.") var draft: String?
    @Flag(help: "Speculative decoding by prompt lookup: propose the tokens that followed the last occurrence of the context's final tokens.") var lookup = false
    @Option(help: "Tokens proposed per step with --draft (default 2: a pass within one group of three rows of the product kernels) or --lookup (default 5, the most one pass checks).") var draftTokens: Int?
    @Option(help: "Random seed for sampling.") var seed: UInt64?
    @Option(help: "Write the logits of every prompt position as a float32 .npy [prompt_length, vocab_size].") var logits: String?
    @Option(help: "longcat_flash_ngram semantics: checkpoint (the model's own code: n-gram history reset after an end token, LoRA-norm eps 1e-6) or mlx-lm.") var semantics: String = "checkpoint"
    @Flag(help: "Print one JSON document with the prompt and generated tokens, the text and the speeds.") var json = false
    @Flag(help: "Report load time and tokens per second on stderr.") var timing = false
    @Option(help: "Threads to split the work over (default: every core).") var threads: Int?

    func validate() throws {
        if chat {
            guard tokens == nil else { throw ValidationError("--chat takes --prompt or --messages, not --tokens") }
            guard prompt == nil || messages == nil else { throw ValidationError("give at most one of --prompt and --messages") }
            guard !(json && prompt == nil && messages == nil && isatty(0) != 0) else { throw ValidationError("--json needs --prompt or --messages with --chat") }
        } else {
            guard system == nil, messages == nil else { throw ValidationError("--system and --messages need --chat") }
            guard (prompt == nil) != (tokens == nil) else { throw ValidationError("give exactly one of --prompt and --tokens") }
        }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be a finite number, at least 0") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard topK >= 0 else { throw ValidationError("--top-k must not be negative") }
        guard minP >= 0, minP <= 1 else { throw ValidationError("--min-p must be in [0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw ValidationError("--repetition-penalty must be a finite number greater than 0") }
        guard !stop.contains("") else { throw ValidationError("--stop must not be empty") }
        guard !(draft != nil && lookup) else { throw ValidationError("give at most one of --draft and --lookup") }
        if let draftTokens { guard draftTokens >= 1, draftTokens <= 64 else { throw ValidationError("--draft-tokens must be in 1...64") } }
        if let threads, threads < 1 || threads > 64 { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        if let threads { Inference.setThreads(threads) }
        try requireFolioModel(model)
        let t0 = FileSystem.monotonicSeconds()
        let generator = try TextGenerator(source: try FolioModel.open(model), semantics: semantics)
        let t1 = FileSystem.monotonicSeconds()
        var ids: [Int32]
        var conversation: [JSONValue] = system.map { [Self.message("system", $0)] } ?? []
        if let tokens {
            ids = try tokens.split(separator: ",", omittingEmptySubsequences: false).map { s in
                let t = s.trimmingCharacters(in: .whitespaces)
                guard let v = Int32(t), v >= 0 else { throw CLIError("--tokens: '\(t)' is not a token id") }
                guard Int(v) < generator.vocabSize else { throw CLIError("--tokens: id \(v) is outside the vocabulary (0..<\(generator.vocabSize))") }
                return v
            }
        } else if chat {
            if let messages {
                conversation += try Self.readMessages(messages)
            } else if let prompt {
                conversation.append(Self.message("user", prompt))
            } else if isatty(0) != 0 {
                return try interactive(generator, conversation)
            } else {
                var input = [UInt8]()
                while let line = readLine(strippingNewline: false) { input += Array(line.utf8) }
                conversation.append(Self.message("user", String(decoding: input, as: UTF8.self)))
            }
            ids = try generator.chatPrompt(conversation).ids
        } else {
            ids = try generator.encode(prompt!)
        }
        guard !ids.isEmpty else { throw CLIError("the prompt encodes to no tokens") }
        let options = try generationOptions()
        let stream = !json && generator.tokenizer != nil
        let result = try generator.generate(prompt: ids, options: options, onText: stream ? { emitPart($0) } : nil)
        if stream { emitPart("\n") }
        try report(result, ids: ids, generator: generator, options: options, load: t1 - t0)
    }

    static func message(_ role: String, _ content: String) -> JSONValue { .object([("role", .string(role)), ("content", .string(content))]) }

    /// A conversation file: a JSON array of objects, each with string `role` and `content`.
    static func readMessages(_ path: String) throws -> [JSONValue] {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read the file") }
        let doc: JSONValue
        do { doc = try JSONParser.parse(Array(bytes)) } catch { throw CLIError("\(path): not valid JSON: \(error)") }
        guard let list = doc.arrayValue, !list.isEmpty else { throw CLIError("\(path): expected a non-empty JSON array of messages") }
        for (i, m) in list.enumerated() {
            guard m["role"]?.stringValue != nil, m["content"] != nil else {
                throw CLIError("\(path): message \(i) needs a string 'role' and a 'content'")
            }
        }
        return list
    }

    /// A conversation on the terminal: each line is a user message, the reply is streamed and
    /// kept in the history; an empty line is skipped, /exit or end of input ends it.
    func interactive(_ generator: TextGenerator, _ start: [JSONValue]) throws {
        var conversation = start
        let options = try generationOptions()
        FileSystem.writeStderr("chat: type a message and press return; /exit or Ctrl-D ends\n")
        while true {
            FileSystem.writeStderr("> ")
            guard let line = readLine() else { FileSystem.writeStderr("\n"); break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" { break }
            conversation.append(Self.message("user", line))
            let ids = try generator.chatPrompt(conversation).ids
            let result = try generator.generate(prompt: ids, options: options, onText: { emitPart($0) })
            emitPart("\n")
            conversation.append(Self.message("assistant", result.text))
        }
    }

    func generationOptions() throws -> GenerationOptions {
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.temperature = temperature
        options.topP = topP
        options.topK = topK
        options.minP = minP
        options.repetitionPenalty = repetitionPenalty
        options.stop = stop
        if let draft {
            let d = try TextGenerator(source: try FolioModel.open(draft), semantics: semantics)
            options.draft = .model(d, tokens: draftTokens ?? 2)
        } else if lookup {
            options.draft = .lookup(tokens: draftTokens ?? 5)
        }
        options.seed = seed ?? UInt64.random(in: 0...UInt64.max)
        options.promptLogits = logits != nil
        return options
    }

    func report(_ result: GenerationResult, ids: [Int32], generator: TextGenerator, options: GenerationOptions, load: Double) throws {
        if let logits {
            try NumPyWriter.writeFloat32(result.promptLogits, shape: [ids.count, generator.vocabSize], to: logits)
        }
        let promptRate = Double(ids.count) / max(result.promptSeconds, 1e-9)
        let rate = result.decodeSteps > 0 ? Double(result.decodeSteps) / max(result.decodeSeconds, 1e-9) : 0
        if json {
            emit(JSONValue.object([
                ("prompt_tokens", .array(ids.map { .int($0) })),
                ("tokens", .array(result.tokens.map { .int($0) })),
                ("text", .string(result.text)),
                ("finish_reason", .string(result.finishReason)),
                ("draft_proposed", .int(result.draftProposed)),
                ("draft_accepted", .int(result.draftAccepted)),
                ("verify_passes", .int(result.verifyPasses)),
                ("prompt_tokens_per_second", .double(promptRate)),
                ("tokens_per_second", .double(rate)),
            ]).serialized())
        } else if generator.tokenizer == nil {
            emit(result.tokens.map(String.init).joined(separator: ","))
        }
        if timing {
            FileSystem.writeStderr("run: load \(fmt(load, 3)) s; prompt \(ids.count) tokens at \(fmt(promptRate, 1)) tokens/s; "
                + "\(result.tokens.count) generated, \(fmt(rate, 1)) tokens/s"
                + (options.draft == nil ? "" : "; \(result.draftAccepted) of \(result.draftProposed) proposed tokens accepted in \(result.verifyPasses) passes")
                + "\n")
        }
    }
}
