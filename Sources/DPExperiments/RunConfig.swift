// MARK: - Sections

/// How inputs are scaled before training (`dataset.normalize`, options in
/// `dataset.normalize_options`).
///
/// A private run may not fit anything on its private training set without paying for it:
/// `standardize` (statistics of the training set, unaccounted) is refused there; the three
/// honest choices are `fixed`, `per-example` and `private-standardize`.
public enum Normalization: Hashable, Sendable {
    /// Raw values (images are already in [0, 1]).
    case none
    /// Declared constants, fixed before seeing the data: `x' = (x - mean) / std`, one value or
    /// one per channel. No privacy cost.
    case fixed(mean: [Double], standardDeviation: [Double])
    /// Each example standardised by its own mean and standard deviation (per channel for
    /// images): touches no other example, so it costs no privacy.
    case perExample
    /// Mean and standard deviation fitted on the training set without privacy. Refused in
    /// private runs; allowed for non-private and clip-only controls.
    case standardize
    /// Mean and standard deviation from the Gaussian mechanism on per-example statistics of
    /// values clipped to [lower, upper]; the event is composed into the run's ledger
    /// (``PrivateStandardization``).
    case privateStandardize(noiseMultiplier: Double, lower: Double, upper: Double)

    /// The names `dataset.normalize` accepts.
    public static let names = ["none", "fixed", "per-example", "standardize", "private-standardize"]

    public var name: String {
        switch self {
        case .none: return "none"
        case .fixed: return "fixed"
        case .perExample: return "per-example"
        case .standardize: return "standardize"
        case .privateStandardize: return "private-standardize"
        }
    }
}

/// `dataset:` section.
public struct DatasetConfig: Hashable, Sendable {
    /// Registry name: `fashion-mnist`, `synthetic-shapes`, `gaussian-mixture`, `csv`.
    public var name: String
    /// File or directory; required by plugins with `requiresPath` (csv).
    public var path: String?
    public var normalize: Normalization
    /// Use only the first `trainSize` training examples (all when nil; the size generated for synthetic data).
    public var trainSize: Int?
    public var testSize: Int?
    /// The plugin's parameters with defaults filled in.
    public var options: [String: ConfigValue]
}

/// One entry of `model.layers`.
public struct LayerSpec: Hashable, Sendable {
    /// Registry name: `dense`, `conv2d`, `tanh`, ...
    public var type: String
    /// The layer's parameters with defaults filled in.
    public var options: [String: ConfigValue]
}

/// `model:` section: a registry model with options, or a list of layers.
public struct ModelConfig: Hashable, Sendable {
    /// Registry name, or nil when `layers` is given.
    public var name: String?
    public var options: [String: ConfigValue]
    /// The layers of a model described in the config, or nil for a registry model.
    public var layers: [LayerSpec]?
    /// Display name: `label`, else `name`, else `layers`.
    public var label: String
}

/// `optimizer.schedule:` section.
public struct ScheduleConfig: Hashable, Sendable {
    /// `constant`, `step`, `cosine`.
    public var name: String
    public var options: [String: ConfigValue]
}

/// `optimizer:` section.
public struct OptimizerConfig: Hashable, Sendable {
    /// `sgd`, `momentum`, `adam`.
    public var name: String
    public var learningRate: Double
    /// Heavy-ball momentum (0 for adam).
    public var momentum: Double
    /// Adam's (beta1, beta2); empty for other optimizers.
    public var betas: [Double]
    public var weightDecay: Double
    public var schedule: ScheduleConfig
}

/// `privacy:` section.
public struct PrivacyConfig: Hashable, Sendable {
    /// False for the non-private control: no clipping, no noise, no accounting.
    public var enabled: Bool
    /// sigma: noise standard deviation over clipping norm. 0 is the clip-only control (no privacy).
    public var noiseMultiplier: Double?
    /// Budget from which the executor calibrates sigma (with `targetDelta`).
    public var targetEpsilon: Double?
    /// delta of (epsilon, delta)-DP; nil when disabled.
    public var targetDelta: Double?
    /// C: the l2 bound per example.
    public var clippingNorm: Double?
    /// `flat`, `per-layer`, `automatic`, `adaptive`.
    public var clipping: String
    public var clippingOptions: [String: ConfigValue]
    /// `poisson` (each example joins each batch independently with probability q = B / n) or
    /// `fixed-size` (a fresh uniformly random batch of exactly b examples each step); decides which privacy analysis applies.
    public var sampling: String
    /// `rdp`, `pld`, `both`.
    public var accountant: String
    /// Draw noise from a cryptographically secure generator.
    public var secureRNG: Bool

