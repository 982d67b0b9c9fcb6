import DPLayers
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

@Test(arguments: try BadConfigCase.table("bad-configs.yaml"))
func badConfigNamesFileKeyPathAndAllowedValues(_ c: BadConfigCase) throws {
    try c.check()
}

@Test func errorCarriesTheLineOfTheKey() throws {
    let yaml = baseYAML.replacingOccurrences(of: "noise_multiplier: 1.0", with: "noise_multiplier: -1")
    let error = try #require(configError(yaml, file: "bad.yaml"))
    let line =
        yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("noise_multiplier") }!
        + 1
    #expect(error.line == line)
    #expect(error.description.hasPrefix("bad.yaml:\(line): privacy.noise_multiplier: "))
}

@Test func validConfigParsesIntoTypedStructs() throws {
    let config = try parse(baseYAML)
    #expect(config.runs.count == 1)
    let run = try #require(config.runs.first).config
    #expect(run.dataset.name == "gaussian-mixture")
    #expect(run.dataset.trainSize == 1000)
    #expect(run.dataset.options["classes"] == .int(2)) // default filled in
    #expect(run.model.options["hidden_sizes"] == .list([.int(8)]))
    #expect(run.model.options["activation"] == .string("tanh"))
    #expect(run.optimizer.learningRate == 0.1 && run.optimizer.momentum == 0)
    #expect(run.optimizer.schedule.name == "constant")
    #expect(run.privacy.noiseMultiplier == 1 && run.privacy.targetDelta == 1e-5 && run.privacy.clippingNorm == 1)
    #expect(run.privacy.clipping == .flat && run.privacy.sampling == .poisson && run.privacy.accountants == [.rdp])
    #expect(run.training.maxPhysicalBatchSize == 100 && run.training.epochs == 3 && run.training.evalEvery == 1)
    #expect(run.kind == .private)
}

@Test func layersDescribeAModelWithoutCode() throws {
    let yaml = baseYAML.replacingOccurrences(of: "  name: gaussian-mixture", with: "  name: synthetic-shapes")
        .replacingOccurrences(
            of: "  name: mlp\n  options:\n    hidden_sizes: [8]",
            with:
                "  layers:\n    - {type: conv2d, channels: 16, kernel_size: 8, stride: 2, padding: 3}\n    - {type: tanh}\n    - {type: max-pool2d}\n    - {type: flatten}\n    - {type: dense, units: 10}"
        )
    let model = try #require(try parse(yaml).runs.first).config.model
    #expect(model.name == nil && model.label == "layers")
    #expect(model.layerTypes == ["conv2d", "tanh", "max-pool2d", "flatten", "dense"])
    #expect(
        model.layers == [
            .conv2d(outChannels: 16, kernel: 8, stride: 2, padding: 3), .tanh, .maxPool2d(kernel: 2, stride: nil),
            .flatten, .linear(outputs: 10),
        ])
}

@Test func clippingModeParametersAreValidatedThroughTheRegistry() throws {
    let good = baseYAML.replacingOccurrences(
        of: "  clipping_norm: 1.0",
        with: "  clipping_norm: 1.0\n  clipping: adaptive\n  clipping_options: {target_quantile: 0.6}")
    let privacy = try #require(try parse(good).runs.first).config.privacy
    // Defaults filled in: learning_rate 0.2, count noise expected_batch_size / 20.
    #expect(privacy.clipping == .adaptive(targetQuantile: 0.6, learningRate: 0.2, countNoiseMultiplier: 100.0 / 20))

    let bad = good.replacingOccurrences(of: "target_quantile: 0.6", with: "target_quantile: 1.5")
    let error = try #require(configError(bad))
    #expect(error.path == "privacy.clipping_options.target_quantile")
    #expect(error.message.contains("in (0, 1)"))
}

@Test func registryAcceptsANewPluginWithOneLine() throws {
    var registries = PluginRegistries.standard
    registries.models.register(
        ModelPlugin(
            PluginSpec("resnet-tiny", parameters: [ParameterSpec("width", .int, range: .atLeast(1), default: .int(8))])
        ) { p, input in
            [.flatten, .linear(outputs: p.int("width")), .relu, .linear(outputs: input.classes)]
        })
    let yaml = baseYAML.replacingOccurrences(
        of: "  name: mlp\n  options:\n    hidden_sizes: [8]", with: "  name: resnet-tiny")
    #expect(configError(yaml) != nil)
    let config = try ExperimentConfig.parse(yaml: yaml, file: "x.yaml", registries: registries)
    #expect(config.runs.first?.config.model.options["width"] == .int(8))
}

