import DPAccounting
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Mid-run resume: a run killed after some epochs continues from its last checkpoint and ends
// exactly as an uninterrupted run (seeded mode): same epoch rows, same summary, same model bytes.

private func tempDir(_ tag: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-\(tag)-\(UUID().uuidString)")
}

/// epochs.csv or runs.csv without the wall-clock column, which differs between processes.
private func rowsWithoutTime(_ url: URL) throws -> [[String: String]] {
    let (_, rows) = CSV.table(try String(contentsOf: url, encoding: .utf8))
    return rows.map { $0.filter { $0.key != "wall_seconds" } }
}

@Test("an interrupted run continues from its checkpoint and equals the uninterrupted run (records, summary, model)")
func interruptedRunContinuesFromItsCheckpoint() throws {
    let config = try ExperimentConfig.parse(yaml: fixture("resume.yaml"), file: "resume.yaml")
    let run = try #require(config.runs.first)
    let dir = tempDir("ckpt")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // Stopped after epoch 2's checkpoint, before epoch 3's.
    let r = try trainInterruptedAndResumed(run, stopAt: 3, in: dir) { checkpoint throws in
        #expect(try RunCheckpoint.epoch(at: checkpoint) == 2)
    }
    func same(_ a: EpochRecord, _ b: EpochRecord) -> Bool {
        var a = a, b = b
        a.wallSeconds = nil
        b.wallSeconds = nil
        return a == b
    }
    #expect(r.afterResume.map(\.epoch) == [3, 4])
    #expect(
        zip(r.beforeStop + r.afterResume, r.full).allSatisfy(same), "resumed records differ from the uninterrupted run")
    var s1 = r.summary, s2 = r.fullSummary
    s1.privacyLedger = nil
    s2.privacyLedger = nil
    #expect(s1 == s2)
    #expect(r.summary.privacyLedger == r.fullSummary.privacyLedger, "the ledger is neither reset nor double counted")
    #expect(r.resumedModel == r.fullModel, "the resumed model differs from the uninterrupted one")
}

private func dpkit(_ arguments: [String], log: URL? = nil, environment extra: [String: String] = [:]) throws -> Process
{
    let p = Process()
    p.executableURL = try #require(
        dpkitExecutable(), "the dpkit executable is not beside the tests: run `swift build --build-tests` first")
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["DPKIT_NO_BLAS_REEXEC"] = "1"
    env.merge(extra) { $1 }
    p.environment = env
    if let log {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
    } else {
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
    }
    try p.run()
    return p
}

@Test("dpkit run killed with SIGKILL mid-run, then --resume, equals an uninterrupted dpkit run")
func sigkilledRunResumesToTheSameResult() throws {
    let root = tempDir("kill")
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    let configURL = root.appendingPathComponent("resume.yaml")
    try fixture("resume.yaml").replacingOccurrences(of: "epochs: 4", with: "epochs: 5").write(
        to: configURL, atomically: true, encoding: .utf8)
    let killed = root.appendingPathComponent("killed"), clean = root.appendingPathComponent("clean")

    // The child halts once epoch 2's checkpoint is on disk and says so in a marker file: the kill
    // comes at that known point, mid-run (of 5 epochs), not after a race with the clock.
    let marker = root.appendingPathComponent("halted")
    let child = try dpkit(
        ["run", configURL.path, "--output", killed.path],
        environment: ["DPKIT_HALT_AFTER_EPOCH": "2", "DPKIT_HALT_MARKER": marker.path])
    while child.isRunning, !FileManager.default.fileExists(atPath: marker.path) { usleep(2_000) }
    #expect(child.isRunning, "the run ended before its epoch-2 checkpoint")
    kill(child.processIdentifier, SIGKILL)
    child.waitUntilExit()
    #expect(child.terminationReason == .uncaughtSignal)
    let finishedBefore = try rowsWithoutTime(killed.appendingPathComponent("runs.csv")).filter {
        $0["status"] == "finished"
    }
    #expect(finishedBefore.isEmpty)

    let resumeLog = root.appendingPathComponent("resume.log")
    let resume = try dpkit(["run", configURL.path, "--output", killed.path, "--resume"], log: resumeLog)
    let reference = try dpkit(["run", configURL.path, "--output", clean.path])
    resume.waitUntilExit()
    reference.waitUntilExit()
    #expect(resume.terminationStatus == 0 && reference.terminationStatus == 0)
    let log = try String(contentsOf: resumeLog, encoding: .utf8)
    #expect(log.contains("continues from its checkpoint after epoch 2"), "the resumed run started over: \(log)")

    #expect(
        try rowsWithoutTime(killed.appendingPathComponent("epochs.csv"))
            == rowsWithoutTime(clean.appendingPathComponent("epochs.csv")))
    #expect(
        try rowsWithoutTime(killed.appendingPathComponent("runs.csv"))
            == rowsWithoutTime(clean.appendingPathComponent("runs.csv")))
    let models = try FileManager.default.contentsOfDirectory(atPath: clean.appendingPathComponent("models").path)
    #expect(models.count == 1)
    for m in models {
        #expect(
            try Data(contentsOf: killed.appendingPathComponent("models/\(m)"))
                == Data(contentsOf: clean.appendingPathComponent("models/\(m)")))
    }
    for m in try FileManager.default.contentsOfDirectory(atPath: clean.appendingPathComponent("metrics").path) {
        #expect(
            try String(contentsOf: killed.appendingPathComponent("metrics/\(m)"), encoding: .utf8)
                == String(contentsOf: clean.appendingPathComponent("metrics/\(m)"), encoding: .utf8),
            "metrics.jsonl of the resumed run differs (lines after the checkpoint must be dropped)")
    }
    #expect(
        try FileManager.default.contentsOfDirectory(atPath: killed.appendingPathComponent("checkpoints").path).isEmpty,
        "a finished run's checkpoint is removed")
}
