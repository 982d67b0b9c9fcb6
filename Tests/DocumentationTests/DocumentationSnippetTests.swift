import Foundation
import Testing

// Every ```swift block in README.md, docs/*.md and the DocC catalogs (Sources/*/*.docc) is
// either compiled or says why not, on the line before it:
//
//   <!-- snippet: Examples/DocSnippets/Accounting.swift#accounting-events -->
//       the block equals the lines between `// snippet: accounting-events` and `// end snippet`
//       in that file (common indentation removed); `make examples` compiles the Examples
//       package, and so every such file, and runs most of them.
//   <!-- not compiled: REASON -->
//       an excerpt or a fragment (a declaration shortened, one element of a list).

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

struct SwiftBlock: CustomStringConvertible {
    var file: String, line: Int, marker: String?, text: [String]
    var description: String { "\(file):\(line)" }
}

/// The ```swift blocks of a Markdown file, each with the HTML comment on the line before it.
func swiftBlocks(in relativePath: String) throws -> [SwiftBlock] {
    let lines = try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
        .components(separatedBy: "\n")
    var blocks: [SwiftBlock] = []
    var i = 0
    while i < lines.count {
        guard lines[i].trimmingCharacters(in: .whitespaces) == "```swift" else {
            i += 1
            continue
        }
        let previous = i > 0 ? lines[i - 1].trimmingCharacters(in: .whitespaces) : ""
        let marker = previous.hasPrefix("<!--") ? previous : nil
        var body: [String] = []
        var j = i + 1
        while j < lines.count, lines[j].trimmingCharacters(in: .whitespaces) != "```" {
            body.append(lines[j])
            j += 1
        }
        blocks.append(SwiftBlock(file: relativePath, line: i + 1, marker: marker, text: body))
        i = j + 1
    }
    return blocks
}

/// The lines between `// snippet: name` and the next `// end snippet`, common indentation removed.
func snippetRegion(file: String, name: String) throws -> [String]? {
    let lines = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8).components(separatedBy: "\n")
    guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "// snippet: \(name)" }),
        let end = lines[(start + 1)...].firstIndex(where: {
            $0.trimmingCharacters(in: .whitespaces) == "// end snippet"
        })
    else { return nil }
    let region = Array(lines[(start + 1)..<end])
    let indent =
        region.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        .map { $0.prefix { $0 == " " }.count }.min() ?? 0
    return region.map { $0.count >= indent ? String($0.dropFirst(indent)) : $0.trimmingCharacters(in: .whitespaces) }
}

/// README.md, docs/*.md and every .md of a DocC catalog.
func documentationFiles() throws -> [String] {
    let fm = FileManager.default
    var files = ["README.md"]
    files += try fm.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
        .filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    for module in try fm.contentsOfDirectory(atPath: root.appendingPathComponent("Sources").path).sorted() {
        let catalog = "Sources/\(module)/\(module).docc"
        guard let items = try? fm.contentsOfDirectory(atPath: root.appendingPathComponent(catalog).path) else {
            continue
        }
        files += items.filter { $0.hasSuffix(".md") }.sorted().map { "\(catalog)/\($0)" }
    }
    return files
}

@Test func everySwiftSnippetIsCompiledOrSaysWhyNot() throws {
    var compiled = 0
    for file in try documentationFiles() {
        for block in try swiftBlocks(in: file) {
            guard let marker = block.marker else {
                Issue.record(
                    "\(block): a ```swift block needs `<!-- snippet: Examples/...swift#name -->` or `<!-- not compiled: reason -->` on the line before it"
                )
                continue
            }
            // Not compiled here: a reason is given, or another test checks the block word for word.
            if marker.hasPrefix("<!-- not compiled:") || marker.hasPrefix("<!-- worked example:") { continue }
            guard marker.hasPrefix("<!-- snippet: "), marker.hasSuffix(" -->") else {
                Issue.record("\(block): unknown marker \(marker)")
                continue
            }
            let reference = marker.dropFirst("<!-- snippet: ".count).dropLast(" -->".count)
            let parts = reference.split(separator: "#", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                Issue.record("\(block): \(marker) must name FILE#SNIPPET")
                continue
            }
            guard let region = try snippetRegion(file: parts[0], name: parts[1]) else {
                Issue.record("\(block): no `// snippet: \(parts[1])` ... `// end snippet` in \(parts[0])")
                continue
            }
            let trim = { (lines: [String]) in
                lines.map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
            }
            #expect(
                trim(region) == trim(block.text),
                "\(block) differs from \(parts[0])#\(parts[1]): edit both (the file is what `make examples` compiles)")
            compiled += 1
        }
    }
    #expect(compiled >= 1, "the README program at least is compiled")
}