@Test func nonPrivateControlNeedsNoPrivacyParameters() throws {
    let yaml = baseYAML.replacingOccurrences(
        of: "  noise_multiplier: 1.0\n  delta: 1.0e-5\n  clipping_norm: 1.0", with: "  enabled: false")
    let run = try #require(try parse(yaml).runs.first)
    #expect(run.kind == .nonPrivate)
    #expect(run.config.privacy.noiseMultiplier == nil && run.config.privacy.targetDelta == nil)
}

@Test func clipOnlyControlIsLabelledAndWarned() throws {
    let yaml = baseYAML.replacingOccurrences(of: "noise_multiplier: 1.0", with: "noise_multiplier: 0")
    let config = try parse(yaml)
    #expect(config.runs.first?.kind == .clipOnly)
    #expect(config.warnings.contains { $0.contains("clip-only") })
}

@Test(arguments: [
    "quickstart.yaml", "fashion-mnist-tempered-sigmoid.yaml", "fashion-mnist-budgets.yaml", "accountants.yaml",
    "robustness-fashion-mnist.yaml", "poisoning-fashion-mnist.yaml",
])
func shippedConfigsAreValid(_ name: String) throws {
    let file = repositoryRoot.appendingPathComponent("experiments").appendingPathComponent(name).path
    let config = try ExperimentConfig.load(file: file)
    #expect(!config.name.isEmpty)
    switch name {
    case "quickstart.yaml":
        #expect(config.runs.count == 4)
        #expect(config.runs.filter { $0.kind == .nonPrivate }.count == 1)
    case "fashion-mnist-tempered-sigmoid.yaml":
        let run = try #require(config.runs.first).config
        #expect(config.runs.count == 1)
        #expect(run.training.expectedBatchSize == 2048 && run.training.epochs == 40)
        #expect(
            run.privacy.noiseMultiplier == 2.15 && run.privacy.clippingNorm == 0.1 && run.privacy.targetDelta == 1e-5)
        #expect(run.optimizer.learningRate == 4 && run.optimizer.momentum == 0.9)
        #expect(
            run.dataset.normalize == .privateStandardize(noiseMultiplier: 100, lower: 0, upper: 1)
                && run.model.name == "cnn-tanh")
    case "robustness-fashion-mnist.yaml":
        #expect(config.runs.count == 3 * 2 + 2)
        #expect(config.runs.filter { $0.config.training.adversarial != nil }.count == 4)
        #expect(config.varyingKeys.contains("training.adversarial.enabled"))
        // FGSM and PGD-40 at three radii, and the Square Attack at 0.1 (the gradient-masking check).
        #expect(OutputSchema.derivedColumns(config.runs).count == 7)
        #expect(OutputSchema.derivedColumns(config.runs).contains("robust_accuracy_pgd40_linf_0.2"))
        #expect(OutputSchema.derivedColumns(config.runs).contains("robust_accuracy_square500_linf_0.1"))
    case "poisoning-fashion-mnist.yaml":
        // 5 counts at 3 epsilons, and two non-private controls per count: batches of 128, and the
        // private runs' batches of 2048 (the same steps).
        #expect(config.runs.count == 5 * 3 + 5 * 2)
        #expect(Set(config.runs.compactMap { $0.config.poisoning?.backdoor?.count }) == [10, 50, 250, 1000, 4000])
        let controls = config.runs.filter { $0.kind == .nonPrivate }.map(\.config.training.expectedBatchSize)
        #expect(controls.sorted() == [Int](repeating: 128, count: 5) + [Int](repeating: 2048, count: 5))
    case "fashion-mnist-budgets.yaml":
        #expect(config.runs.count == (5 + 2) * 3)
        #expect(Set(config.runs.compactMap(\.config.privacy.targetEpsilon)) == [0.5, 1, 2, 4, 8])
        #expect(config.runs.filter { $0.kind == .nonPrivate }.allSatisfy { $0.config.optimizer.learningRate == 0.05 })
        #expect(config.runs.filter { $0.kind == .clipOnly }.count == 3)
    default:
        #expect(config.kind == .accounting)
        let accounting = try #require(config.accounting)
        #expect(accounting.points.count == 2 * 3 * 5)
        #expect(accounting.targetDelta == 1e-5 && accounting.accountants == [.rdp, .pld])
    }
}

@Test func accountingConfigIsValidated() throws {
    let yaml = """
        kind: accounting
        name: acc
        accounting:
          sampling_probability: 0.01
          noise_multiplier: [1.0, 0]
          steps: [10]
          delta: 1.0e-5
        """
    let error = try #require(configError(yaml))
    #expect(error.path == "accounting.noise_multiplier")
    #expect(error.message.contains("out of range"))

    let training = yaml.replacingOccurrences(of: "kind: accounting\n", with: "")
    let other = try #require(configError(training))
    #expect(other.path == "accounting")
    #expect(other.message.contains("unknown key"))
}