    /// The run is DP-SGD with sigma = 0: clipping only, epsilon is infinite.
    public var isClipOnly: Bool { enabled && noiseMultiplier == 0 }
}

/// `training:` section.
public struct TrainingConfig: Hashable, Sendable {
    /// Expected batch size B; q = B / n under Poisson sampling.
    public var expectedBatchSize: Int
    /// Largest batch held in memory at once (logical batches are split into physical ones).
    public var maxPhysicalBatchSize: Int
    /// Exactly one of `epochs` and `steps` is set.
    public var epochs: Int?
    public var steps: Int?
    /// Evaluate on the test set every this many epochs (and after the last).
    public var evalEvery: Int
}

/// What a run is, for tables and plots.
public enum RunKind: String, Hashable, Sendable {
    case `private`
    /// `privacy.enabled: false`.
    case nonPrivate = "non-private"
    /// `privacy.noise_multiplier: 0`.
    case clipOnly = "clip-only"
}

// MARK: - Run config

/// The typed, validated configuration of one training run.
public struct RunConfig: Hashable, Sendable {
    public var dataset: DatasetConfig
    public var model: ModelConfig
    public var optimizer: OptimizerConfig
    public var privacy: PrivacyConfig
    public var training: TrainingConfig
    public var seed: Int
    /// The resolved config (every known key with defaults filled in, seed excluded) as a tree;
    /// `configHash` is computed from its canonical JSON.
    public var resolved: ConfigValue

    public var kind: RunKind {
        if !privacy.enabled { return .nonPrivate }
        return privacy.isClipOnly ? .clipOnly : .private
    }

    /// FNV-1a (64-bit) of `resolved.canonicalJSON`, 16 hex digits. Runs that differ only in their
    /// seed share it, so it identifies the cell that tables average over.
    public var configHash: String { fnv1a64Hex(resolved.canonicalJSON) }

    /// `<first 10 hex digits of configHash>-s<seed>`: stable across invocations and resumes.
    public var runID: String { "\(configHash.prefix(10))-s\(seed)" }
}

