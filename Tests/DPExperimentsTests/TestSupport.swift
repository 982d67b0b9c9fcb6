import Foundation
import Testing

@testable import DPExperiments

/// The repository root (for the shipped configs).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A minimal valid private config; tests edit it with `replacing`.
let baseYAML = """
    name: test
    dataset:
      name: gaussian-mixture
      train_size: 1000
    model:
      name: mlp
      options:
        hidden_sizes: [8]
    optimizer:
      name: sgd
      learning_rate: 0.1
    privacy:
      noise_multiplier: 1.0
      delta: 1.0e-5
      clipping_norm: 1.0
    training:
      expected_batch_size: 100
      epochs: 3
    seeds: [0]

    """

/// The text of `Fixtures/<name>` beside the tests: configs and tables of cases, kept as the
/// YAML they are.
func fixture(_ name: String) throws -> String {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    return try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
}

/// The `manifest.json` of the results folder `directory`.
func readManifest(_ directory: URL) throws -> ConfigValue {
    try ConfigValue(jsonData: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
}

/// One kind of bad input: an edit of `baseYAML` (`replace` becomes `with`), the key path the
/// error must name, and words its message must contain. The cases are tables in `Fixtures/`.
struct BadConfigCase: CustomStringConvertible, Sendable {
    var name: String
    var replace: String
    var with: String
    var path: String
    var fragments: [String]
    var description: String { name }

    /// The cases of the fixture `file`, a list of maps with these keys.
    static func table(_ file: String) throws -> [BadConfigCase] {
        let (value, _) = try ConfigValue.parseYAML(try fixture(file), file: file)
        return try (value.listValue ?? []).map { item in
            func string(_ key: String) throws -> String {
                guard let s = item[key]?.stringValue else { throw FixtureError(file: file, key: key) }
                return s
            }
            return BadConfigCase(
                name: try string("name"), replace: try string("replace"), with: try string("with"),
                path: try string("path"),
                fragments: try (item["fragments"]?.listValue ?? []).map {
                    guard let s = $0.stringValue else { throw FixtureError(file: file, key: "fragments") }
                    return s
                })
        }
    }

    /// Applies the edit and checks the error: the file, the key path and every fragment.
    func check() throws {
        let yaml = baseYAML.replacingOccurrences(of: replace, with: with)
        #expect(yaml != baseYAML, "the edit must apply")
        let error = try #require(configError(yaml, file: "bad.yaml"))
        #expect(error.file == "bad.yaml")
        #expect(error.path == path, "\(error)")
        for fragment in fragments {
            #expect(error.description.contains(fragment), "\(error) lacks \(fragment)")
        }
        #expect(error.description.hasPrefix("bad.yaml"))
    }
}

/// A fixture entry without a string at `key`.
struct FixtureError: Error {
    var file: String
    var key: String
}

/// Parses `yaml` as `file`; the caller expects success.
func parse(_ yaml: String, file: String = "test.yaml") throws -> ExperimentConfig {
    try ExperimentConfig.parse(yaml: yaml, file: file)
}

/// The ConfigError thrown by parsing `yaml`, or nil.
func configError(_ yaml: String, file: String = "test.yaml") -> ConfigError? {
    do {
        _ = try ExperimentConfig.parse(yaml: yaml, file: file)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        return ConfigError(file: "?", path: "?", message: "unexpected error \(error)")
    }
}

/// A fresh empty directory under the system temporary directory.
func temporaryDirectory(_ name: String = #function) throws -> URL {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "dpexperiments-\(safe)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// An executor that produces deterministic numbers from the run's seed and config, with no clock.
final class FakeExecutor: RunExecutor {
    var executed: [String] = []
    /// Run ids that throw after `failAfterEpochs` epochs.
    var failing: Set<String> = []
    var failAfterEpochs = 1
    /// Called as each run starts (tests use it to act while a runner holds the folder).
    var onExecute: ((ResolvedRun) throws -> Void)?
    /// Warnings every plan carries, and run ids whose plan throws.
    var planWarnings: [String] = []
    var unplannable: Set<String> = []

    func plan(_ run: ResolvedRun) throws -> RunPlan {
        if unplannable.contains(run.runID) { throw FakeFailure() }
        let epochs = run.config.training.epochs ?? 1
        let p = run.config.privacy
        return RunPlan(
            noiseMultiplier: p.enabled ? (p.noiseMultiplier ?? 10 / (p.targetEpsilon ?? 1)) : nil,
            samplingProbability: p.enabled ? 0.1 : nil, steps: epochs * 10, stepsPerEpoch: 10,
            epsilonRDP: p.enabled ? (p.targetEpsilon ?? 2) : nil, warnings: p.enabled ? planWarnings : [])
    }

    /// test accuracy of a run: depends on target epsilon and seed.
    static func accuracy(_ run: ResolvedRun, epoch: Int) -> Double {
        let eps = run.config.privacy.enabled ? (run.config.privacy.targetEpsilon ?? 2) : 100
        return min(0.99, 0.5 + 0.04 * log2(1 + eps) + 0.01 * Double(run.seed) + 0.001 * Double(epoch))
    }

    func execute(_ run: ResolvedRun, progress: (EpochRecord) throws -> Void) throws -> RunSummary {
        executed.append(run.runID)
        try onExecute?(run)
        let epochs = run.config.training.epochs ?? 1
        let p = run.config.privacy
        for epoch in 1...epochs {
            if failing.contains(run.runID) && epoch > failAfterEpochs { throw FakeFailure() }
            let eps = p.enabled ? (p.targetEpsilon ?? 2) * Double(epoch) / Double(epochs) : nil
            try progress(
                EpochRecord(
                    epoch: epoch, step: epoch * 10, trainLoss: 1.0 / Double(epoch),
                    trainAccuracy: Self.accuracy(run, epoch: epoch),
                    testLoss: 1.1 / Double(epoch), testAccuracy: Self.accuracy(run, epoch: epoch), epsilonRDP: eps,
                    delta: p.targetDelta, noiseMultiplier: p.noiseMultiplier,
                    samplingProbability: p.enabled ? 0.1 : nil,
                    clippingNorm: p.clippingNorm, clippedFraction: p.enabled ? 0.5 : nil, wallSeconds: Double(epoch)))
        }
        return RunSummary(
            epochs: epochs, steps: epochs * 10, trainLoss: 1.0 / Double(epochs),
            trainAccuracy: Self.accuracy(run, epoch: epochs),
            testLoss: 1.1 / Double(epochs), testAccuracy: Self.accuracy(run, epoch: epochs),
            epsilonRDP: p.enabled ? (p.targetEpsilon ?? 2) : nil, delta: p.targetDelta,
            noiseMultiplier: p.noiseMultiplier, samplingProbability: p.enabled ? 0.1 : nil,
            clippingNorm: p.clippingNorm,
            privacyLedger: .map([("events", .list([.string("gaussian")])), ("steps", .int(epochs * 10))]))
    }
}

/// A deterministic clock advancing one second per reading.
final class FakeClock {
    var now = 0.0
    func read() -> Double {
        now += 1
        return now
    }
}

struct FakeFailure: Error, CustomStringConvertible {
    var description: String { "fake failure, with a comma and a \"quote\"" }
}

/// Trains `config` with the real trainer into a fresh temporary folder, collecting the log
/// lines; the caller removes `folder`.
func trainInTemporaryFolder(
    _ config: ExperimentConfig, name: String = #function
) throws -> (
    report: ExperimentReport, lines: [String], folder: URL
) {
    let folder = try temporaryDirectory(name)
    var lines: [String] = []
    let report = try ExperimentRunner(
        config: config, outputDirectory: folder, executor: TrainingExecutor(), log: { lines.append($0) }
    ).run()
    return (report, lines, folder)
}

/// One run trained twice: once uninterrupted, and once with a checkpoint, stopped when the
/// record of epoch `stopAt` arrives, `afterStop` given the checkpoint, and resumed from it. Resume
/// tests compare the two.
struct InterruptedRun {
    var full: [EpochRecord] = []
    var fullSummary: RunSummary
    /// The records before the stop, and those of the resumed execution.
    var beforeStop: [EpochRecord] = []
    var afterResume: [EpochRecord] = []
    var summary: RunSummary
    var fullModel: Data
    var resumedModel: Data
    var checkpoint: URL
}

func trainInterruptedAndResumed(
    _ run: ResolvedRun, stopAt epoch: Int, in dir: URL, afterStop: (URL) throws -> Void = { _ in }
) throws -> InterruptedRun {
    struct Killed: Error {}
    let executor = TrainingExecutor()
    var full: [EpochRecord] = []
    let fullContext = RunContext(model: dir.appendingPathComponent("full.safetensors"))
    let fullSummary = try executor.execute(run, context: fullContext) { full.append($0) }
    let context = RunContext(
        checkpoint: dir.appendingPathComponent("run.json"), model: dir.appendingPathComponent("resumed.safetensors"))
    var beforeStop: [EpochRecord] = []
    do {
        _ = try executor.execute(run, context: context) { r in
            if r.epoch == epoch { throw Killed() }
            beforeStop.append(r)
        }
        Issue.record("the run ended before epoch \(epoch), so nothing was interrupted")
    } catch is Killed {}
    try afterStop(context.checkpoint!)
    var afterResume: [EpochRecord] = []
    let summary = try executor.execute(run, context: context) { afterResume.append($0) }
    return InterruptedRun(
        full: full, fullSummary: fullSummary, beforeStop: beforeStop, afterResume: afterResume, summary: summary,
        fullModel: try Data(contentsOf: fullContext.model!), resumedModel: try Data(contentsOf: context.model!),
        checkpoint: context.checkpoint!)
}

/// The `dpkit` executable beside the test bundle (built with the package).
func dpkitExecutable() -> URL? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("dpkit")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}
