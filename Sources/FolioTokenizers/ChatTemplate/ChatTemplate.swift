import Folio

/// A checkpoint's chat template (tokenizer_config.json's `chat_template`, or
/// chat_template.jinja), rendered as transformers' `apply_chat_template(tokenize=False)`
/// renders it: Jinja2 with `trim_blocks` and `lstrip_blocks`, loop controls, and the
/// globals `raise_exception` and `strftime_now`. The Jinja subset implemented is what the
/// common templates use (if/elif/else, for with loop.* and else, set and namespace, macros,
/// filters, tests, Python string and dict methods); anything else is refused when the
/// template is parsed, naming the line.
public struct ChatTemplate: @unchecked Sendable {
    // @unchecked: the syntax tree is immutable after parsing (its namespace class appears only while rendering).
    let nodes: [Node]
    public let file: String

    public init(source: String, file: String) throws {
        self.file = file
        do { nodes = try TemplateParser.parse(source) } catch let e as TemplateError {
            throw TokenizerError.badConfig(file: file, field: "chat_template", reason: e.description)
        }
    }

    /// The prompt text for `messages` (JSON objects with at least `role` and `content`).
    /// `variables` adds globals (bos_token, eos_token, tools, date_string, ...).
    /// - Throws: `TokenizerError.badConfig` with the template's own message when it calls
    ///   `raise_exception`, or the evaluation error.
    public func render(messages: [JSONValue], addGenerationPrompt: Bool, variables: [(String, JSONValue)] = []) throws -> String {
        // transformers always passes these two, None unless given.
        var globals: [String: TemplateValue] = ["tools": .none, "documents": .none]
        for (k, v) in variables { globals[k] = TemplateValue(json: v) }
        globals["messages"] = .list(messages.map(TemplateValue.init(json:)))
        globals["add_generation_prompt"] = .bool(addGenerationPrompt)
        do {
            return try TemplateRenderer(globals: globals).render(nodes)
        } catch let e as TemplateError {
            throw TokenizerError.badConfig(file: file, field: "chat_template", reason: e.description)
        } catch TemplateRenderer.Flow.breakLoop, TemplateRenderer.Flow.continueLoop {
            throw TokenizerError.badConfig(file: file, field: "chat_template", reason: "break or continue outside a loop")
        }
    }

    /// The template a tokenizer_config.json names, and the special-token strings it uses:
    /// `chat_template` as a string, or a list of named templates (the one named "default").
    public static func fromTokenizerConfig(_ bytes: [UInt8], file: String) throws -> (template: ChatTemplate?, variables: [(String, JSONValue)]) {
        let doc: JSONValue
        do { doc = try JSONParser.parse(bytes) } catch { throw TokenizerError.badConfig(file: file, field: "tokenizer_config.json", reason: "not valid JSON") }
        var vars: [(String, JSONValue)] = []
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            switch doc[key] {
            case .string(let s)?: vars.append((key, .string(s)))
            case .object?:
                if let s = doc[key]?["content"]?.stringValue { vars.append((key, .string(s))) }
            default: break
            }
        }
        var template: ChatTemplate? = nil
        switch doc["chat_template"] {
        case .string(let s)?: template = try ChatTemplate(source: s, file: file)
        case .array(let list)?:
            if let d = list.first(where: { $0["name"]?.stringValue == "default" })?["template"]?.stringValue {
                template = try ChatTemplate(source: d, file: file)
            }
        default: break
        }
        return (template, vars)
    }
}