/// FNV-1a 64-bit hash of the UTF-8 bytes of `text`, as 16 lowercase hex digits.
public func fnv1a64Hex(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

// MARK: - Parsing

extension RunConfig {
    /// The sections of a training run, in file order.
    static let sectionKeys = ["dataset", "model", "optimizer", "privacy", "training"]

    /// Validates the run sections of `tree` (a whole config file after sweep values were applied).
    static func parse(_ tree: ConfigValue, seed: Int, context: ParseContext) throws -> RunConfig {
        let root = try MapReader(tree, path: "", context: context)
        let registries = context.registries

        // dataset
        let d = try root.section("dataset")
        let datasetPlugin = try d.pluginName("name", registries.datasets)
        let path = try d.string("path")
        if datasetPlugin.requiresPath && path == nil {
            throw d.error("path", "is required for dataset `\(datasetPlugin.name)`")
        }
        let normalizeName = try d.choice("normalize", Normalization.names, default: "none")!
        let no = try d.section("normalize_options")
        let normalize: Normalization
        switch normalizeName {
        case "fixed":
            // Bounds that keep the constants, their ratio and 1 / std finite and non-zero in Float.
            let mean = try no.read(ParameterSpec("mean", .doubleList, range: .closed(-1e30, 1e30), required: true, "declared mean: one value, or one per channel"))
            let sd = try no.read(ParameterSpec("std", .doubleList, range: .closed(1e-30, 1e30), required: true, "declared standard deviation, > 0"))
            let means = mean?.listValue?.compactMap(\.doubleValue) ?? [], sds = sd?.listValue?.compactMap(\.doubleValue) ?? []
            guard means.count == sds.count else {
                throw no.error("std", "has \(sds.count) values but `mean` has \(means.count); give one of each, or one per channel")
            }
            normalize = .fixed(mean: means, standardDeviation: sds)
        case "private-standardize":
            // Bounds that keep the noisy statistics finite (no overflow to infinity or NaN in
            // PrivateStandardization.fit): |lower|, |upper| <= 1e6 and sigma <= 1e6.
            let sigma = try no.double("noise_multiplier", range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6), required: true)!
            let lower = try no.double("lower", range: .closed(-1e6, 1e6), default: 0)!
            let upper = try no.double("upper", range: .closed(-1e6, 1e6), default: 1)!
            guard upper > lower else {
                throw no.error("upper", "\(ConfigValue.numberText(upper)) must exceed lower \(ConfigValue.numberText(lower)) (the public range every input value is clipped to)")
            }
            normalize = .privateStandardize(noiseMultiplier: sigma, lower: lower, upper: upper)
        case "per-example": normalize = .perExample
        case "standardize": normalize = .standardize
        default: normalize = .none
        }
        try no.finish()
        if !no.resolved.isEmpty { d.close(no, as: "normalize_options") }
        let trainSize = try d.int("train_size", range: .atLeast(1))
        let testSize = try d.int("test_size", range: .atLeast(1))
        let datasetOptionsReader = try d.section("options")
        let datasetOptions = try datasetOptionsReader.pluginParameters(datasetPlugin, kind: "dataset")
        d.close(datasetOptionsReader, as: "options")
        try d.finish()
        root.close(d, as: "dataset")
        let dataset = DatasetConfig(
            name: datasetPlugin.name, path: path, normalize: normalize,
            trainSize: trainSize, testSize: testSize, options: datasetOptions)

        // model
        let m = try root.section("model")
        let model: ModelConfig
        let label = try m.string("label")
        let hasName = m.has("name"), hasLayers = m.has("layers")
        if hasName == hasLayers {
            throw m.context.error(
                m.path, hasName
                    ? "has both `name` and `layers`; give exactly one (a registry model or a list of layers)"
                    : "needs `name` (one of \(registries.models.names.joined(separator: ", "))) or `layers` (a list of layer specs)")
        }
        if hasName {
            let plugin = try m.pluginName("name", registries.models)
            let optionsReader = try m.section("options")
            let options = try optionsReader.pluginParameters(plugin, kind: "model")
            m.close(optionsReader, as: "options")
            model = ModelConfig(name: plugin.name, options: options, layers: nil, label: label ?? plugin.name)
        } else {
            guard case .list(let items)? = m.raw("layers"), !items.isEmpty else {
                throw m.error("layers", "must be a non-empty list of layer specs such as `{type: dense, units: 10}`")
            }
            var layers: [LayerSpec] = []
            var resolvedLayers: [ConfigValue] = []
            for (i, item) in items.enumerated() {
                let layerReader = try MapReader(item, path: m.childPath("layers") + "[\(i)]", context: context)
                let plugin = try layerReader.pluginName("type", registries.layers)
                let options = try layerReader.pluginParameters(plugin, kind: "layer")
                layers.append(LayerSpec(type: plugin.name, options: options))
                resolvedLayers.append(.map(layerReader.resolved))
            }
            m.record("layers", .list(resolvedLayers))
            model = ModelConfig(name: nil, options: [:], layers: layers, label: label ?? "layers")
        }
        try m.finish()
        root.close(m, as: "model")

        // optimizer
        let o = try root.section("optimizer")
        let optimizerPlugin = try o.pluginName("name", registries.optimizers)
        let learningRate = try o.double("learning_rate", range: .positive, required: true)!
        let s = try o.section("schedule")
        let schedulePlugin = try s.pluginName("name", registries.schedules, default: "constant")
        let scheduleOptionsReader = try s.section("options")
        let scheduleOptions = try scheduleOptionsReader.pluginParameters(schedulePlugin, kind: "schedule")
        s.close(scheduleOptionsReader, as: "options")
        try s.finish()
        o.close(s, as: "schedule")
        let optimizerOptions = try o.pluginParameters(optimizerPlugin, kind: "optimizer")
        let optimizer = OptimizerConfig(
            name: optimizerPlugin.name, learningRate: learningRate,
            momentum: optimizerOptions["momentum"]?.doubleValue ?? 0,
            betas: { if case .list(let b)? = optimizerOptions["betas"] { return b.compactMap(\.doubleValue) } else { return [] } }(),
            weightDecay: optimizerOptions["weight_decay"]?.doubleValue ?? 0,
            schedule: ScheduleConfig(name: schedulePlugin.name, options: scheduleOptions))
        root.close(o, as: "optimizer")

        // training (read before privacy: the adaptive clipping default depends on the batch size)
        let t = try root.section("training")
        let expectedBatchSize = try t.int("expected_batch_size", range: .atLeast(1), required: true)!
        let maxPhysical = try t.int("max_physical_batch_size", range: .atLeast(1), default: expectedBatchSize)!
        // Upper bounds keep epochs x steps per epoch (and schedules in steps) within Int.
        let epochs = try t.int("epochs", range: .closed(1, 1e6))
        let steps = try t.int("steps", range: .closed(1, 1e9))
        if (epochs == nil) == (steps == nil) {
            throw t.context.error(
                t.childPath(epochs == nil ? "epochs" : "steps"),
                epochs == nil ? "is missing; give exactly one of `training.epochs` and `training.steps`"
                    : "conflicts with `training.epochs`; give exactly one of `training.epochs` and `training.steps`")
        }
        let evalEvery = try t.int("eval_every", range: .atLeast(1), default: 1)!
        try t.finish()
        let training = TrainingConfig(
            expectedBatchSize: expectedBatchSize, maxPhysicalBatchSize: maxPhysical,
            epochs: epochs, steps: steps, evalEvery: evalEvery)

        // privacy
        let p = try root.section("privacy")
        let enabled = try p.bool("enabled", default: true)
        let noiseMultiplier = try p.double("noise_multiplier", range: .nonNegative)
        let targetEpsilon = try p.double("target_epsilon", range: .positive)
        let delta = try p.double("delta", range: .openUnit)
        let clippingNorm = try p.double("clipping_norm", range: .positive)
        let clippingPlugin = try p.pluginName("clipping", registries.clippingModes, default: "flat")
        let clippingOptionsReader = try p.section("clipping_options")
        let clippingOptions = try clippingOptionsReader.pluginParameters(clippingPlugin, kind: "clipping mode")
        p.close(clippingOptionsReader, as: "clipping_options")
        let sampling = try p.pluginName("sampling", registries.samplers, default: "poisson")
        let accountant = try p.pluginName("accountant", registries.accountants, default: "rdp")
        let secureRNG = try p.bool("secure_rng", default: false)
        try p.finish()
        if enabled {
            switch (noiseMultiplier, targetEpsilon) {
            case (nil, nil):
                throw p.context.error(
                    p.childPath("noise_multiplier"),
                    "is missing: a private run needs exactly one of `privacy.noise_multiplier` and `privacy.target_epsilon` (or `privacy.enabled: false` for a non-private control)")
            case (let sigma?, let eps?):
                throw p.context.error(
                    p.childPath("target_epsilon"),
                    "\(ConfigValue.numberText(eps)) conflicts with `privacy.noise_multiplier: \(ConfigValue.numberText(sigma))`; give exactly one (remove the other with `null` in a sweep or include entry)")
            default: break
            }
            if delta == nil { throw p.error("delta", "is required for a private run; allowed: a number in (0, 1), typically below 1/n") }
            if clippingNorm == nil { throw p.error("clipping_norm", "is required for a private run; allowed: a number > 0") }
            if case .list(let norms)? = clippingOptions["layer_norms"], let clippingNorm {
                // The sensitivity of per-layer clipping is the l2 norm of the thresholds; the noise
                // is calibrated to clipping_norm, so the two must agree.
                let l2 = norms.compactMap(\.doubleValue).reduce(0) { $0 + $1 * $1 }.squareRoot()
                if abs(l2 - clippingNorm) > 1e-9 * max(1, clippingNorm) {
                    throw p.error(
                        "clipping_options.layer_norms",
                        "has l2 norm \(ConfigValue.numberText(l2)), but the noise is calibrated to clipping_norm \(ConfigValue.numberText(clippingNorm)); allowed: thresholds whose l2 norm equals clipping_norm")
                }
            }
        }
        // The resolved map of a non-private run keeps only `enabled`, so its hash ignores unused keys.
        if !enabled { p.resolved = [("enabled", .bool(false))] }
        if enabled, noiseMultiplier != 0, case .standardize = normalize {
            throw context.error(
                "dataset.normalize",
                "`standardize` fits the mean and standard deviation on the private training set, which no privacy ledger accounts for, so a private run refuses it; use `fixed` (declared constants: normalize_options {mean, std}), `per-example` (each example by its own statistics, no privacy cost) or `private-standardize` (Gaussian-mechanism statistics composed into the run's ledger: normalize_options {noise_multiplier, lower, upper})")
        }
        let privacy = PrivacyConfig(
            enabled: enabled,
            noiseMultiplier: enabled ? noiseMultiplier : nil, targetEpsilon: enabled ? targetEpsilon : nil,
            targetDelta: enabled ? delta : nil, clippingNorm: enabled ? clippingNorm : nil,
            clipping: clippingPlugin.name, clippingOptions: enabled ? clippingOptions : [:],
            sampling: sampling.name, accountant: accountant.name,
            secureRNG: secureRNG)
        root.close(p, as: "privacy")
        root.close(t, as: "training")

        // The model must fit the data: shape inference from the dataset config, no data read.
        try checkShapes(dataset: dataset, model: model, context: context)

        // Keep the resolved map in section order for readability of the manifest.
        let resolved = ConfigValue.map(sectionKeys.compactMap { key in root.resolved.first { $0.key == key } })
        return RunConfig(
            dataset: dataset, model: model, optimizer: optimizer, privacy: privacy, training: training,
            seed: seed, resolved: resolved)
    }
}
