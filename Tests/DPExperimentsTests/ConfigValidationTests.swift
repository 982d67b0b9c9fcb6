import DPLayers
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

/// One kind of bad input: an edit of `baseYAML`, the key path the error must name, and words
/// its message must contain.
struct BadConfigCase: CustomStringConvertible, Sendable {
    var name: String
    var replace: String
    var with: String
    var path: String
    var fragments: [String]
    var description: String { name }
}

let badConfigCases: [BadConfigCase] = [
    BadConfigCase(
        name: "unknown key with suggestion", replace: "  noise_multiplier: 1.0", with: "  noise_multiplir: 1.0",
        path: "privacy.noise_multiplir", fragments: ["unknown key", "did you mean `noise_multiplier`"]),
    BadConfigCase(
        name: "unknown top-level key", replace: "seeds: [0]", with: "seeds: [0]\ntrainig: {}",
        path: "trainig", fragments: ["unknown key", "did you mean `training`"]),
    BadConfigCase(
        name: "negative noise multiplier", replace: "noise_multiplier: 1.0", with: "noise_multiplier: -1",
        path: "privacy.noise_multiplier", fragments: ["-1 is out of range", ">= 0"]),
    BadConfigCase(
        name: "delta outside (0, 1)", replace: "delta: 1.0e-5", with: "delta: 1.5",
        path: "privacy.delta", fragments: ["1.5 is out of range", "in (0, 1)"]),
    BadConfigCase(
        name: "epsilon not positive", replace: "noise_multiplier: 1.0", with: "target_epsilon: 0",
        path: "privacy.target_epsilon", fragments: ["0 is out of range", "> 0"]),
    BadConfigCase(
        name: "batch size below one", replace: "expected_batch_size: 100", with: "expected_batch_size: 0",
        path: "training.expected_batch_size", fragments: ["0 is out of range", ">= 1"]),
    BadConfigCase(
        name: "wrong type", replace: "learning_rate: 0.1", with: "learning_rate: fast",
        path: "optimizer.learning_rate", fragments: ["got a string `fast`", "a number > 0"]),
    BadConfigCase(
        name: "integer expected", replace: "epochs: 3", with: "epochs: 2.5",
        path: "training.epochs", fragments: ["got a number `2.5`", "an integer"]),
    BadConfigCase(
        name: "both noise multiplier and target epsilon", replace: "noise_multiplier: 1.0",
        with: "noise_multiplier: 1.0\n  target_epsilon: 3",
        path: "privacy.target_epsilon", fragments: ["conflicts with `privacy.noise_multiplier: 1`", "exactly one"]),
    BadConfigCase(
        name: "neither noise multiplier nor target epsilon", replace: "  noise_multiplier: 1.0\n", with: "",
        path: "privacy.noise_multiplier",
        fragments: ["is missing", "exactly one of `privacy.noise_multiplier` and `privacy.target_epsilon`"]),
    BadConfigCase(
        name: "unknown plugin", replace: "name: mlp", with: "name: mpl",
        path: "model.name", fragments: ["unknown model `mpl`", "did you mean `mlp`", "logistic-regression"]),
    BadConfigCase(
        name: "unknown plugin option", replace: "hidden_sizes: [8]", with: "hidden_size: [8]",
        path: "model.options.hidden_size",
        fragments: ["unknown parameter of model `mlp`", "did you mean `hidden_sizes`"]),
    BadConfigCase(
        name: "bad choice", replace: "  delta: 1.0e-5", with: "  delta: 1.0e-5\n  sampling: uniform",
        path: "privacy.sampling", fragments: ["unknown sampling method `uniform`", "poisson, fixed-size"]),
    BadConfigCase(
        name: "epochs and steps", replace: "epochs: 3", with: "epochs: 3\n  steps: 100",
        path: "training.steps", fragments: ["exactly one of `training.epochs` and `training.steps`"]),
    BadConfigCase(
        name: "sweep over unknown key path", replace: "seeds: [0]",
        with: "seeds: [0]\nsweep:\n  privacy.noise_multiplir: [1, 2]",
        path: "sweep.privacy.noise_multiplir", fragments: ["unknown key path", "did you mean `noise_multiplier`"]),
    BadConfigCase(
        name: "sweep over unknown section", replace: "seeds: [0]", with: "seeds: [0]\nsweep:\n  privcy.delta: [1.0e-5]",
        path: "sweep.privcy.delta", fragments: ["unknown key path", "did you mean `privacy`"]),
    BadConfigCase(
        name: "swept value out of range", replace: "seeds: [0]",
        with: "seeds: [0]\nsweep:\n  privacy.noise_multiplier: [1, -2]",
        path: "privacy.noise_multiplier", fragments: ["-2 is out of range", "value from sweep"]),
    BadConfigCase(
        name: "sweep not a list", replace: "seeds: [0]", with: "seeds: [0]\nsweep:\n  privacy.noise_multiplier: 2",
        path: "sweep.privacy.noise_multiplier", fragments: ["non-empty list"]),
    BadConfigCase(
        name: "refused layer", replace: "  name: mlp\n  options:\n    hidden_sizes: [8]",
        with: "  layers:\n    - {type: dense, units: 8}\n    - {type: batch-norm}",
        path: "model.layers[1].type", fragments: ["refused", "group-norm"]),
    BadConfigCase(
        name: "model name and layers", replace: "  name: mlp\n", with: "  name: mlp\n  layers: [{type: flatten}]\n",
        path: "model", fragments: ["both `name` and `layers`"]),
    BadConfigCase(
        name: "duplicate key", replace: "  clipping_norm: 1.0", with: "  clipping_norm: 1.0\n  clipping_norm: 2.0",
        path: "privacy.clipping_norm", fragments: ["appears twice"]),
    BadConfigCase(
        name: "csv dataset without path", replace: "  name: gaussian-mixture", with: "  name: csv",
        path: "dataset.path", fragments: ["required for dataset `csv`"]),
    BadConfigCase(
        name: "private run without delta", replace: "  delta: 1.0e-5\n", with: "",
        path: "privacy.delta", fragments: ["required for a private run"]),
    BadConfigCase(
        name: "per-layer thresholds that disagree with the clipping norm", replace: "  clipping_norm: 1.0",
        with: "  clipping_norm: 1.0\n  clipping: per-layer\n  clipping_options: {layer_norms: [0.6, 0.6]}",
        path: "privacy.clipping_options.layer_norms", fragments: ["l2 norm 0.848", "clipping_norm 1"]),
    BadConfigCase(
        name: "statistics fitted on private data", replace: "  name: gaussian-mixture",
        with: "  name: gaussian-mixture\n  normalize: standardize",
        path: "dataset.normalize",
        fragments: ["private run refuses it", "`fixed`", "`per-example`", "`private-standardize`"]),
    BadConfigCase(
        name: "fixed normalisation without std", replace: "  name: gaussian-mixture",
        with: "  name: gaussian-mixture\n  normalize: fixed\n  normalize_options: {mean: 0.5}",
        path: "dataset.normalize_options.std", fragments: ["is required"]),
    BadConfigCase(
        name: "fixed normalisation of unequal lengths", replace: "  name: gaussian-mixture",
        with: "  name: gaussian-mixture\n  normalize: fixed\n  normalize_options: {mean: [0.5, 0.5], std: 0.5}",
        path: "dataset.normalize_options.std", fragments: ["has 1 values but `mean` has 2"]),
    BadConfigCase(
        name: "private statistics without noise", replace: "  name: gaussian-mixture",
        with: "  name: gaussian-mixture\n  normalize: private-standardize",
        path: "dataset.normalize_options.noise_multiplier", fragments: ["is required"]),
    BadConfigCase(
        name: "private statistics with an empty range", replace: "  name: gaussian-mixture",
        with:
            "  name: gaussian-mixture\n  normalize: private-standardize\n  normalize_options: {noise_multiplier: 5, lower: 1, upper: 1}",
        path: "dataset.normalize_options.upper", fragments: ["must exceed lower 1"]),
    BadConfigCase(
        name: "adam betas of wrong length", replace: "  name: sgd", with: "  name: adam\n  betas: [0.9]",
        path: "optimizer.betas", fragments: ["got 1 values", "length 2"]),
]

@Test(arguments: badConfigCases)
func badConfigNamesFileKeyPathAndAllowedValues(_ c: BadConfigCase) throws {
    let yaml = baseYAML.replacingOccurrences(of: c.replace, with: c.with)
    #expect(yaml != baseYAML, "the edit must apply")
    let error = try #require(configError(yaml, file: "bad.yaml"))
    #expect(error.file == "bad.yaml")
    #expect(error.path == c.path, "\(error)")
    for fragment in c.fragments {
        #expect(error.description.contains(fragment), "\(error) lacks \(fragment)")
    }
    #expect(error.description.hasPrefix("bad.yaml"))
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
