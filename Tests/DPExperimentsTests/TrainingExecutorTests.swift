import DPAccounting
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// The real executor end to end on a tiny generated task: calibration, the budget, the ledger
// in the manifest, and the accountants' figures in the CSVs.

@Test func realExecutorTrainsCalibratesAndAccounts() throws {
    let config = try ExperimentConfig.parse(yaml: fixture("tiny.yaml"), file: "tiny.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-exec-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let report = try ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(), log: { _ in })
        .run()
    #expect(report.finished.count == 2 && report.failed.isEmpty, "\(report)")

    let runs = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    let lines = runs.split(separator: "\n").map {
        $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }
    let header = lines[0]
    let col = { (name: String) in header.firstIndex(of: name)! }
    let privateRow = try #require(lines.dropFirst().first { !$0[col("epsilon_rdp")].isEmpty })
    let rdp = try #require(Double(privateRow[col("epsilon_rdp")]))
    let lower = try #require(Double(privateRow[col("epsilon_pld_lower")]))
    let upper = try #require(Double(privateRow[col("epsilon_pld_upper")]))
    // Calibrated with RDP to epsilon 2 over 3 epochs of 6 steps: never above, within 1%.
    #expect(rdp <= 2 && rdp >= 1.98)
    #expect(lower <= upper && upper <= rdp)
    // The same figure again from the ledger in the manifest, re-accounted.
    let manifest =
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json")))
        as! [String: Any]
    let text = String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self)
    #expect(text.contains("poissonSampled"))
    let accuracy = try #require(Double(privateRow[col("test_accuracy")]))
    #expect(accuracy > 0.5, "three well-separated classes are learnable at epsilon 2")
}

@Test func accountingExecutorMatchesTheAccountants() throws {
    let point = AccountingPoint(samplingProbability: 0.01, noiseMultiplier: 2, steps: 1000, targetDelta: 1e-5)
    let r = try AccountantExecutor().epsilons(point, accountants: [.rdp, .pld])
    var rdp = RDPAccountant()
    try rdp.compose(.poissonSampled(probability: 0.01, event: .gaussian(noiseMultiplier: 2)), count: 1000)
    #expect(abs(try #require(r.epsilonRDP) - (try rdp.epsilon(delta: 1e-5).epsilon)) < 1e-12)
    #expect(try #require(r.epsilonPLDLower) <= (try #require(r.epsilonPLDUpper)))
    #expect(try #require(r.epsilonPLDUpper) <= (try #require(r.epsilonRDP)))
}

@Test(
    "private-standardize: its Gaussian event comes first in the ledger, calibration pays for it, runs.csv and the manifest name relation, unit and randomness"
)
func privateStatisticsAreAccountedInTheRun() throws {
    let yaml = try fixture("tiny.yaml").replacingOccurrences(
        of: "  name: gaussian-mixture\n",
        with:
            "  name: gaussian-mixture\n  normalize: private-standardize\n  normalize_options: {noise_multiplier: 3, lower: -6, upper: 6}\n"
    )
    .replacingOccurrences(of: "include:\n  - privacy.enabled: false", with: "")
    let config = try ExperimentConfig.parse(yaml: yaml, file: "tiny.yaml")
    let (report, lines, dir) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(report.finished.count == 1)
    let manifest = try readManifest(dir)
    guard case .list(let runs)? = manifest["runs"], let run = runs.first else {
        Issue.record("no runs")
        return
    }
    let ledger = try JSONDecoder().decode(
        PrivacyLedger.self, from: try #require(run["privacy_ledger"]).jsonText().data(using: .utf8)!)
    #expect(ledger.entries.first?.event == .gaussian(noiseMultiplier: 3) && ledger.entries.first?.count == 1)
    #expect(ledger.entries.count == 2, "statistics, then the steps")
    // Calibrated to epsilon 2 with the statistics included: the whole ledger is within budget.
    let eps = try PrivacyBudget.epsilon(ledger: ledger, delta: 1e-4)
    #expect(eps <= 2 && eps >= 1.98)
    #expect(run["privacy"]?["neighboring_relation"] == .string("add-remove"))
    #expect(run["privacy"]?["privacy_unit"] == .string("example"))
    #expect(run["privacy"]?["randomness"] == .string("seeded"))
    #expect(
        run["privacy"]?["randomness_statement"]?.stringValue?.contains("publishing the manifest publishes the noise")
            == true)
    #expect(lines.contains { $0.contains("(add-remove, per example, seeded)") })
    #expect(
        lines.contains { $0.contains("input statistics (private-standardize) cost gaussian(noiseMultiplier: 3.0)") },
        "\(lines)")
    let csv = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    let (_, rows) = CSV.table(csv)
    #expect(
        rows.first?["neighboring_relation"] == "add-remove" && rows.first?["privacy_unit"] == "example"
            && rows.first?["randomness"] == "seeded")
}

