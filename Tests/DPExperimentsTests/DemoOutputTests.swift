import Foundation
import Testing
@testable import DPExperiments

/// Writes a realistic-looking experiment directory (fake numbers) for looking at tables and plots:
///   DPKIT_DEMO_OUTPUT=/tmp/demo swift test --filter writeDemoExperiment
///   dpkit table /tmp/demo && dpkit plot /tmp/demo
@Test(.enabled(if: ProcessInfo.processInfo.environment["DPKIT_DEMO_OUTPUT"] != nil))
func writeDemoExperiment() throws {
    let dir = URL(fileURLWithPath: ProcessInfo.processInfo.environment["DPKIT_DEMO_OUTPUT"]!)
    try? FileManager.default.removeItem(at: dir)
    let yaml = baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "")
        .replacingOccurrences(of: "seeds: [0]\n", with: "")
        .replacingOccurrences(of: "  options:\n    hidden_sizes: [8]\n", with: "")
        .replacingOccurrences(of: "epochs: 3", with: "epochs: 10") + """
    name: demo
    seeds: [0, 1, 2]
    sweep:
      model.name: [logistic-regression, mlp]
      privacy.target_epsilon: [0.5, 1, 2, 4, 8]
    include:
      - {privacy.enabled: false, model.name: mlp}
      - {privacy.enabled: false, model.name: logistic-regression}

    """
    let config = try ExperimentConfig.parse(yaml: yaml.replacingOccurrences(of: "name: test\n", with: ""), file: "demo.yaml")
    let runner = ExperimentRunner(
        config: config, outputDirectory: dir, executor: DemoExecutor(), clock: FakeClock().read, log: { _ in })
    try runner.run()
}

/// Accuracy rising with epsilon and epochs, a better MLP, seed jitter; epsilon growing like sqrt(epoch).
struct DemoExecutor: RunExecutor {
    func plan(_ run: ResolvedRun) throws -> RunPlan {
        RunPlan(noiseMultiplier: 1, samplingProbability: 0.01, steps: 1000, stepsPerEpoch: 100, epsilonRDP: run.config.privacy.targetEpsilon)
    }

    func execute(_ run: ResolvedRun, progress: (EpochRecord) throws -> Void) throws -> RunSummary {
        let p = run.config.privacy
        let eps = p.targetEpsilon
        let ceiling = run.config.model.name == "mlp" ? 0.90 : 0.84
        let jitter = Double((run.seed * 7919 + Int(run.configHash.prefix(4), radix: 16)!) % 13 - 6) / 1000
        func accuracy(_ epoch: Int) -> Double {
            let budget = eps.map { 1 - exp(-0.9 * $0) * 0.45 } ?? 1.0
            return ceiling * budget * (1 - 0.5 * exp(-Double(epoch) / 2.5)) + jitter
        }
        for epoch in 1...10 {
            try progress(EpochRecord(
                epoch: epoch, step: epoch * 100, trainLoss: 2 * exp(-Double(epoch) / 4), trainAccuracy: accuracy(epoch),
                testLoss: 2.1 * exp(-Double(epoch) / 4), testAccuracy: accuracy(epoch),
                epsilonRDP: eps.map { $0 * (Double(epoch) / 10).squareRoot() * 1.05 },
                epsilonPLDLower: eps.map { $0 * (Double(epoch) / 10).squareRoot() * 0.99 },
                epsilonPLDUpper: eps.map { $0 * (Double(epoch) / 10).squareRoot() }, delta: p.targetDelta,
                noiseMultiplier: eps.map { 2 / $0 }, samplingProbability: p.enabled ? 0.01 : nil,
                clippingNorm: p.clippingNorm, clippedFraction: p.enabled ? 0.6 : nil))
        }
        return RunSummary(
            epochs: 10, steps: 1000, testAccuracy: accuracy(10), epsilonRDP: eps.map { $0 * 1.05 },
            epsilonPLDLower: eps.map { $0 * 0.99 }, epsilonPLDUpper: eps, delta: p.targetDelta)
    }
}

/// Regenerates the plugin reference of docs/experiments.md:
///   DPKIT_WRITE_REFERENCE=/tmp/reference.md swift test --filter writePluginReference
@Test(.enabled(if: ProcessInfo.processInfo.environment["DPKIT_WRITE_REFERENCE"] != nil))
func writePluginReference() throws {
    try PluginRegistries.standard.referenceMarkdown()
        .write(toFile: ProcessInfo.processInfo.environment["DPKIT_WRITE_REFERENCE"]!, atomically: true, encoding: .utf8)
}
