import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Issue 10, item 8: privacy hygiene in the plan and the manifest. Plans only: nothing trains.

/// The plan warnings of `baseYAML` (n = 1000, batch 100: q = 0.1, 30 steps) with `edits` applied.
func planWarnings(_ edits: [(String, String)]) throws -> [String] {
    var yaml = baseYAML
    for (old, new) in edits {
        #expect(yaml.contains(old), "baseYAML lacks \(old)")
        yaml = yaml.replacingOccurrences(of: old, with: new)
    }
    let run = try #require(try parse(yaml).runs.first)
    return try TrainingExecutor().plan(run).warnings
}

let sigmaLine = "  noise_multiplier: 1.0\n"

@Test func sensibleSettingsGiveNoWarning() throws {
    #expect(try planWarnings([]).isEmpty)
    #expect(try planWarnings([(sigmaLine, "  target_epsilon: 2\n")]).isEmpty)
}

@Test("delta >= 1/n is flagged with 1/n and a better delta")
func deltaAtLeastOneOverN() throws {
    let warnings = try planWarnings([("delta: 1.0e-5", "delta: 0.01")])
    #expect(warnings.count == 1)
    #expect(warnings.first?.hasPrefix("delta 0.01 >= 1/n = 0.001 (n = 1000 training examples)") == true, "\(warnings)")
}

@Test("an absurd target epsilon is flagged, above 10 and below 0.01")
func absurdTargets() throws {
    let high = try planWarnings([(sigmaLine, "  target_epsilon: 50\n")])
    #expect(high.contains { $0.hasPrefix("target epsilon 50 > 10") }, "\(high)")
    let low = try planWarnings([(sigmaLine, "  target_epsilon: 0.005\n")])
    #expect(low.contains { $0.hasPrefix("target epsilon 0.005 < 0.01") }, "\(low)")
    // A given sigma whose planned epsilon is above 10 is flagged too.
    let planned = try planWarnings([(sigmaLine, "  noise_multiplier: 0.35\n")])
    #expect(planned.contains { $0.hasPrefix("the planned epsilon") && $0.contains("> 10") }, "\(planned)")
}

@Test("a target no noise multiplier reaches is an error naming the target, delta, steps and accountant")
func unreachableTarget() throws {
    // Input statistics through a Gaussian of sigma 0.05 alone cost far more than epsilon 1.
    let yaml = baseYAML.replacingOccurrences(of: sigmaLine, with: "  target_epsilon: 1\n")
        .replacingOccurrences(
            of: "  name: gaussian-mixture\n",
            with:
                "  name: gaussian-mixture\n  normalize: private-standardize\n  normalize_options: {noise_multiplier: 0.05, lower: -6, upper: 6}\n"
        )
    let run = try #require(try parse(yaml).runs.first)
    do {
        _ = try TrainingExecutor().plan(run)
        Issue.record("planned an unreachable target")
    } catch let error as TrainingError {
        #expect(
            error.description.hasPrefix(
                "privacy.target_epsilon: 1 cannot be reached at delta 1e-05 over 30 steps (rdp)"), "\(error)")
        #expect(ExitStatus(for: error) == .usage)
    }
}

@Test("calibrating with RDP while the table reports the PLD bound is flagged")
func calibrationAndReportByDifferentAccountants() throws {
    let warnings = try planWarnings([(sigmaLine, "  target_epsilon: 2\n  accountant: both\n")])
    #expect(warnings.count == 1)
    #expect(
        warnings.first?.hasPrefix(
            "sigma was calibrated with RDP to epsilon 2, but runs.csv, tables and plots report the PLD epsilon")
            == true, "\(warnings)")
    // Calibrating with the reported accountant is fine (checked on the rule: PLD calibration is slow).
    let facts = PrivacyHygiene.Facts(
        trainingSetSize: 1000, delta: 1e-5, samplingProbability: 0.1, noiseMultiplier: 1.2,
        steps: 30, targetEpsilon: 2, calibratedWith: .pld, reportedBy: .pld, reportedEpsilon: 1.99)
    #expect(PrivacyHygiene.warnings(facts).isEmpty)
}

@Test("settings that make epsilon meaningless: sigma < 0.3, full batch with sigma < 1")
func meaninglessEpsilons() throws {
    let tiny = try planWarnings([(sigmaLine, "  noise_multiplier: 0.2\n")])
    #expect(tiny.contains { $0.hasPrefix("noise multiplier 0.2 < 0.3") }, "\(tiny)")
    let fullBatch = try planWarnings([
        (sigmaLine, "  noise_multiplier: 0.5\n"), ("expected_batch_size: 100", "expected_batch_size: 1000"),
    ])
    #expect(
        fullBatch.contains { $0.hasPrefix("sampling probability 1 (full batch) with noise multiplier 0.5 < 1") },
        "\(fullBatch)")
    // A clip-only control (sigma 0) has its own note and no hygiene warning.
    #expect(try planWarnings([(sigmaLine, "  noise_multiplier: 0\n")]).isEmpty)
}

@Test("plan warnings are printed with the plan and kept in the manifest, naming their runs")
func planWarningsReachThePrintoutAndTheManifest() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    executor.planWarnings = ["delta 0.01 >= 1/n = 0.001"]
    let (_, log) = try runExperiment(dir, executor: executor)
    #expect(log.filter { $0 == "    warning: delta 0.01 >= 1/n = 0.001" }.count == 4)
    let manifest = try readManifest(dir)
    let ids = try parse(runnerYAML).runs.filter { $0.kind == .private }.map(\.runID)
    #expect(
        manifest["warnings"]?.listValue?.contains(
            .string("delta 0.01 >= 1/n = 0.001 (runs \(ids.joined(separator: ", ")))")) == true)
    #expect(manifest["runs"]?.listValue?.first?["plan"]?["warnings"] == .list([.string("delta 0.01 >= 1/n = 0.001")]))
}

@Test("a run that cannot be planned is named in the printout and the manifest, and nothing trains")
func unplannableRunStopsBeforeTraining() throws {
    let dir = try temporaryDirectory()
    let executor = FakeExecutor()
    let bad = try parse(runnerYAML).runs[1].runID
    executor.unplannable = [bad]
    var thrown: Error?
    var log: [String] = []
    do { (_, log) = try runExperiment(dir, executor: executor) } catch { thrown = error }
    let error = try #require(thrown as? ConfigError)
    #expect(error.description.contains("1 of 6 runs cannot be planned") && error.description.contains(bad))
    #expect(ExitStatus(for: error) == .usage && executor.executed.isEmpty)
    _ = log
    let manifest = try readManifest(dir)
    #expect(
        manifest["warnings"]?.listValue?.contains {
            $0.stringValue?.hasPrefix("cannot be planned: fake failure") == true
        } == true)
}
