import DPAuditing
import Foundation
import Testing

@testable import DPExperiments

/// A non-private MLP trained for many epochs on 150 examples of a noisy mixture memorises them:
/// its training losses sit below its test losses, so the loss attack and LiRA find the members.
private let overfitYAML = """
    name: overfit
    dataset:
      name: gaussian-mixture
      train_size: 150
      test_size: 300
      options: {separation: 0.5}
    model:
      name: mlp
      options:
        hidden_sizes: [128]
    optimizer:
      name: momentum
      learning_rate: 0.5
      momentum: 0.9
    privacy:
      enabled: false
    training:
      expected_batch_size: 50
      epochs: 60
      eval_every: 60
    seeds: [0]

    """

@Test func membershipAuditFindsTheMembersOfAnOverfitModel() throws {
    let (report, _, folder) = try trainInTemporaryFolder(try parse(overfitYAML))
    let output = try temporaryDirectory()
    defer {
        try? FileManager.default.removeItem(at: folder)
        try? FileManager.default.removeItem(at: output)
    }
    #expect(report.finished.count == 1)
    let before = try FileManager.default.subpathsOfDirectory(atPath: folder.path).sorted()
    var options = MembershipAudit.Options()
    options.attacks = [.loss, .liraOnline, .liraOffline]
    options.shadowModels = 4
    options.examples = 100
    let results = try MembershipAudit(folder: folder, options: options).run()
    #expect(results.count == 3)
    for r in results {
        #expect(r.examples == 100)
        #expect(r.roc.auc > 0.6, "\(r.attack): AUC \(r.roc.auc)")
    }
    let files = try MembershipAudit.write(results, to: output, auditedFolder: folder)
    #expect(files.contains { $0.lastPathComponent == "membership.csv" })
    // The audited folder is read, never written.
    #expect(try FileManager.default.subpathsOfDirectory(atPath: folder.path).sorted() == before)
    #expect(throws: OutputError.self) {
        try MembershipAudit.write(results, to: folder.appendingPathComponent("audit"), auditedFolder: folder)
    }
    // A run without its model cannot be attacked: the error says why.
    try FileManager.default.removeItem(at: folder.appendingPathComponent("models"))
    do {
        _ = try MembershipAudit(folder: folder, options: options).run()
        Issue.record("expected an error for a run without a model")
    } catch let e as OutputError {
        #expect(e.description.contains("saved no model"), "\(e)")
    }
}

/// Multi-run audit after the fact: 40 clip-only runs with a Dirac canary against 40 without
/// separate but for the runs that never sample the canary (0.9^30 = 4% of them), so the bound
/// exceeds 0.5 (half the runs choose the threshold, half are counted). The private run's
/// bound stays below its epsilon; the audited folder is not written.
@Test func multiRunCanaryAuditSeparatesClipOnlyRuns() throws {
    // 300 examples, expected batch 30 (q = 0.1), 3 epochs: 30 steps a run.
    let yaml =
        baseYAML.replacingOccurrences(of: "hidden_sizes: [8]", with: "hidden_sizes: [128]")
        .replacingOccurrences(of: "train_size: 1000", with: "train_size: 300\n  test_size: 100")
        .replacingOccurrences(of: "expected_batch_size: 100", with: "expected_batch_size: 30")
        + "sweep:\n  privacy.noise_multiplier: [0, 3]\n"
    let folder = try trainInTemporaryFolder(try parse(yaml)).folder
    let output = try temporaryDirectory()
    defer {
        try? FileManager.default.removeItem(at: folder)
        try? FileManager.default.removeItem(at: output)
    }
    let before = try FileManager.default.subpathsOfDirectory(atPath: folder.path).sorted()
    let results = try MultiRunCanaryAudit(folder: folder, canary: .diracGradient, trials: 40).run()
    #expect(results.count == 2)
    let (_, rows) = CSV.table(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    for r in results {
        let row = try #require(rows.first { $0["run_id"] == r.runID })
        if r.kind == "clip-only" {
            #expect(r.bound.epsilon > 0.5, "\(r.bound.statement)")
        } else {
            #expect(r.bound.epsilon <= Double(row["epsilon"]!)!, "\(r.bound.statement)")
        }
    }
    _ = try MultiRunCanaryAudit.write(results, to: output, auditedFolder: folder)
    #expect(try FileManager.default.subpathsOfDirectory(atPath: folder.path).sorted() == before)
    #expect(throws: AuditError.self) { try MultiRunCanaryAudit(folder: folder, canary: .mislabelled, trials: 1).run() }
}