@Test("every finished run writes its model; dpkit evaluate's path rebuilds it and gets the run's test accuracy")
func exportedModelEvaluatesToTheRunsAccuracy() throws {
    let config = try ExperimentConfig.parse(yaml: fixture("tiny.yaml"), file: "tiny.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-model-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    _ = try ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(), log: { _ in }).run()
    let (_, rows) = CSV.table(try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    #expect(rows.count == 2)
    for row in rows {
        let id = try #require(row["run_id"])
        let result = try ModelEvaluation.evaluate(file: dir.appendingPathComponent("models/\(id).safetensors"))
        #expect(result.accuracy == Double(row["test_accuracy"] ?? ""), "run \(id)")
        #expect(result.examples == 100 && result.dataset == "gaussian-mixture")
    }
}

@Test("metrics.jsonl: one JSON line per step; its last epsilon is the run's RDP epsilon")
func metricsLogHasEveryStep() throws {
    let config = try ExperimentConfig.parse(yaml: fixture("tiny.yaml"), file: "tiny.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-metrics-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let runner = ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(), log: { _ in })
    var statusLines: [String] = []
    runner.status = { statusLines.append($0) }
    runner.statusInterval = 0
    _ = try runner.run()
    let (_, rows) = CSV.table(try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    for row in rows {
        let id = try #require(row["run_id"])
        let text = try String(contentsOf: dir.appendingPathComponent("metrics/\(id).jsonl"), encoding: .utf8)
        let lines = text.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(lines.count == Int(row["steps"] ?? ""), "one line per step")
        #expect(lines.map { $0["step"] as! Int } == Array(1...lines.count))
        if let eps = Double(row["epsilon_rdp"] ?? "") {
            let last = try #require(lines.last?["epsilon_rdp"] as? Double)
            #expect(abs(last - eps) <= 1e-9 * eps)
        } else {
            #expect(lines.last?["epsilon_rdp"] is NSNull, "non-private runs report no epsilon")
        }
    }
    #expect(statusLines.contains { $0.contains("samples/s") && $0.contains("step ") })
}

@Test("secure mode: the manifest and runs.csv say so, and metrics.jsonl records nothing about the sampling")
func secureRunRecordsNoSampling() throws {
    let yaml = try fixture("tiny.yaml").replacingOccurrences(
        of: "  accountant: both\n", with: "  accountant: both\n  secure_rng: true\n"
    )
    .replacingOccurrences(of: "include:\n  - privacy.enabled: false", with: "")
    let config = try ExperimentConfig.parse(yaml: yaml, file: "tiny.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-secure-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    _ = try ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(), log: { _ in }).run()
    let (_, rows) = CSV.table(try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    let row = try #require(rows.first)
    #expect(row["randomness"] == "secure")
    let metrics = try String(contentsOf: dir.appendingPathComponent("metrics/\(row["run_id"]!).jsonl"), encoding: .utf8)
    #expect(!metrics.isEmpty && metrics.split(separator: "\n").allSatisfy { $0.contains("\"batch_size\":null") })
    let manifest = try String(contentsOf: dir.appendingPathComponent("manifest.json"), encoding: .utf8)
    #expect(manifest.contains("recorded nowhere"))
}
