import Foundation
import Testing

@testable import DPExperiments

#if canImport(Glibc)
import Glibc
#endif

// Issue 10, item 1: result folders. Each test reproduces one finding.

// MARK: - (b) Two processes on one folder

@Test("a second runner on a locked folder is refused, naming the holder, and writes nothing")
func secondRunnerOnALockedFolderIsRefused() throws {
    let dir = try temporaryDirectory()
    let holder = OutputLock.Holder(
        pid: 4242, host: "lab-7", started: "2025-01-02T03:04:05Z",
        command: "dpkit run runner.yaml --output \(dir.path)")
    let lock = try OutputLock(directory: dir, holder: holder)
    do {
        _ = try runExperiment(dir, executor: FakeExecutor())
        Issue.record("the second runner ran")
    } catch let error as OutputError {
        #expect(error.kind == .locked && ExitStatus(for: error) == .locked)
        for part in ["pid 4242", "host lab-7", "started 2025-01-02T03:04:05Z", "dpkit run runner.yaml --output"] {
            #expect(error.description.contains(part), "\(error.description) lacks \(part)")
        }
    }
    #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs.csv").path))
    lock.release()
    let (report, _) = try runExperiment(dir, executor: FakeExecutor())
    #expect(report.finished.count == 6)
}

@Test(
    "two runners on one folder: the second is refused while the first runs; each run is written once (n = 2 for 2 seeds)"
)
func twoRunnersOnOneFolderDoNotDuplicateRuns() throws {
    let dir = try temporaryDirectory()
    let first = FakeExecutor()
    var secondError: Error?
    first.onExecute = { run in
        guard run.index == 1 else { return }
        do { _ = try runExperiment(dir, executor: FakeExecutor(), resume: true) } catch { secondError = error }
    }
    _ = try runExperiment(dir, executor: first)
    #expect((secondError as? OutputError)?.kind == .locked)
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.count == 6 && Set(runs.rows.map { $0["run_id"] }).count == 6)
    let table = try ResultsTable.aggregate(
        runsCSV: String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    #expect(table.cells.filter { $0.kind == .private }.allSatisfy { $0.n == 2 })
}

@Test("a killed holder leaves no lock that blocks: the kernel releases flock when the process dies")
func aKilledHolderLeavesNoStaleLock() throws {
    let dir = try temporaryDirectory()
    // A stale lock file (holder details of a process long gone) blocks nothing.
    try "pid: 1\nhost: gone\nstarted: 2020-01-01T00:00:00Z\ncommand: dpkit run old.yaml\n"
        .write(to: dir.appendingPathComponent(OutputLock.fileName), atomically: true, encoding: .utf8)
    try OutputLock(directory: dir, holder: .current(command: "test")).release()

    // Another process takes the lock and is killed with SIGKILL. The shell opens the lock file as
    // fd 9, flock(1) locks it (the same flock(2) as OutputLock), and `exec sleep` keeps fd 9 and
    // the pid: one process holds the lock.
    let flockTool = "/usr/bin/flock"
    guard FileManager.default.isExecutableFile(atPath: flockTool) else { return }
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/bin/sh")
    // `echo` runs after flock(1) has exited, so from then on the shell (then `sleep`) alone holds it.
    child.arguments = [
        "-c", "exec 9>>\"$0\"; \(flockTool) -x 9; echo locked; exec sleep 60",
        dir.appendingPathComponent(OutputLock.fileName).path,
    ]
    let output = Pipe()
    child.standardOutput = output
    try child.run()
    defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }
    let marker = output.fileHandleForReading.readData(ofLength: 7)
    #expect(String(decoding: marker, as: UTF8.self) == "locked\n")
    #expect(throws: OutputError.self) { try OutputLock(directory: dir, holder: .current(command: "test")) }
    kill(child.processIdentifier, SIGKILL)
    child.waitUntilExit()
    // Killed: the lock is free at once, and the runner runs.
    let (report, _) = try runExperiment(dir, executor: FakeExecutor())
    #expect(report.finished.count == 6)
}

