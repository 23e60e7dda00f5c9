import Foundation
import Testing

/// The example files that Formats/ publishes stay true to the CLI: every golden file
/// verifies and inspects exactly as its NAME.inspect.json says, and every corrupt file fails
/// with the exit code and the one stderr line of Formats/corrupt/README.md's table.
@Suite struct SpecFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `folio` from the repository root, so that paths in messages read `Formats/...`.
    func folioAtRoot(_ args: [String]) throws -> Run { try folio(args, in: Self.root) }

    @Test func goldenFilesVerifyAndInspectAsPublished() throws {
        let dir = Self.root.appendingPathComponent("Formats/golden")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".folio") }.sorted()
        #expect(names.count >= 9)
        for name in names {
            let path = "Formats/golden/" + name
            let verify = try folioAtRoot(["verify", path])
            #expect(verify.status == 0, "\(name): \(verify.stderr)")
            let expected = try String(contentsOf: dir.appendingPathComponent(String(name.dropLast(".folio".count)) + ".inspect.json"), encoding: .utf8)
            let inspect = try folioAtRoot(["inspect", "--json", path])
            #expect(inspect.status == 0 && inspect.stdout == expected, "\(name): inspect --json differs from its .inspect.json")
        }
    }

    @Test func corruptFilesFailAsTheTableSays() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("Formats/corrupt/README.md"), encoding: .utf8)
        // | `NAME` | defect | `folio COMMAND` | EXIT | `LINE` |
        var rows: [(name: String, command: String, exit: Int32, line: String)] = []
        let table = try #require(readme.components(separatedBy: "| File | Defect |").dropFirst().first?.components(separatedBy: "\n## ").first)
        for line in table.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            try #require(cells.count == 7, "table row: \(line)")
            let unquote = { (s: String) in String(s.dropFirst().dropLast()) }
            rows.append((unquote(cells[1]), String(unquote(cells[3]).dropFirst("folio ".count)), Int32(cells[4]) ?? -1, unquote(cells[5])))
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Formats/corrupt").path).filter { $0.hasSuffix(".folio") }
        #expect(Set(rows.map(\.name)) == Set(files), "the table and the folder list different files")
        for row in rows {
            let r = try folioAtRoot([row.command, "Formats/corrupt/" + row.name])
            #expect(r.status == row.exit, "\(row.name): exit \(r.status)")
            #expect(r.stderr == row.line + "\n", "\(row.name): \(r.stderr)")
        }
    }
}
