import DPAccounting
import DPTraining
import Foundation
import Testing
@testable import DPExperiments

// The real executor end to end on a tiny generated task: calibration, the budget, the ledger
// in the manifest, and the accountants' figures in the CSVs.

private let tinyYAML = """
name: tiny
dataset:
  name: gaussian-mixture
  train_size: 300
  test_size: 100
  options: {dimensions: 5, classes: 3, separation: 3.0}
model:
  name: mlp
  options: {hidden_sizes: [8], activation: tanh}
optimizer:
  name: momentum
  learning_rate: 0.5
privacy:
  target_epsilon: 2
  delta: 1.0e-4
  clipping_norm: 1.0
  accountant: both
training:
  expected_batch_size: 50
  epochs: 3
seeds: [1]
include:
  - privacy.enabled: false
"""

@Test func realExecutorTrainsCalibratesAndAccounts() throws {
    let config = try ExperimentConfig.parse(yaml: tinyYAML, file: "tiny.yaml")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-exec-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let report = try ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(), log: { _ in }).run()
    #expect(report.finished.count == 2 && report.failed.isEmpty)

    let runs = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    let lines = runs.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
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
    let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as! [String: Any]
    let text = String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self)
    #expect(text.contains("poissonSampled"))
    let accuracy = try #require(Double(privateRow[col("test_accuracy")]))
    #expect(accuracy > 0.5, "three well-separated classes are learnable at epsilon 2")
}

@Test func accountingExecutorMatchesTheAccountants() throws {
    let point = AccountingPoint(samplingProbability: 0.01, noiseMultiplier: 2, steps: 1000, targetDelta: 1e-5)
    let r = try AccountantExecutor().epsilons(point, accountant: "both")
    var rdp = RDPAccountant()
    try rdp.compose(.poissonSampled(probability: 0.01, event: .gaussian(noiseMultiplier: 2)), count: 1000)
    #expect(abs(try #require(r.epsilonRDP) - (try rdp.epsilon(delta: 1e-5).epsilon)) < 1e-12)
    #expect(try #require(r.epsilonPLDLower) <= (try #require(r.epsilonPLDUpper)))
    #expect(try #require(r.epsilonPLDUpper) <= (try #require(r.epsilonRDP)))
}
