import Foundation
import Testing

@testable import DPExperiments

// Display labels from the config (`labels:`), used by tables and plots (issue 10, item 10).

let labelledYAML =
    runnerYAML + """
        labels:
          privacy.target_epsilon: "budget ε"
          model.name: {mlp: "small MLP"}
          test_accuracy: "Test accuracy"
          kind: {non-private: "no DP (baseline)"}

        """

@Test("labels: key names and value names are read, checked and recorded in the manifest")
func labelsAreReadAndRecorded() throws {
    let config = try parse(labelledYAML)
    #expect(config.labels.keys == ["privacy.target_epsilon": "budget ε", "test_accuracy": "Test accuracy"])
    #expect(config.labels.values == ["model.name": ["mlp": "small MLP"], "kind": ["non-private": "no DP (baseline)"]])
    #expect(config.labels.key("privacy.target_epsilon") == "budget ε")
    #expect(config.labels.value("mlp", of: "model") == "small MLP") // the runs.csv column takes model.name's names
    #expect(config.labels.assignment("privacy.target_epsilon", "1") == "budget ε = 1")

    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor(), yaml: labelledYAML)
    let manifest = try readManifest(dir)
    #expect(manifest["labels"]?["privacy.target_epsilon"] == .string("budget ε"))
    #expect(manifest["labels"]?["model.name"]?["mlp"] == .string("small MLP"))
    #expect(DisplayLabels(manifest: manifest) == config.labels)
}

@Test("numbers in value names match however the file writes them")
func valueLabelsMatchNumbers() throws {
    let config = try parse(runnerYAML + "labels:\n  privacy.target_epsilon: {1.0: strict, 8: loose}\n")
    #expect(config.labels.value("1", of: "privacy.target_epsilon") == "strict")
    #expect(config.labels.assignment("privacy.target_epsilon", "8") == "loose")
    #expect(config.labels.assignment("privacy.target_epsilon", "3") == "target ε = 3")
}

@Test(
    "labels errors name the file, line and key path",
    arguments: [
        (
            "labels:\n  privacy.target_epsiln: \"ε\"\n", "labels.privacy.target_epsiln",
            "unknown key path `privacy.target_epsiln` (did you mean `privacy.target_epsilon`?)"
        ),
        ("labels:\n  optimizer.momentum_x: m\n", "labels.optimizer.momentum_x", "unknown key path"),
        ("labels:\n  name: experiment\n", "labels.name", "unknown key path"),
        (
            "labels:\n  model.name: {mpl: \"small MLP\"}\n", "labels.model.name.mpl",
            "no run has model.name = `mpl` (did you mean `mlp`?)"
        ),
        ("labels:\n  model.name: {mlp: 3}\n", "labels.model.name.mlp", "must be a display name"),
        ("labels:\n  model.name: \"\"\n", "labels.model.name", "empty display name"),
        ("labels:\n  model.name: [a, b]\n", "labels.model.name", "must be a display name (a string) or a map"),
        ("labels: [model.name]\n", "labels", "must be a map"),
    ])
func labelErrorsAreConfigErrors(_ tail: String, _ path: String, _ message: String) throws {
    let yaml = runnerYAML + tail
    let error = try #require(configError(yaml))
    #expect(error.path == path, "\(error)")
    #expect(error.message.contains(message), "\(error)")
    let line =
        yaml.split(separator: "\n", omittingEmptySubsequences: false).count - tail.split(separator: "\n").count
        + (tail.hasPrefix("labels: [") ? 0 : 1)
    #expect(error.line == line, "\(error)")
    #expect(error.description.hasPrefix("test.yaml:\(line): \(path): "), "\(error)")
}

@Test("a label may name an output column, seed, or any key path the config reader knows, used or not")
func labelKeysThatAreAllowed() throws {
    let yaml =
        runnerYAML + """
            labels:
              seed: "seed"
              epsilon: "ε spent"
              model: "Model"
              privacy.noise_multiplier: "noise σ"
              model.options.hidden_sizes: "hidden widths"
              optimizer.momentum: "β"

            """
    #expect(configError(yaml) == nil, "\(String(describing: configError(yaml)))")
    // An accounting config has no runs to label.
    let accounting =
        "kind: accounting\nname: a\naccounting: {sampling_probability: 0.01, noise_multiplier: 1, steps: 10, delta: 1e-5}\nlabels: {q: x}\n"
    #expect(configError(accounting)?.path == "labels")
}

