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
    let folder = try temporaryDirectory()
    let output = try temporaryDirectory()
    defer {
        try? FileManager.default.removeItem(at: folder)
        try? FileManager.default.removeItem(at: output)
    }
    let report = try ExperimentRunner(
        config: try parse(overfitYAML), outputDirectory: folder, executor: TrainingExecutor(), log: { _ in }
    ).run()
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
