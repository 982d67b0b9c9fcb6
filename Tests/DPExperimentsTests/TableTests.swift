import Foundation
import Testing
@testable import DPExperiments

/// A runs.csv row with the given figures; other columns empty.
func runsRow(_ id: String, hash: String, seed: Int, eps: String, model: String, kind: String = "private",
             status: String = "finished", accuracy: Double?, spent: Double?, relation: String = "add-remove",
             extra: [String: String] = [:]) -> String {
    let header = OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"])
    var fields = [String](repeating: "", count: header.count)
    func set(_ key: String, _ value: String) { fields[header.firstIndex(of: key)!] = value }
    set("run_id", id); set("config_hash", hash); set("seed", String(seed)); set("privacy.target_epsilon", eps)
    set("status", status); set("kind", kind); set("model", model); set("test_accuracy", csvNumber(accuracy))
    set("epsilon", csvNumber(spent)); set("delta", kind == "private" ? "1e-05" : "")
    if kind == "private" { set("neighboring_relation", relation); set("privacy_unit", "example") }
    for (key, value) in extra { set(key, value) }
    return CSV.line(fields)
}

/// Known numbers: mlp eps 1 {0.80, 0.82, 0.84}: mean 0.82, sd 0.02; mlp eps 3 {0.85, 0.87}: mean
/// 0.86, sd sqrt(0.0002) = 0.014142; cnn eps 1 {0.70} (+ one failed run); cnn eps 3 {0.90, 0.92,
/// 0.94}: mean 0.92, sd 0.02; non-private mlp {0.95, 0.97}: mean 0.96, sd 0.014142.
let knownRunsCSV: String = CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
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
    #expect(table.bestCells(.row).count == 2)  // mlp: eps 3; cnn: eps 3
}

@Test func markdownTableShowsMeanStdNEpsilonAndBold() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.markdown)
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines[0] == "| model | privacy.target_epsilon = 1 | privacy.target_epsilon = 3 |")
    #expect(lines[2] == "| mlp | **82.00 ± 2.00** (n=3, ε=0.98) | 86.00 ± 1.41 (n=2, ε=2.9) |")
    #expect(lines[3] == "| cnn | 70.00 (n=1, ε=1) | **92.00 ± 2.00** (n=3, ε=3) |")
    #expect(lines[4] == "| mlp (non-private) | 96.00 ± 1.41 (n=2, ε=∞) | 96.00 ± 1.41 (n=2, ε=∞) |")
    #expect(text.contains("δ = 1e-05") && text.contains("1 unfinished runs left out"))
}

@Test func latexTableUsesBooktabsAndBold() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.latex)
    #expect(text.contains("\\toprule") && text.contains("\\bottomrule"))
    #expect(text.contains("$\\mathbf{82.00 \\pm 2.00}$"))
    #expect(text.contains("privacy.target\\_epsilon = 1"))
    #expect(text.contains("$\\varepsilon{=}\\infty$"))
}

@Test func csvTableRoundTrips() throws {
    let text = try ResultsTable.aggregate(runsCSV: knownRunsCSV).render(.csv)
    let (header, rows) = CSV.table(text)
    #expect(header == ["model", "privacy.target_epsilon", "kind", "metric", "n", "mean", "std", "epsilon", "neighboring_relation", "best"])
    #expect(rows.count == 5)
    #expect(rows.first { $0["model"] == "mlp" && $0["privacy.target_epsilon"] == "1" }?["best"] == "true")
}

@Test func tableRejectsUnknownKeysNamingTheColumns() {
    #expect(throws: OutputError.self) { try ResultsTable.aggregate(runsCSV: knownRunsCSV, rows: "modle") }
    do {
        _ = try ResultsTable.aggregate(runsCSV: knownRunsCSV, metric: "test_acc")
    } catch let error as OutputError {
        #expect(error.description.contains("did you mean `test_accuracy`") || error.description.contains("test_accuracy"))
    } catch {
        Issue.record("unexpected \(error)")
    }
}

@Test func accountingTableHasOneColumnPerStepCount() throws {
    let csv = CSV.line(accountingColumns)
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
    let mixed = CSV.line(OutputSchema.runsHeader(varyingKeys: ["privacy.target_epsilon"]))
        + runsRow("a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.80, spent: 0.99)
        + runsRow("b-s0", hash: "b", seed: 0, eps: "1", model: "cnn", accuracy: 0.85, spent: 0.98, relation: "replace-one")
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