// MARK: - (a) Resume after editing the config

/// `runnerYAML` with another learning rate: every run is a new run (another resolved config).
let editedRunnerYAML = runnerYAML.replacingOccurrences(of: "learning_rate: 0.1", with: "learning_rate: 0.05")

@Test(
    "--resume after editing the config: old runs stay with their configs and ledgers, new runs beside them, tables never mix them"
)
func resumeAfterEditingTheConfigKeepsHistoryAndSplitsCells() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let edited = FakeExecutor()
    let (report, log) = try runExperiment(dir, executor: edited, resume: true, yaml: editedRunnerYAML)
    #expect(report.finished.count == 6 && edited.executed.count == 6 && report.removedRunRows == 0)
    #expect(log.contains { $0.contains("6 runs recorded earlier are not in this plan") })

    // runs.csv: the 6 old and the 6 new runs, each once.
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.count == 12 && Set(runs.rows.map { $0["run_id"] }).count == 12)

    // The manifest keeps both configs and every ledger.
    let manifest = try readManifest(dir)
    guard case .list(let entries)? = manifest["runs"], case .list(let history)? = manifest["config_history"] else {
        Issue.record("no runs or config_history")
        return
    }
    #expect(entries.count == 12 && history.count == 2)
    let old = entries.filter { $0["in_current_plan"] == .bool(false) }
    #expect(old.count == 6)
    #expect(old.allSatisfy { $0["config"]?.value(atPath: "optimizer.learning_rate") == .double(0.1) })
    #expect(
        old.allSatisfy {
            $0["privacy_ledger"] != nil && $0["privacy_ledger"] != .null && $0["status"] == .string("finished")
        })
    #expect(Set(old.compactMap { $0["experiment_hash"] }) == [history[0]["experiment_hash"]!])
    #expect(history[0]["config"]?.value(atPath: "optimizer.learning_rate") == .double(0.1))
    #expect(history[1]["config"]?.value(atPath: "optimizer.learning_rate") == .double(0.05))

    // The table splits the cells the two configs share, naming the key that differs.
    let (text, warnings) = try tableText(forDirectory: dir, format: .markdown)
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("optimizer.learning_rate differs: 0.1 vs 0.05") == true)
    #expect(
        text.contains("| mlp [optimizer.learning_rate = 0.1] |")
            && text.contains("| mlp [optimizer.learning_rate = 0.05] |"))
    #expect(!text.contains("n=4"))

    // A third invocation (the edited config again) keeps the history as it is.
    _ = try runExperiment(dir, executor: FakeExecutor(), resume: true, yaml: editedRunnerYAML)
    let again = try readManifest(dir)
    #expect(again["config_history"]?.listValue?.count == 2 && again["runs"]?.listValue?.count == 12)
}

@Test("resume keeps a failed run of an earlier config as recorded and redoes only this plan's runs")
func resumeRedoesOnlyThisPlansUnfinishedRuns() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let failing = try parse(runnerYAML).runs[0].runID
    executor.failing = [failing]
    _ = try runExperiment(dir, executor: executor)
    let edited = FakeExecutor()
    let (report, _) = try runExperiment(dir, executor: edited, resume: true, yaml: editedRunnerYAML)
    #expect(report.removedRunRows == 0 && !edited.executed.contains(failing))
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.first { $0["run_id"] == failing }?["status"] == "failed")
}

// MARK: - Duplicate run ids

@Test("a run id is never appended twice to runs.csv, even when another writer slipped one in")
func aRunIDIsNeverAppendedTwice() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let target = try parse(runnerYAML).runs[2]
    executor.onExecute = { run in
        guard run.runID == target.runID else { return }
        // Another writer (one that ignores the lock) appends a row of the same run.
        let header = OutputSchema.runsHeader(varyingKeys: try parse(runnerYAML).varyingKeys)
        var fields = [String](repeating: "", count: header.count)
        fields[0] = run.runID
        fields[header.firstIndex(of: "status")!] = "finished"
        try DurableFile.append(CSV.line(fields), to: dir.appendingPathComponent("runs.csv"))
    }
    #expect(throws: OutputError.self) { try runExperiment(dir, executor: executor) }
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.filter { $0["run_id"] == target.runID }.count == 1)
}

