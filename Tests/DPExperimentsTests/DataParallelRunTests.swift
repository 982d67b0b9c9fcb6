import DPTraining
import Foundation
import Testing

@testable import DPExperiments

/// Two private runs; the first one's learning rate makes the loss non-finite at its second step.
private let divergingYAML =
    (try? fixture("tiny.yaml"))!
    .replacingOccurrences(of: "include:\n  - privacy.enabled: false\n", with: "")
    .replacingOccurrences(of: "epochs: 3", with: "epochs: 1")
        + """
        sweep:
          optimizer.learning_rate: [1.0e38, 0.5]

        """

/// `dpkit run` on `ranks` thread ranks: rank 0's report and each follower's trained runs.
private func trainOnRanks(
    _ config: ExperimentConfig, ranks: Int, folder: URL
) throws -> (
    report: ExperimentReport, followed: [[String]]
) {
    let group = ThreadGroup(size: ranks)
    let outcomes = try ThreadGroup.run(ranks) { r -> (ExperimentReport?, [String]) in
        let communicator = group.rank(r)
        var executor = TrainingExecutor()
        executor.communicator = communicator
        guard r == 0 else {
            let trained = DataParallelRun.follow(
                config: config, outputDirectory: folder, executor: executor, decryptionKey: nil,
                communicator: communicator)
            return (nil, trained)
        }
        let leader = DataParallelRun.Leader(base: executor, communicator: communicator)
        let report = try ExperimentRunner(config: config, outputDirectory: folder, executor: leader, log: { _ in })
            .run()
        try leader.finish()
        return (report, [])
    }
    return (outcomes[0].0!, outcomes.dropFirst().map(\.1))
}

/// A run whose loss turns non-finite fails on every rank alike: rank 0 records it as failed,
/// as one process does, and every rank goes on to the next run (no MPI_Abort).
@Test func aDivergingRunFailsOnEveryRankAndTheNextRunStillTrains() throws {
    let config = try ExperimentConfig.parse(yaml: divergingYAML, file: "diverging.yaml")
    #expect(config.runs.count == 2)
    let one = try trainInTemporaryFolder(config, name: "diverging-one").report
    #expect(one.failed.count == 1 && one.finished.count == 1, "\(one)")
    let folder = try temporaryDirectory("diverging-ranks")
    let (report, followed) = try trainOnRanks(config, ranks: 2, folder: folder)
    #expect(report.failed == one.failed && report.finished == one.finished)
    #expect(followed == [one.finished])
    let rows = CSV.parse(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8)).filter {
        $0 != [""]
    }
    let status = rows[0].firstIndex(of: "status")!, error = rows[0].firstIndex(of: "error")!
    let failedRow = rows.first { $0[status] == "failed" }
    #expect(failedRow.map { $0[error].contains("training loss is inf") } == true, "\(rows)")
}
