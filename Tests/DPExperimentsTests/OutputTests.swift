import Foundation
import Testing

@testable import DPExperiments

// MARK: - CSV

@Test(arguments: [
    ["plain", "with,comma", "with \"quote\"", "", "line\nbreak", " padded "],
    ["1", "2.5", "inf", "nan", "-0.001"],
])
func csvRoundTripsFieldsThatNeedQuoting(_ fields: [String]) {
    let text = CSV.line(["a", "b"]) + CSV.line(fields) + CSV.line(fields.reversed())
    let rows = CSV.parse(text)
    #expect(rows == [["a", "b"], fields, Array(fields.reversed())])
}

@Test func csvQuotesOnlyWhenNeeded() {
    #expect(CSV.line(["a", "b,c", "d\"e", ""]) == "a,\"b,c\",\"d\"\"e\",\n")
}

@Test func csvNumbersUseShortestFormAndPandasSpellings() {
    #expect(csvNumber(nil) == "")
    #expect(csvNumber(3) == "3")
    #expect(csvNumber(0.1) == "0.1")
    #expect(csvNumber(1e-5) == "1e-05")
    #expect(csvNumber(.infinity) == "inf")
}

@Test func repairCutsATrailingPartialLine() throws {
    let dir = try temporaryDirectory()
    let url = dir.appendingPathComponent("f.csv")
    try DurableFile.append("a,b\n1,2\n", to: url)
    try "3,".data(using: .utf8)!.append(to: url)
    #expect(try DurableFile.repairTrailingPartialLine(at: url) == 2)
    #expect(try String(contentsOf: url, encoding: .utf8) == "a,b\n1,2\n")
    #expect(try DurableFile.repairTrailingPartialLine(at: url) == 0)
}

extension Data {
    func append(to url: URL) throws {
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(self)
    }
}

// MARK: - Runner

/// The quickstart-like experiment of the tests: 2 epsilons x 2 seeds plus a non-private control.
let runnerYAML =
    baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "")
    .replacingOccurrences(of: "seeds: [0]\n", with: "") + """
        seeds: [0, 1]
        sweep:
          privacy.target_epsilon: [1, 8]
        include:
          - privacy.enabled: false

        """

func runExperiment(
    _ dir: URL, executor: FakeExecutor, resume: Bool = false, yaml: String = runnerYAML
) throws -> (ExperimentReport, [String]) {
    var lines: [String] = []
    let clock = FakeClock()
    let runner = ExperimentRunner(
        config: try parse(yaml, file: "runner.yaml"), outputDirectory: dir, executor: executor, resume: resume,
        environment: RunEnvironment(dpkitVersion: "0.1.0", gitCommit: "abc123", blasCore: "Haswell", blasThreads: "2"),
        clock: clock.read, log: { lines.append($0) })
    let report = try runner.run()
    return (report, lines)
}

func readTable(_ url: URL) throws -> (header: [String], rows: [[String: String]], raw: [[String]]) {
    let text = try String(contentsOf: url, encoding: .utf8)
    let table = CSV.table(text)
    return (table.header, table.rows, CSV.parse(text))
}

@Test func runnerWritesEpochsRunsAndManifest() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let (report, log) = try runExperiment(dir, executor: executor)
    #expect(report.finished.count == 6 && report.failed.isEmpty)

    let epochs = try readTable(dir.appendingPathComponent("epochs.csv"))
    #expect(
        epochs.header == ["run_id", "config_hash", "seed", "privacy.target_epsilon", "privacy.enabled"]
            + OutputSchema.epochColumns)
    #expect(epochs.rows.count == 6 * 3)
    #expect(epochs.raw.allSatisfy { $0.count == epochs.header.count })
    let first = try #require(epochs.rows.first)
    #expect(first["epoch"] == "1" && first["step"] == "10" && first["privacy.target_epsilon"] == "1")
    #expect(first["wall_seconds"] == "1" && first["delta"] == "1e-05")
    let control = try #require(epochs.rows.last)
    #expect(
        control["privacy.enabled"] == "false" && control["epsilon_rdp"] == "" && control["privacy.target_epsilon"] == ""
    )

    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.count == 6)
    #expect(runs.rows.allSatisfy { $0["status"] == "finished" })
    #expect(runs.rows.map { $0["kind"] } == ["private", "private", "private", "private", "non-private", "non-private"])
    #expect(runs.rows.first?["test_accuracy"] == String(FakeExecutor.accuracy(try parse(runnerYAML).runs[0], epoch: 3)))

    let manifestData = try Data(contentsOf: dir.appendingPathComponent("manifest.json"))
    let manifest = try ConfigValue(jsonData: manifestData)
    #expect(manifest["git_commit"] == .string("abc123") && manifest["blas_core"] == .string("Haswell"))
    #expect(manifest["blas_threads"] == .string("2") && manifest["dpkit_version"] == .string("0.1.0"))
    #expect(manifest["seeds"] == .list([.int(0), .int(1)]))
    guard case .list(let manifestRuns)? = manifest["runs"] else {
        Issue.record("no runs")
        return
    }
    #expect(manifestRuns.count == 6)
    #expect(manifestRuns.first?["privacy_ledger"]?["steps"] == .int(30))
    #expect(manifestRuns.allSatisfy { $0["status"] == .string("finished") })

    // Plan and progress lines.
    #expect(log.contains { $0.contains("1/6") && $0.contains("eps_rdp 1") })
    #expect(log.contains { $0.hasPrefix("run 1/6") && $0.contains("epoch 2/3") && $0.contains("ETA") })
}

