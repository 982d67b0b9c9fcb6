// swift-format-ignore-file
// (the snippet regions are shown word for word in the docs: Tests/DocumentationTests)
// Runs the documentation snippets that are quick (the others are compiled only).
// Each snippet lives between `// snippet: NAME` and `// end snippet` in a file of this folder;
// the Markdown block that shows it is preceded by `<!-- snippet: Examples/DocSnippets/FILE#NAME -->`.
let quick: [(String, () throws -> Void)] = [
    ("accounting-events", accountingEvents),
    ("accounting-calibration", accountingCalibration),
    ("federated-rounds", federatedRounds),
]
for (name, run) in quick {
    try run()
    print("snippet \(name): ran")
}
print("snippets compiled only: data-loading (generates 60,000 images)")
