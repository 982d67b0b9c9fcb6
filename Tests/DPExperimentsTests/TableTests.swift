import Foundation
import Testing

@testable import DPExperiments

/// A runs.csv row with the given figures; other columns empty.
func runsRow(
    _ id: String, hash: String, seed: Int, eps: String, model: String, kind: String = "private",
    status: String = "finished", accuracy: Double?, spent: Double?, relation: String = "add-remove",
    extra: [String: String] = [:]
) -> String {
    let header = OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"])
    var fields = [String](repeating: "", count: header.count)
    func set(_ key: String, _ value: String) { fields[header.firstIndex(of: key)!] = value }
    set("run_id", id)
    set("config_hash", hash)
    set("seed", String(seed))
    set("privacy.target_epsilon", eps)
    set("status", status)
    set("kind", kind)
    set("model", model)
    set("test_accuracy", csvNumber(accuracy))
    set("epsilon", csvNumber(spent))
    set("delta", kind == "private" ? "1e-05" : "")
    if kind == "private" {
        set("neighboring_relation", relation)
        set("privacy_unit", "example")
    }
    for (key, value) in extra { set(key, value) }
    return CSV.line(fields)
}

/// Known numbers: mlp eps 1 {0.80, 0.82, 0.84}: mean 0.82, sd 0.02; mlp eps 3 {0.85, 0.87}: mean
/// 0.86, sd sqrt(0.0002) = 0.014142; cnn eps 1 {0.70} (+ one failed run); cnn eps 3 {0.90, 0.92,
/// 0.94}: mean 0.92, sd 0.02; non-private mlp {0.95, 0.97}: mean 0.96, sd 0.014142.
let knownRunsCSV: String =
    CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
    + runsRow("a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.80, spent: 0.99)
    + runsRow("a-s1", hash: "a", seed: 1, eps: "1", model: "mlp", accuracy: 0.82, spent: 0.97)
    + runsRow("a-s2", hash: "a", seed: 2, eps: "1", model: "mlp", accuracy: 0.84, spent: 0.98)
    + runsRow("b-s0", hash: "b", seed: 0, eps: "3", model: "mlp", accuracy: 0.85, spent: 2.9)
    + runsRow("b-s1", hash: "b", seed: 1, eps: "3", model: "mlp", accuracy: 0.87, spent: 2.9)
    + runsRow("c-s0", hash: "c", seed: 0, eps: "1", model: "cnn", accuracy: 0.70, spent: 1)
    + runsRow("c-s1", hash: "c", seed: 1, eps: "1", model: "cnn", status: "failed", accuracy: nil, spent: nil)
    + runsRow("d-s0", hash: "d", seed: 0, eps: "3", model: "cnn", accuracy: 0.90, spent: 3)
    + runsRow("d-s1", hash: "d", seed: 1, eps: "3", model: "cnn", accuracy: 0.92, spent: 3)
    + runsRow("d-s2", hash: "d", seed: 2, eps: "3", model: "cnn", accuracy: 0.94, spent: 3)
    + runsRow("e-s0", hash: "e", seed: 0, eps: "", model: "mlp", kind: "non-private", accuracy: 0.95, spent: nil)
    + runsRow("e-s1", hash: "e", seed: 1, eps: "", model: "mlp", kind: "non-private", accuracy: 0.97, spent: nil)

@Test func tableAggregatesMeanAndSampleStandardDeviationOverSeeds() throws {
    let table = try ResultsTable.aggregate(runsCSV: knownRunsCSV)
    #expect(table.rowKey == "model" && table.columnKey == "privacy.target_epsilon")
    #expect(table.rowLabels == ["mlp", "cnn", "mlp (non-private)"])
    #expect(table.columnLabels == ["1", "3"])
    #expect(table.excludedRuns == 1)
    let mlp1 = try #require(table.cell(row: "mlp", column: "1"))
    #expect(mlp1.n == 3 && abs(mlp1.mean - 0.82) < 1e-12 && abs(mlp1.standardDeviation! - 0.02) < 1e-12)
    #expect(abs(mlp1.epsilon! - 0.98) < 1e-12)
    let mlp3 = try #require(table.cell(row: "mlp", column: "3"))
    #expect(mlp3.n == 2 && abs(mlp3.standardDeviation! - 0.0002.squareRoot()) < 1e-12)
    let cnn1 = try #require(table.cell(row: "cnn", column: "1"))
    #expect(cnn1.n == 1 && cnn1.standardDeviation == nil)
    // The non-private control has no epsilon column value: it fills every column.
    let control = try #require(table.cell(row: "mlp (non-private)", column: "3"))
    #expect(control.kind == .nonPrivate && abs(control.mean - 0.96) < 1e-12 && control.epsilon == .infinity)
    // Best per column: mlp at eps 1, cnn at eps 3; controls never.
    #expect(table.bestCells(.column).map(\.row).sorted() == ["cnn", "mlp"])
    #expect(table.bestCells(.column).contains(mlp1))
    #expect(table.bestCells(.row).count == 2) // mlp: eps 3; cnn: eps 3
}

@Test func markdownTableShowsMeanStdNEpsilonAndBold() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.markdown)
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines[0] == "| model | target ε = 1 | target ε = 3 |")
    #expect(lines[2] == "| mlp | **82.00 ± 2.00** (n=3, ε=0.98) | 86.00 ± 1.41 (n=2, ε=2.9) |")
    #expect(lines[3] == "| cnn | 70.00 (n=1, ε=1) | **92.00 ± 2.00** (n=3, ε=3) |")
    #expect(lines[4] == "| mlp (non-private) | 96.00 ± 1.41 (n=2, ε=∞) | 96.00 ± 1.41 (n=2, ε=∞) |")
    #expect(text.contains("δ = 1e-05") && text.contains("1 unfinished runs left out"))
}

