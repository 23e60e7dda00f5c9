import Foundation
import Testing
import Folio
import FolioTokenizers

/// Chat templates rendered as transformers renders them (Tools/reference/make_chat_template_fixtures.py):
/// the five families' real templates (Tests/Fixtures/chat-templates/SOURCES.md) and one of
/// every construct the engine implements, with and without a system message and a
/// generation prompt, byte for byte; where transformers raises, the same message.
@Suite struct ChatTemplateTests {
    static let doc: JSONValue = try! JSONParser.parse(Array(try! Data(contentsOf: URL(fileURLWithPath: inferenceFixture("chat-templates/cases.json")))))

    @Test func everyCaseRendersAsTransformersDoes() throws {
        let cases = try #require(Self.doc["cases"]?.arrayValue)
        #expect(cases.count >= 8)
        var templates: [String: ChatTemplate] = [:]
        for c in cases {
            let name = try #require(c["template"]?.stringValue)
            if templates[name] == nil {
                let source = try String(contentsOfFile: inferenceFixture("chat-templates/\(name).jinja"), encoding: .utf8)
                templates[name] = try ChatTemplate(source: source, file: name + ".jinja")
            }
            let messages = try #require(c["messages"]?.arrayValue)
            let variables = c["variables"]?.objectValue ?? []
            let agp = c["add_generation_prompt"] == .bool(true)
            let label = "\(name) \(c["conversation"]?.stringValue ?? "") add_generation_prompt=\(agp)"
            if let expected = c["expected"]?.stringValue {
                let got = try templates[name]!.render(messages: messages, addGenerationPrompt: agp, variables: variables)
                #expect(got == expected, "\(label):\n\(got)\n--- expected ---\n\(expected)")
            } else {
                let message = try #require(c["error"]?.stringValue)
                do {
                    let got = try templates[name]!.render(messages: messages, addGenerationPrompt: agp, variables: variables)
                    Issue.record("\(label): rendered \(got), expected the error \(message)")
                } catch TokenizerError.badConfig(_, _, let reason) {
                    #expect(reason == message, "\(label)")
                }
            }
        }
    }

    @Test func integerOverflowIsAnErrorNotATrap() throws {
        for source in ["{{ 2 ** 63 }}", "{{ 10 ** 20 }}", "{{ 9223372036854775807 + 1 }}", "{{ -(-9223372036854775807 - 1) }}",
                       "{{ (-9223372036854775807 - 1) // -1 }}", "{{ 3.5e300 | int }}", "{{ range(-9223372036854775807, 9223372036854775807) | length }}"] {
            let t = try ChatTemplate(source: source, file: "t")
            #expect(throws: TokenizerError.self, "\(source)") { try t.render(messages: [], addGenerationPrompt: false) }
        }
    }

    @Test func syntaxErrorsNameTheLine() throws {
        #expect(throws: TokenizerError.self) { try ChatTemplate(source: "a\n{% if x %}b", file: "t") }
        do { _ = try ChatTemplate(source: "line one\n{{ x | }}", file: "t.jinja") } catch TokenizerError.badConfig(let f, let field, let reason) {
            #expect(f == "t.jinja" && field == "chat_template" && reason.hasPrefix("line 2:"), "\(reason)")
        }
        do { _ = try ChatTemplate(source: "{% include 'x' %}", file: "t") } catch TokenizerError.badConfig(_, _, let reason) {
            #expect(reason.contains("'include' is not supported"), "\(reason)")
        }
    }
}