@Test func runnerRefusesADirectoryWithResultsWithoutResume() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    #expect(throws: OutputError.self) { try runExperiment(dir, executor: FakeExecutor()) }
}

@Test func failedRunIsRecordedAndTheExperimentGoesOn() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let failing = try parse(runnerYAML).runs[1].runID
    executor.failing = [failing]
    let (report, _) = try runExperiment(dir, executor: executor)
    #expect(report.failed == [failing] && report.finished.count == 5)
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    let row = try #require(runs.rows.first { $0["run_id"] == failing })
    #expect(row["status"] == "failed")
    #expect(row["error"] == "fake failure, with a comma and a \"quote\"")
    #expect(runs.raw.allSatisfy { $0.count == runs.header.count })
}

@Test func resumeAfterAKillLosesNothingAndDuplicatesNothing() throws {
    // A complete reference run.
    let reference = try temporaryDirectory()
    _ = try runExperiment(reference, executor: FakeExecutor())
    let referenceEpochs = try String(contentsOf: reference.appendingPathComponent("epochs.csv"), encoding: .utf8)
    let referenceRuns = try String(contentsOf: reference.appendingPathComponent("runs.csv"), encoding: .utf8)

    // Simulate a kill: two runs finished, the third wrote 2 epochs and half of a third line.
    let dir = try temporaryDirectory()
    let epochLines = referenceEpochs.split(separator: "\n", omittingEmptySubsequences: false)
    let runLines = referenceRuns.split(separator: "\n", omittingEmptySubsequences: false)
    let partialEpochs = epochLines[0...(2 * 3 + 2)].joined(separator: "\n") + "\n" + epochLines[9].prefix(20)
    let partialRuns = runLines[0...2].joined(separator: "\n") + "\n" + runLines[3].prefix(15)
    try partialEpochs.write(to: dir.appendingPathComponent("epochs.csv"), atomically: true, encoding: .utf8)
    try partialRuns.write(to: dir.appendingPathComponent("runs.csv"), atomically: true, encoding: .utf8)
    try FileManager.default.copyItem(
        at: reference.appendingPathComponent("manifest.json"), to: dir.appendingPathComponent("manifest.json"))

    let executor = FakeExecutor()
    let (report, _) = try runExperiment(dir, executor: executor, resume: true)
    let runs = try parse(runnerYAML).runs
    #expect(report.skipped == runs.prefix(2).map(\.runID))
    #expect(executor.executed == runs.dropFirst(2).map(\.runID))
    #expect(report.removedEpochRows == 2)

    // Same rows as the uninterrupted run: nothing lost, nothing duplicated.
    let epochs = try String(contentsOf: dir.appendingPathComponent("epochs.csv"), encoding: .utf8)
    let runsText = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    #expect(epochs == referenceEpochs)
    #expect(
        Set(runsText.split(separator: "\n").map { $0.split(separator: ",").dropLast(2) }.map(Array.init))
            == Set(referenceRuns.split(separator: "\n").map { $0.split(separator: ",").dropLast(2) }.map(Array.init)))
    #expect(runsText.split(separator: "\n").count == referenceRuns.split(separator: "\n").count)
    // Ledgers of the runs finished before the kill are kept.
    let manifest = try readManifest(dir)
    guard case .list(let manifestRuns)? = manifest["runs"] else {
        Issue.record("no runs")
        return
    }
    #expect(manifestRuns.allSatisfy { $0["privacy_ledger"] != .null && $0["status"] == .string("finished") })

    // Resuming a complete directory runs nothing.
    let again = FakeExecutor()
    let (secondReport, _) = try runExperiment(dir, executor: again, resume: true)
    #expect(again.executed.isEmpty && secondReport.skipped.count == 6)
}

@Test func resumeRedoesFailedRuns() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let failing = try parse(runnerYAML).runs[2].runID
    executor.failing = [failing]
    executor.failAfterEpochs = 2
    _ = try runExperiment(dir, executor: executor)
    let retry = FakeExecutor()
    let (report, _) = try runExperiment(dir, executor: retry, resume: true)
    #expect(retry.executed == [failing])
    #expect(report.removedEpochRows == 2 && report.removedRunRows == 1)
    let epochs = try readTable(dir.appendingPathComponent("epochs.csv"))
    #expect(epochs.rows.count == 18)
    #expect(epochs.rows.filter { $0["run_id"] == failing }.map { $0["epoch"] } == ["1", "2", "3"])
}

@Test func resumeRefusesFilesWithOtherColumns() throws {
    let dir = try temporaryDirectory()
    try "run_id,something_else\nx,1\n".write(
        to: dir.appendingPathComponent("runs.csv"), atomically: true, encoding: .utf8)
    #expect(throws: OutputError.self) { try runExperiment(dir, executor: FakeExecutor(), resume: true) }
}