@Test func latexTableUsesBooktabsAndBold() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.latex)
    #expect(text.contains("\\toprule") && text.contains("\\bottomrule"))
    #expect(text.contains("$\\mathbf{82.00 \\pm 2.00}$"))
    #expect(text.contains("target $\\varepsilon$ = 1"))
    #expect(text.contains("$\\varepsilon{=}\\infty$"))
}

@Test func csvTableRoundTrips() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.csv)
    let (header, rows) = CSV.table(text)
    #expect(
        header == [
            "model", "privacy.target_epsilon", "kind", "metric", "n", "mean", "std", "epsilon", "neighboring_relation",
            "best", "epsilon_lower_empirical",
        ])
    #expect(rows.count == 5)
    #expect(rows.first { $0["model"] == "mlp" && $0["privacy.target_epsilon"] == "1" }?["best"] == "true")
}

@Test func tableRejectsUnknownKeysNamingTheColumns() {
    #expect(throws: OutputError.self) { try ResultsTable.aggregate(runsCSV: knownRunsCSV, rows: "modle") }
    do {
        _ = try ResultsTable.aggregate(runsCSV: knownRunsCSV, metric: "test_acc")
    } catch let error as OutputError {
        #expect(
            error.description.contains("did you mean `test_accuracy`") || error.description.contains("test_accuracy"))
    } catch {
        Issue.record("unexpected \(error)")
    }
}

@Test func accountingTableHasOneColumnPerStepCount() throws {
    let csv =
        CSV.line(accountingColumns)
        + CSV.line(["0.01", "1", "100", "1e-05", "1.5", "1.2", "1.3"])
        + CSV.line(["0.01", "1", "1000", "1e-05", "3.1", "2.7", "2.8"])
    let text = try renderAccountingTable(accountingCSV: csv, format: .markdown)
    #expect(text.contains("| q, σ | steps = 100 | steps = 1000 |"))
    #expect(text.contains("| q = 0.01, σ = 1 | RDP 1.5 / PLD [1.2, 1.3] | RDP 3.1 / PLD [2.7, 2.8] |"))
}

@Test("a table names the relation of its epsilons, and marks every cell when relations differ")
func tableNamesNeighbouringRelations() throws {
    let one = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.markdown)
    #expect(one.contains("ε for add-remove neighbouring datasets, privacy unit: one example"))
    #expect(!one.contains(", add-remove)"))
    let mixed =
        CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
        + runsRow("a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.80, spent: 0.99)
        + runsRow(
            "b-s0", hash: "b", seed: 0, eps: "1", model: "cnn", accuracy: 0.85, spent: 0.98, relation: "replace-one")
    let table = try ResultsTable.aggregate(runsCSV: mixed)
    #expect(table.mixesRelations)
    let text = table.render(.markdown)
    #expect(text.contains("ε=0.99, add-remove)") && text.contains("ε=0.98, replace-one)"))
    #expect(text.contains("are not comparable"))
    #expect(table.render(.latex).contains("replace-one"))
    // A runs.csv written before the relation was recorded says so.
    let old = knownRunsCSV.replacingOccurrences(of: ",add-remove,example,", with: ",,,")
    #expect(try ResultsTable.aggregate(runsCSV: old).render(.markdown).contains("neighbouring relation not recorded"))
}

// MARK: - Honest outputs (issue 10, item 4)

@Test("table and plot on a folder without finished runs say so and exit 1")
func tableAndPlotWithoutFinishedRunsSaySo() throws {
    // Every run failed.
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    executor.failing = Set(try parse(runnerYAML).runs.map(\.runID))
    _ = try runExperiment(dir, executor: executor)
    for attempt in [
        { _ = try tableText(forDirectory: dir, format: .markdown) }, { _ = try ExperimentPlots.svg(forDirectory: dir) },
    ] {
        do {
            try attempt()
            Issue.record("showed something without finished runs")
        } catch let error as OutputError {
            #expect(error.kind == .nothingToShow && ExitStatus(for: error) == .failure)
            #expect(
                error.description.hasPrefix(dir.path) && error.description.contains("no finished runs yet"), "\(error)")
        }
    }
    #expect(throws: OutputError.self) {
        _ = try ResultsTable.aggregate(runsCSV: CSV.line(OutputSchema.runsHeader(varyingKeys: [])))
    }

    // A run has started (manifest, no runs.csv yet): nothing to show. An empty folder is no experiment folder.
    let started = try temporaryDirectory()
    try "{}".write(to: started.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
    let empty = try temporaryDirectory()
    func kind(_ dir: URL) -> OutputError.Kind? {
        do {
            _ = try tableText(forDirectory: dir, format: .markdown)
            return nil
        } catch { return (error as? OutputError)?.kind }
    }
    #expect(kind(started) == .nothingToShow)
    #expect(kind(empty) == .usage)
    #expect(kind(empty.appendingPathComponent("missing")) == .usage)
}

