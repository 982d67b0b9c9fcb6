import DPAccounting
import DPData
import DPFeatures
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Issue 16: ScatterNet features and DP-PCA in configs.

/// `tiny.yaml` (gaussian-mixture, 5 dimensions, 300 examples) with its control removed and
/// `dataset` lines added under the dataset name.
func tinyYAML(dataset lines: String, replacing edits: [(String, String)] = []) throws -> String {
    var yaml = try fixture("tiny.yaml")
        .replacingOccurrences(of: "  name: gaussian-mixture\n", with: "  name: gaussian-mixture\n" + lines)
        .replacingOccurrences(of: "include:\n  - privacy.enabled: false", with: "")
    for (old, new) in edits {
        #expect(yaml.contains(old), "tiny.yaml lacks \(old)")
        yaml = yaml.replacingOccurrences(of: old, with: new)
    }
    return yaml
}

@Test(
    "dp-pca: its Gaussian event is in the ledger and the reported epsilon; without it the epsilon would be smaller"
)
func privatePCAIsAccountedInTheRun() throws {
    let pca = "  projection: dp-pca\n  projection_options: {components: 3, noise_multiplier: 2}\n"
    let fixedSigma = [("  target_epsilon: 2\n", "  noise_multiplier: 1.5\n")]
    let config = try ExperimentConfig.parse(yaml: tinyYAML(dataset: pca, replacing: fixedSigma), file: "tiny.yaml")
    let (report, lines, dir) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(report.finished.count == 1)
    let run = try #require(try readManifest(dir)["runs"]?.listValue?.first)
    let ledger = try JSONDecoder().decode(
        PrivacyLedger.self, from: try #require(run["privacy_ledger"]).jsonText().data(using: .utf8)!)
    #expect(ledger.entries.first?.event == .gaussian(noiseMultiplier: 2) && ledger.entries.first?.count == 1)
    #expect(ledger.entries.count == 2, "the projection, then the steps")
    #expect(lines.contains { $0.contains("the DP-PCA projection cost gaussian(noiseMultiplier: 2.0)") }, "\(lines)")
    // The reported epsilon is the whole ledger's; the steps alone give less.
    let (_, rows) = CSV.table(try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    let reported = try #require(Double(rows.first?["epsilon_rdp"] ?? ""))
    let whole = try PrivacyBudget.epsilon(ledger: ledger, delta: 1e-4, accountant: .rdp)
    var stepsOnly = PrivacyLedger()
    for entry in ledger.entries.dropFirst() { try stepsOnly.record(entry.event, count: entry.count) }
    let withoutPCA = try PrivacyBudget.epsilon(ledger: stepsOnly, delta: 1e-4, accountant: .rdp)
    #expect(abs(reported - whole) <= 1e-3 * whole, "runs.csv \(reported), ledger \(whole)")
    #expect(withoutPCA < whole - 0.1, "without the projection \(withoutPCA), with it \(whole)")
    // The plan of the same run without dp-pca reports that smaller epsilon.
    let plain = try ExperimentConfig.parse(yaml: tinyYAML(dataset: "", replacing: fixedSigma), file: "tiny.yaml")
    let plan = try TrainingExecutor().plan(try #require(plain.runs.first))
    #expect(abs((plan.epsilonRDP ?? 0) - withoutPCA) <= 1e-6 * withoutPCA)
}

@Test("dp-pca with secure_rng: --resume refuses to restart a run that already wrote rows (a second projection)")
func securePrivatePCAIsNotRestarted() throws {
    let pca = "  projection: dp-pca\n  projection_options: {components: 3, noise_multiplier: 2}\n"
    let edits = [("  target_epsilon: 2\n", "  noise_multiplier: 1.5\n  secure_rng: true\n")]
    let config = try ExperimentConfig.parse(yaml: tinyYAML(dataset: pca, replacing: edits), file: "tiny.yaml")
    let (_, _, folder) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: folder) }
    // The interruption: the finished row goes, the epochs rows stay.
    let runsURL = folder.appendingPathComponent("runs.csv")
    let header = try String(contentsOf: runsURL, encoding: .utf8).split(separator: "\n")[0]
    try (header + "\n").write(to: runsURL, atomically: true, encoding: .utf8)
    let epochsBefore = try String(contentsOf: folder.appendingPathComponent("epochs.csv"), encoding: .utf8)
    #expect {
        try ExperimentRunner(
            config: config, outputDirectory: folder, executor: TrainingExecutor(), resume: true, log: { _ in }
        ).run()
    } throws: { error in "\(error)".contains("DP-PCA run with privacy.secure_rng") }
    #expect(try String(contentsOf: folder.appendingPathComponent("epochs.csv"), encoding: .utf8) == epochsBefore)
}