@Test("the table and the figure show the config's labels, not the raw keys and values")
func labelsAppearInTablesAndPlots() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor(), yaml: labelledYAML)

    let (markdown, _) = try tableText(forDirectory: dir, format: .markdown)
    let lines = markdown.split(separator: "\n").map(String.init)
    #expect(lines[0] == "| model | budget ε = 1 | budget ε = 8 |", "\(markdown)")
    #expect(
        lines[2].hasPrefix("| small MLP |") && lines[3].hasPrefix("| small MLP (no DP (baseline)) |"), "\(markdown)")
    #expect(markdown.contains("Test accuracy (%): mean"))

    let (latex, _) = try tableText(forDirectory: dir, format: .latex)
    #expect(latex.contains("model & budget $\\varepsilon$ = 1 & budget $\\varepsilon$ = 8 \\\\"), "\(latex)")
    #expect(latex.contains("\nsmall MLP & ") && latex.contains("\\caption{Test accuracy (\\%): mean"))
    #expect(!latex.contains("target\\_epsilon") && !latex.contains("privacy.target"))

    // CSV keeps raw keys and values for scripts.
    let (csv, _) = try tableText(forDirectory: dir, format: .csv)
    #expect(csv.hasPrefix("model,privacy.target_epsilon,"))

    let svg = SVGDocument(try ExperimentPlots.svg(forDirectory: dir))
    let texts = Set(svg.elements.filter { $0.name == "text" }.map(\.text))
    for label in ["budget ε = 1", "budget ε = 8", "small MLP", "no DP (baseline)", "Test accuracy (%)"] {
        #expect(texts.contains(label), "figure lacks \(label): \(texts.sorted())")
    }
    #expect(!texts.contains { $0.contains("target_epsilon") || $0.contains("non-private") })
}

@Test("without labels, tables and figures name the budget `target ε` and leave other keys as they are")
func builtInNames() throws {
    let labels = DisplayLabels()
    #expect(labels.key("privacy.target_epsilon") == "target ε" && labels.key("privacy.noise_multiplier") == "σ")
    #expect(labels.key("optimizer.learning_rate") == "optimizer.learning_rate")
    #expect(labels.assignment("optimizer.learning_rate", "0.1") == "optimizer.learning_rate = 0.1")
    #expect(labels.assignment("model.name", "mlp") == "mlp")
    #expect(labels.control(.clipOnly) == "clip-only, σ = 0")
    // A manifest written before labels existed gives none.
    #expect(DisplayLabels(manifestJSON: "{\"experiment\": \"x\"}") == labels)
}

// MARK: - LaTeX

@Test("LaTeX escaping: the ten specials, < > |, Greek and math symbols")
func latexEscaping() {
    #expect(LaTeX.escape("a_b%c&d#e$f{g}h") == "a\\_b\\%c\\&d\\#e\\$f\\{g\\}h")
    #expect(LaTeX.escape("x~y^z\\w") == "x\\textasciitilde{}y\\textasciicircum{}z\\textbackslash{}w")
    #expect(LaTeX.escape("a<b>c|d") == "a\\textless{}b\\textgreater{}c\\textbar{}d")
    #expect(
        LaTeX.escape("target ε = 1, σ ± δ, ∞ – ok…")
            == "target $\\varepsilon$ = 1, $\\sigma$ $\\pm$ $\\delta$, $\\infty$ -- ok\\ldots{}")
    #expect(LaTeX.escape("modèle") == "modèle")
}

@Test("a LaTeX table states the packages it needs, and escapes every label")
func latexTableStatesPackagesAndEscapes() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.latex)
    #expect(text.hasPrefix("% requires \\usepackage{booktabs}\n\\begin{table}"))
    // Everything else it uses is in the LaTeX kernel; nothing outside ASCII is left.
    #expect(!text.contains("UTF-8") && text.unicodeScalars.allSatisfy { $0.isASCII })
    #expect(!text.contains("amsmath") && !text.contains("\\text{") && !text.contains("\\boldsymbol"))

    let odd =
        CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
        + runsRow("a-s0", hash: "a", seed: 0, eps: "1", model: "cnn_v2 #1 & 50% {x}", accuracy: 0.8, spent: 1)
        + runsRow("b-s0", hash: "b", seed: 0, eps: "1", model: "modèle", accuracy: 0.7, spent: 1)
    let table = try ResultsTable.aggregate(runsCSV: odd).render(
        .latex, labels: DisplayLabels(keys: ["model": "Model ~ name"]))
    #expect(table.contains("\ncnn\\_v2 \\#1 \\& 50\\% \\{x\\} & "), "\(table)")
    #expect(table.contains("\nModel \\textasciitilde{} name & "))
    #expect(table.hasPrefix("% requires \\usepackage{booktabs}\n% requires UTF-8 input"))

    let accounting = try renderAccountingTable(
        accountingCSV: CSV.line(accountingColumns) + CSV.line(["0.01", "1", "100", "1e-05", "1.5", "", ""]),
        format: .latex)
    #expect(accounting.hasPrefix("% requires \\usepackage{booktabs}\n\\begin{tabular}"))
    #expect(accounting.contains("q = 0.01, $\\sigma$ = 1 & RDP 1.5 \\\\"))
}