@Test(
    "each metric knows its direction",
    arguments: [
        ("test_accuracy", MetricDirection.higherIsBetter), ("train_accuracy", .higherIsBetter),
        ("test_loss", .lowerIsBetter), ("train_loss", .lowerIsBetter), ("epsilon", .lowerIsBetter),
        ("epsilon_rdp", .lowerIsBetter), ("epsilon_pld_upper", .lowerIsBetter), ("delta", .lowerIsBetter),
        ("wall_seconds", .lowerIsBetter), ("noise_multiplier", MetricDirection.none), ("steps", MetricDirection.none),
        ("clipping_norm", MetricDirection.none),
    ])
func metricDirections(_ metric: String, _ direction: MetricDirection) {
    #expect(MetricDirection(metric: metric) == direction)
}

@Test("table --metric epsilon_rdp marks the smallest epsilon best, and the cell shows that epsilon alone")
func epsilonMetricMarksTheSmallestBest() throws {
    // epsilon_rdp: mlp eps-1 cells 1.1-1.3 (mean 1.2), cnn 1.0; mlp eps-3 3.2, cnn 3.5.
    let csv =
        CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
        + runsRow(
            "a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.8, spent: 0.9, extra: ["epsilon_rdp": "1.1"]
        )
        + runsRow(
            "a-s1", hash: "a", seed: 1, eps: "1", model: "mlp", accuracy: 0.8, spent: 0.9, extra: ["epsilon_rdp": "1.3"]
        )
        + runsRow(
            "c-s0", hash: "c", seed: 0, eps: "1", model: "cnn", accuracy: 0.7, spent: 0.8, extra: ["epsilon_rdp": "1.0"]
        )
        + runsRow(
            "b-s0", hash: "b", seed: 0, eps: "3", model: "mlp", accuracy: 0.9, spent: 2.9, extra: ["epsilon_rdp": "3.2"]
        )
        + runsRow(
            "d-s0", hash: "d", seed: 0, eps: "3", model: "cnn", accuracy: 0.9, spent: 2.8, extra: ["epsilon_rdp": "3.5"]
        )
    let table = try ResultsTable.aggregate(runsCSV: csv, metric: "epsilon_rdp")
    #expect(table.direction == .lowerIsBetter)
    let best = table.bestCells(.column)
    #expect(best.map { "\($0.row)@\($0.column)" }.sorted() == ["cnn@1", "mlp@3"])
    let text = table.render(.markdown)
    #expect(text.contains("| mlp | 1.2000 ± 0.1414 (n=2) | **3.2000** (n=1) |"), "\(text)")
    #expect(text.contains("| cnn | **1.0000** (n=1) | 3.5000 (n=1) |"))
    #expect(
        text.contains("epsilon_rdp: mean") && text.contains("(lower is better)")
            && !text.contains("ε: mean epsilon spent"))
    #expect(!table.render(.latex).contains("varepsilon{="))
    // The CSV names the metric of its cells.
    #expect(CSV.table(table.render(.csv)).rows.allSatisfy { $0["metric"] == "epsilon_rdp" })
}

@Test("a loss marks the lowest best; a setting marks nothing and says why")
func lossesAndSettingsHaveTheirDirection() throws {
    let csv =
        CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
        + runsRow(
            "a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.8, spent: 0.9,
            extra: ["test_loss": "0.5", "noise_multiplier": "1.2"])
        + runsRow(
            "c-s0", hash: "c", seed: 0, eps: "1", model: "cnn", accuracy: 0.7, spent: 0.8,
            extra: ["test_loss": "0.7", "noise_multiplier": "1.1"])
    let loss = try ResultsTable.aggregate(runsCSV: csv, metric: "test_loss")
    #expect(loss.bestCells(.column).map(\.row) == ["mlp"])
    #expect(loss.render(.markdown).contains("| mlp | **0.5000** (n=1, ε=0.9) |"))
    let sigma = try ResultsTable.aggregate(runsCSV: csv, metric: "noise_multiplier")
    #expect(sigma.bestCells(.column).isEmpty)
    #expect(sigma.render(.markdown).contains("no cell marked best: noise_multiplier has no better direction"))
    // Finished runs without the metric are left out and counted as such, not as unfinished.
    let partial = try ResultsTable.aggregate(
        runsCSV: csv + runsRow("e-s0", hash: "e", seed: 0, eps: "1", model: "lr", accuracy: 0.6, spent: 1),
        metric: "test_loss")
    #expect(partial.runsWithoutMetric == 1 && partial.excludedRuns == 0)
    #expect(partial.render(.markdown).contains("1 finished runs without a test loss value left out"))
}