@Test("dp-pca under a target epsilon: calibration pays for the projection")
func privatePCACalibration() throws {
    let pca = "  projection: dp-pca\n  projection_options: {components: 2, noise_multiplier: 3}\n"
    let config = try ExperimentConfig.parse(yaml: tinyYAML(dataset: pca), file: "tiny.yaml")
    let withPCA = try TrainingExecutor().plan(try #require(config.runs.first))
    let plain = try ExperimentConfig.parse(yaml: tinyYAML(dataset: ""), file: "tiny.yaml")
    let without = try TrainingExecutor().plan(try #require(plain.runs.first))
    // Same target: with the projection's cost included, training must be noisier.
    #expect(try #require(withPCA.noiseMultiplier) > (without.noiseMultiplier ?? .infinity))
    #expect(abs((withPCA.epsilonRDP ?? 0) - 2) < 0.02)
}

@Test("dp-pca refuses more components than values, and projection options without dp-pca")
func privatePCABadSettings() throws {
    let tooMany = "  projection: dp-pca\n  projection_options: {components: 6, noise_multiplier: 2}\n"
    #expect {
        try ExperimentConfig.parse(yaml: tinyYAML(dataset: tooMany), file: "tiny.yaml")
    } throws: { error in
        "\(error)".contains("dataset.projection_options.components") && "\(error)".contains("6 exceeds the 5 values")
    }
    let orphan = "  projection_options: {components: 2, noise_multiplier: 2}\n"
    #expect(throws: ConfigError.self) { try ExperimentConfig.parse(yaml: tinyYAML(dataset: orphan), file: "tiny.yaml") }
}

@Test("features: scattering on data that are not images, or images smaller than 2^J, is a config error naming the key")
func scatteringBadInput() throws {
    let onVectors = "  features: scattering\n"
    #expect {
        try ExperimentConfig.parse(yaml: tinyYAML(dataset: onVectors), file: "tiny.yaml")
    } throws: { error in
        "\(error)".contains("dataset.features") && "\(error)".contains("[channels, height, width]")
    }
    let yaml = """
        name: small
        dataset:
          name: synthetic-shapes
          options: {image_size: 8}
          features: scattering
          features_options: {J: 4}
        model: {name: scatternet-linear, options: {groups: 1}}
        optimizer: {name: sgd, learning_rate: 0.1}
        privacy: {noise_multiplier: 1, delta: 1.0e-5, clipping_norm: 1}
        training: {expected_batch_size: 10, epochs: 1}
        """
    #expect {
        try ExperimentConfig.parse(yaml: yaml, file: "small.yaml")
    } throws: { error in
        "\(error)".contains("dataset.features") && "\(error)".contains("smaller than the scale 2^J = 16")
    }
}

@Test("features: scattering trains on [81, h, w] features, computed once and shared by the runs of a sweep")
func scatteringFeaturesInARun() throws {
    let yaml = """
        name: scatter
        dataset:
          name: synthetic-shapes
          options: {image_size: 8}
          train_size: 60
          test_size: 20
          features: scattering
        model: {name: scatternet-linear, options: {groups: 27}}
        optimizer: {name: sgd, learning_rate: 0.1}
        privacy: {noise_multiplier: 1, delta: 1.0e-3, clipping_norm: 1}
        training: {expected_batch_size: 20, epochs: 1}
        sweep:
          optimizer.learning_rate: [0.1, 0.2]
        """
    let config = try ExperimentConfig.parse(yaml: yaml, file: "scatter.yaml")
    let executor = TrainingExecutor()
    let split = try executor.loadData(config.runs[0].config.dataset, seed: 0)
    // 8x8 with J = 2: padded to 16, 4x4 before the border goes: [81, 2, 2].
    #expect(split.train.exampleShape == [81, 2, 2] && split.test.count == 20)
    let raw = try DatasetRegistry.standard.load(config.runs[0].config.dataset.request(seed: 0))
    let direct = try Scattering2D(height: 8, width: 8).transform(raw.train)
    #expect(split.train.features == direct.features)
    // The second load is the cached value (same storage).
    let again = try executor.loadData(config.runs[0].config.dataset, seed: 0)
    #expect(again.train.features == split.train.features)
    let (report, _, dir) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(report.finished.count == 2)
}