@Test("a runs.csv written twice by two processes (before the lock) counts each run once, with a warning")
func tableCountsARepeatedRunIDOnce() throws {
    let repeated =
        knownRunsCSV + runsRow("a-s0", hash: "a", seed: 0, eps: "1", model: "mlp", accuracy: 0.80, spent: 0.99)
        + runsRow("a-s1", hash: "a", seed: 1, eps: "1", model: "mlp", accuracy: 0.82, spent: 0.97)
    let table = try ResultsTable.aggregate(runsCSV: repeated)
    #expect(table.cell(row: "mlp", column: "1")?.n == 3)
    #expect(table.warnings.contains { $0.contains("a-s0 (2 times)") && $0.contains("counted once") })
}

// MARK: - (c) Tables never average different configs

/// Two noise multipliers x 2 seeds: `--rows seed --columns model` would put both sigmas in one cell.
let sigmaSweepYAML = baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "")
    .replacingOccurrences(of: "seeds: [0]\n", with: "seeds: [0, 1]\nsweep:\n  privacy.noise_multiplier: [1.1, 2.0]\n")

@Test("table --rows seed --columns model over two noise multipliers: cells are split by sigma and the warning names it")
func tableSplitsCellsThatWouldMixConfigs() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor(), yaml: sigmaSweepYAML)
    let (text, warnings) = try tableText(forDirectory: dir, format: .markdown, rows: "seed", columns: "model")
    #expect(warnings.count == 1)
    #expect(warnings[0].contains("privacy.noise_multiplier differs: 1.1 vs 2"), "\(warnings)")
    #expect(warnings[0].contains("rows `seed` x columns `model`"))
    // Rows show display names (σ for privacy.noise_multiplier); the warning names the key path.
    for label in ["0 [σ = 1.1]", "0 [σ = 2]", "1 [σ = 1.1]", "1 [σ = 2]"] {
        #expect(text.contains("| \(label) |"), "no row \(label) in\n\(text)")
    }
    #expect(text.contains("rows split by σ"))

    // Without the manifest, the runs.csv columns still name the key.
    let runsCSV = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    let bare = try ResultsTable.aggregate(runsCSV: runsCSV, rows: "seed", columns: "model")
    #expect(bare.splitKeys == ["privacy.noise_multiplier"])
    #expect(bare.cells.allSatisfy { $0.n == 1 })

    // Rows and columns that separate the configs need no split and give no warning.
    let (_, none) = try tableText(
        forDirectory: dir, format: .markdown, rows: "model", columns: "privacy.noise_multiplier")
    #expect(none.isEmpty)
}

@Test("--seed 0, then --seed 1 --resume: one config in the history, every run in the manifest, n = 2 per cell")
func seedSubsetsAddUpInOneFolder() throws {
    let dir = try temporaryDirectory()
    for (seed, resume) in [(0, false), (1, true)] {
        var config = try parse(runnerYAML, file: "runner.yaml")
        config.runs = config.runs.filter { $0.seed == seed }
        for i in config.runs.indices { config.runs[i].index = i }
        config.seeds = [seed]
        _ = try ExperimentRunner(
            config: config, outputDirectory: dir, executor: FakeExecutor(), resume: resume, log: { _ in }
        ).run()
    }
    let manifest = try readManifest(dir)
    #expect(manifest["config_history"]?.listValue?.count == 1)
    #expect(manifest["runs"]?.listValue?.count == 6)
    #expect(
        manifest["runs"]?.listValue?.allSatisfy { $0["status"] == .string("finished") && $0["privacy_ledger"] != .null }
            == true)
    let (_, warnings) = try tableText(forDirectory: dir, format: .markdown)
    #expect(warnings.isEmpty)
    let table = try ResultsTable.aggregate(
        runsCSV: String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    #expect(table.cells.allSatisfy { $0.n == 2 })
}