@Test(
    "training.initial_model: parameters are copied; a file of other shapes, or trained on this run's training set, is refused"
)
func initialModel() throws {
    let config = try ExperimentConfig.parse(yaml: tinyYAML(dataset: ""), file: "tiny.yaml")
    let run = try #require(config.runs.first).config
    let executor = TrainingExecutor()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-init-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    // A model of the run's architecture, "pretrained" on another dataset.
    let source = try executor.buildModel(run.model, inputShape: [5], classes: 3, seed: 77)
    let other = ConfigValue.map([("name", .string("public-data"))]).jsonText(sortKeys: true, pretty: false)
    let good = dir.appendingPathComponent("good.safetensors")
    try source.safetensors(metadata: [ModelEvaluation.datasetKey: other]).write(to: good)
    let target = try executor.buildModel(run.model, inputShape: [5], classes: 3, seed: 1)
    try executor.loadInitialModel(good.path, into: target, config: run)
    #expect(zip(source.parameters, target.parameters).allSatisfy { $0.value == $1.value })
    // Other shapes: a clear error naming the key and the tensor.
    let wide = try executor.buildModel(run.model, inputShape: [7], classes: 3, seed: 1)
    #expect {
        try executor.loadInitialModel(good.path, into: wide, config: run)
    } throws: { error in
        let text = "\(error)"
        return text.contains("training.initial_model") && text.contains("does not fit") && text.contains("shape")
    }
    // Trained on this run's training set: refused, its cost is not in the ledger.
    let same = ConfigValue.map([("name", .string("gaussian-mixture"))]).jsonText(sortKeys: true, pretty: false)
    let leaky = dir.appendingPathComponent("leaky.safetensors")
    try source.safetensors(metadata: [ModelEvaluation.datasetKey: same]).write(to: leaky)
    #expect {
        try executor.loadInitialModel(leaky.path, into: target, config: run)
    } throws: { error in "\(error)".contains("this run's private data") }
    #expect {
        try executor.loadInitialModel(dir.appendingPathComponent("missing.safetensors").path, into: target, config: run)
    } throws: { error in "\(error)".contains("not found") }
    // No record of its training data (metadata stripped): refused, nothing shows it is public.
    let bare = dir.appendingPathComponent("bare.safetensors")
    try source.safetensors(metadata: [:]).write(to: bare)
    #expect {
        try executor.loadInitialModel(bare.path, into: target, config: run)
    } throws: { error in "\(error)".contains("does not record which data") }
    // A chain: public-data training that itself started from a model of this run's data.
    let chained = dir.appendingPathComponent("chained.safetensors")
    let lineage = ConfigValue.list([.string("public-data"), .string("gaussian-mixture")])
    try source.safetensors(metadata: [
        ModelEvaluation.datasetKey: other,
        TrainingExecutor.lineageKey: lineage.jsonText(sortKeys: true, pretty: false),
    ]).write(to: chained)
    #expect {
        try executor.loadInitialModel(chained.path, into: target, config: run)
    } throws: { error in "\(error)".contains("through its own initial model") }
}

@Test("a model written by a run records its dataset and its initial model's lineage")
func modelLineageIsRecorded() throws {
    // Run 1 on this data; its model's lineage is its own dataset. Run 2 starts from it and
    // records both, so that run 3 on the first data, starting from run 2's model, is refused.
    let config = try ExperimentConfig.parse(yaml: tinyYAML(dataset: ""), file: "tiny.yaml")
    let (report, _, dir) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: dir) }
    let id = try #require(report.finished.first)
    let url = dir.appendingPathComponent("models/\(id).safetensors")
    let (_, metadata) = try Safetensors.decode(try Data(contentsOf: url))
    #expect(TrainingExecutor.modelLineage(metadata) == ["gaussian-mixture"])
    #expect(metadata[TrainingExecutor.lineageKey] == "[\"gaussian-mixture\"]")
}
