import DPAuditing
import DPCrypto
import DPData
import DPFeatures
import DPLayers
import DPTensor
import DPTraining

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
    /// private runs; allowed for non-private and clip-only controls, and in runs with a
    /// `public` part, where it is fitted on the public part only (no privacy cost).
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

/// A fixed feature extractor applied to every example before training (`dataset.features`,
/// options in `dataset.features_options`). It reads no other example and nothing is fitted, so
/// it costs no privacy; the features of a dataset are computed once per process
/// (``DPFeatures/FeatureCache``).
public enum DatasetFeatures: Hashable, Sendable {
    /// The 2-D scattering transform with Morlet wavelets (``DPFeatures/Scattering2D``, as
    /// Kymatio's `Scattering2D(J, L)`): `[C, H, W]` images become `[C * (1 + J L + L^2 J (J - 1) / 2), h, w]`.
    case scattering(scales: Int, angles: Int)

    /// The names `dataset.features` accepts.
    public static let names = ["none", "scattering"]

    /// As exported models record it (`dpkit.dataset` metadata): `{"type": "scattering", "J": 2, "L": 8}`.
    public var metadata: ConfigValue {
        switch self {
        case .scattering(let J, let L): return .map([("type", .string("scattering")), ("J", .int(J)), ("L", .int(L))])
        }
    }

    /// The features a model file's metadata records; nil for none or an unknown kind.
    public init?(metadata: ConfigValue?) {
        guard let m = metadata, m["type"]?.stringValue == "scattering", let J = m["J"]?.intValue,
            let L = m["L"]?.intValue
        else { return nil }
        self = .scattering(scales: J, angles: L)
    }
}

/// A projection fitted on the private training set before training (`dataset.projection`,
/// options in `dataset.projection_options`), paid for in the run's ledger.
public enum DatasetProjection: Hashable, Sendable {
    /// ``DPTraining/PrivatePCA``: the top `components` directions of the noisy second-moment
    /// matrix of the unit-normalised examples (Abadi et al. 2016); costs `gaussian(noiseMultiplier)`.
    case privatePCA(components: Int, noiseMultiplier: Double)

    /// The names `dataset.projection` accepts.
    public static let names = ["none", "dp-pca"]
}

/// `dataset:` section.
public struct DatasetConfig: Hashable, Sendable {
    /// A name of ``DatasetRegistry`` (DPData): `fashion-mnist`, `synthetic-shapes`, `gaussian-mixture`, `csv`.
    public var name: String
    /// File or directory; required by plugins with `requiresPath` (csv).
    public var path: String?
    public var normalize: Normalization
    /// Use only the first `trainSize` training examples (all when nil; the size generated for synthetic data).
    public var trainSize: Int?
    public var testSize: Int?
    /// The plugin's parameters with defaults filled in.
    public var options: [String: ConfigValue]
    /// `dataset.decryption_key`: the private key (or passphrase file) that opens the dataset's
    /// encrypted files in memory. Not part of the config hash: a run on encrypted files is the
    /// same run as on the plain ones.
    public var decryptionKey: String?
    /// `dataset.features`: nil for the raw examples.
    public var features: DatasetFeatures?
    /// `dataset.projection`: nil for none. Applied after `features`, before `normalize`.
    public var projection: DatasetProjection?

    public init(
        name: String, path: String?, normalize: Normalization, trainSize: Int?, testSize: Int?,
        options: [String: ConfigValue], decryptionKey: String? = nil, features: DatasetFeatures? = nil
    ) {
        self.features = features
        self.name = name
        self.path = path
        self.normalize = normalize
        self.trainSize = trainSize
        self.testSize = testSize
        self.options = options
        self.decryptionKey = decryptionKey
    }

    /// What this section asks of the dataset registry, with generated data drawn from `seed`.
    /// - Throws: ``DataError/unknownDataset(name:valid:)`` when `registry` has no such dataset;
    ///   ``DPCrypto/CryptoError`` when the decryption key cannot be read or is open to others.
    public func request(seed: Int, registry: DatasetRegistry = .standard) throws -> DatasetRequest {
        var r = try requestWithoutKey(seed: seed, registry: registry)
        r.decryptionKey = try decryptionKey.map(DecryptionKey.load)
        return r
    }

    /// The request without reading the key file: for what the config declares.
    func requestWithoutKey(seed: Int, registry: DatasetRegistry) throws -> DatasetRequest {
        try registry.request(
            name, parameters: options, path: path, trainSize: trainSize, testSize: testSize, seed: UInt64(seed))
    }

    /// The examples this section describes (after `features`), without reading data; nil when
    /// only the file knows (csv).
    public func declaredExamples(registry: DatasetRegistry = .standard) throws -> DeclaredExamples? {
        guard var declared = try registry.declaredExamples(requestWithoutKey(seed: 0, registry: registry)) else {
            return nil
        }
        if case .scattering(let J, let L) = features {
            let shape = try Scattering2D.featureShape(forExampleShape: declared.shape.array, scales: J, angles: L)
            declared.summary += ", scattering features (J \(J), L \(L)) \(shape)"
            declared.shape = Shape(shape)
        }
        if case .privatePCA(let k, _) = projection {
            declared.summary += ", DP-PCA to [\(k)]"
            declared.shape = [k]
        }
        return declared
    }
}

/// `model:` section: a registry model with options, or a list of layers.
public struct ModelConfig: Hashable, Sendable {
    /// A name of ``ModelRegistry`` (DPLayers), or nil when `layers` is given.
    public var name: String?
    public var options: [String: ConfigValue]
    /// The layers of a model described in the config, or nil for a registry model.
    public var layers: [LayerSpec]?
    /// The `type` of each entry of `layers`, as written (for messages); empty for a registry model.
    public var layerTypes: [String]
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
    public var kind: OptimizerKind
    public var learningRate: Double
    /// The optimizer's parameters (momentum, betas, weight_decay), defaults filled in.
    public var options: [String: ConfigValue]
    public var schedule: ScheduleConfig

    /// Heavy-ball momentum (0 for adam).
    public var momentum: Double { options["momentum"]?.doubleValue ?? 0 }
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
    /// `privacy.clipping` with its `clipping_options` (defaults filled in).
    public var clipping: ClippingMode
    /// `privacy.sampling`: decides which privacy analysis applies (``SamplingScheme/stepEvent(samplingProbability:batchSize:datasetSize:noiseMultiplier:)``).
    public var sampling: SamplingScheme
    /// `privacy.accountant`: the accountants that report epsilon (`both` is RDP and PLD).
    public var accountants: [AccountantKind]
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
    /// `training.adversarial`: PGD adversarial training (nil: ordinary training).
    public var adversarial: AdversarialAttack? = nil
    /// `training.initial_model`: a model file of an earlier run (`models/<run_id>.safetensors`)
    /// whose parameters replace the seeded initialisation, then every layer is trained. The
    /// file must not have been trained on this run's training set (checked from its metadata).
    public var initialModel: String? = nil
    /// `training.fine_tune`: every layer (default) or the last layer only (linear probe).
    /// Recorded in the resolved config only when given.
    public var fineTune: FineTuning = .all
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
    /// `audit:`; nil when the run is not audited.
    public var audit: AuditConfig?
    public var seed: Int
    /// The resolved config (every known key with defaults filled in, seed excluded) as a tree;
    /// `configHash` is computed from its canonical JSON.
    public var resolved: ConfigValue
    /// `evaluation:`; nil when no attack is evaluated.
    public var evaluation: EvaluationConfig? = nil
    /// `poisoning:`; nil when the training set is clean.
    public var poisoning: PoisoningConfig? = nil
    /// `federated:`; nil for centralised training.
    public var federated: FederatedConfig? = nil
    /// `public:`; nil when every training example is private.
    public var `public`: PublicConfig? = nil

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
    static let sectionKeys = [
        "dataset", "public", "model", "optimizer", "privacy", "training", "audit", "evaluation", "poisoning",
        "federated",
    ]

    /// Validates the run sections of `tree` (a whole config file after sweep values were applied).
    static func parse(_ tree: ConfigValue, seed: Int, context: ParseContext) throws -> RunConfig {
        let root = try MapReader(tree, path: "", context: context)
        let dataset = try parseDataset(root, context: context)
        let publicPart = try parsePublic(root, dataset: dataset, context: context)
        let model = try parseModel(root, context: context)
        let optimizer = try parseOptimizer(root, context: context)
        // training before privacy: the adaptive clipping default depends on the batch size.
        let t = try root.section("training")
        let training = try parseTraining(t)
        // Adaptive clipping's default count noise is (expected count) / 20 (Andrew et al. 2021): the
        // count is of examples per batch in DP-SGD, of clients per round in a federated run.
        let countedPerStep = tree["federated"]?["clients_per_round"]?.intValue ?? training.expectedBatchSize
        let privacy = try parsePrivacy(
            root, training: training, countedPerStep: countedPerStep, normalize: dataset.normalize,
            hasPublicPart: publicPart != nil, context: context)
        root.close(t, as: "training")
        let audit = try parseAudit(root)
        let evaluation = try parseEvaluation(root)
        let poisoning = try parsePoisoning(root, dataset: dataset, context: context)
        let federated = try parseFederated(root)
        if let audit, audit.canaries != nil, privacy.enabled, privacy.sampling != .poisson {
            throw context.error(
                "audit.canaries",
                "a one-run audit tests add/remove-one DP, which Poisson sampling's accounting states; `\(privacy.sampling.rawValue)` sampling is accounted for replace-one; use `privacy.sampling: poisson` in audited runs"
            )
        }

        // The model must fit the data: shape inference from the dataset config, no data read.
        try checkShapes(dataset: dataset, model: model, context: context)

        // Keep the resolved map in section order for readability of the manifest.
        let resolved = ConfigValue.map(sectionKeys.compactMap { key in root.resolved.first { $0.key == key } })
        var config = RunConfig(
            dataset: dataset, model: model, optimizer: optimizer, privacy: privacy, training: training,
            audit: audit, seed: seed, resolved: resolved, evaluation: evaluation, poisoning: poisoning,
            federated: federated)
        config.public = publicPart
        if let federated { try checkFederated(federated, config: config, context: context) }
        try checkTransfer(config, context: context)
        return config
    }

    // MARK: dataset

    static func parseDataset(_ root: MapReader, context: ParseContext) throws -> DatasetConfig {
        let d = try root.section("dataset")
        let plugin = try d.pluginName("name", context.registries.datasets.schema)
        let path = try d.string("path")
        if plugin.requiresPath && path == nil {
            throw d.error("path", "is required for dataset `\(plugin.name)`")
        }
        let normalize = try parseNormalization(d)
        let trainSize = try d.int("train_size", range: .atLeast(1))
        let testSize = try d.int("test_size", range: .atLeast(1))
        let optionsReader = try d.section("options")
        let options = try optionsReader.pluginParameters(plugin, kind: "dataset")
        d.close(optionsReader, as: "options")
        // Where the key is does not change what is trained: left out of the resolved config.
        let decryptionKey = try d.read(ParameterSpec("decryption_key", .string), record: false)?.stringValue
        let features = try parseFeatures(d)
        let projection = try parseProjection(d)
        if decryptionKey != nil, context.registries.datasets.plugin(named: plugin.name)?.readsFiles != true {
            throw d.error(
                "decryption_key",
                "is only for datasets read from files (\(context.registries.datasets.plugins.filter(\.readsFiles).map(\.spec.name).joined(separator: ", "))); `\(plugin.name)` is generated, so remove it"
            )
        }
        try d.finish()
        root.close(d, as: "dataset")
        var config = DatasetConfig(
            name: plugin.name, path: path, normalize: normalize, trainSize: trainSize, testSize: testSize,
            options: options, decryptionKey: decryptionKey, features: features)
        config.projection = projection
        if case .privatePCA(let k, _) = projection {
            var unprojected = config
            unprojected.projection = nil
            if let declared = try? unprojected.declaredExamples(registry: context.registries.datasets),
                k > declared.shape.scalarCount
            {
                let size = declared.shape.scalarCount
                throw d.error(
                    "projection_options.components",
                    "\(k) exceeds the \(size) values of each example (\(declared.shape.array)); use 1...\(size)")
            }
        }
        // Features the examples cannot take (images smaller than 2^J, tabular data) are refused here.
        if features != nil {
            do {
                _ = try config.declaredExamples(registry: context.registries.datasets)
            } catch let error as FeatureError {
                throw d.error("features", error.description)
            }
        }
        return config
    }

    /// `dataset.projection` and `dataset.projection_options` (written to the resolved config
    /// only when given).
    static func parseProjection(_ d: MapReader) throws -> DatasetProjection? {
        let name = try d.read(ParameterSpec("projection", .choice(DatasetProjection.names)))?.stringValue ?? "none"
        let po = try d.section("projection_options")
        var projection: DatasetProjection?
        if name == "dp-pca" {
            let k = try po.requiredInt("components", range: .closed(1, 100_000))
            let sigma = try po.requiredDouble(
                "noise_multiplier", range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e9))
            projection = .privatePCA(components: k, noiseMultiplier: sigma)
        }
        try po.finish(what: name == "none" ? "key (set `projection: dp-pca` first)" : "key")
        if !po.resolved.isEmpty { d.close(po, as: "projection_options") }
        return projection
    }

    /// `dataset.features` and `dataset.features_options` (written to the resolved config only
    /// when given, so configs without features keep their hashes).
    static func parseFeatures(_ d: MapReader) throws -> DatasetFeatures? {
        let name = try d.read(ParameterSpec("features", .choice(DatasetFeatures.names)))?.stringValue ?? "none"
        let fo = try d.section("features_options")
        var features: DatasetFeatures?
        if name == "scattering" {
            let J = try fo.requiredInt("J", range: .closed(1, 12), default: 2)
            let L = try fo.requiredInt("L", range: .closed(1, 64), default: 8)
            features = .scattering(scales: J, angles: L)
        }
        try fo.finish(what: name == "none" ? "key (set `features: scattering` first)" : "key")
        if !fo.resolved.isEmpty { d.close(fo, as: "features_options") }
        return features
    }

    /// `dataset.normalize` and `dataset.normalize_options`.
    static func parseNormalization(_ d: MapReader) throws -> Normalization {
        let name = try d.requiredChoice("normalize", Normalization.names, default: "none")
        let no = try d.section("normalize_options")
        let normalize: Normalization
        switch name {
        case "fixed":
            // Bounds that keep the constants, their ratio and 1 / std finite and non-zero in Float.
            let means = try no.requiredDoubles(
                ParameterSpec(
                    "mean", .doubleList, range: .closed(-1e30, 1e30), required: true,
                    "declared mean: one value, or one per channel"))
            let sds = try no.requiredDoubles(
                ParameterSpec(
                    "std", .doubleList, range: .closed(1e-30, 1e30), required: true, "declared standard deviation, > 0")
            )
            guard means.count == sds.count else {
                throw no.error(
                    "std", "has \(sds.count) values but `mean` has \(means.count); give one of each, or one per channel"
                )
            }
            normalize = .fixed(mean: means, standardDeviation: sds)
        case "private-standardize":
            // Bounds that keep the noisy statistics finite (no overflow to infinity or NaN in
            // PrivateStandardization.fit): |lower|, |upper| <= 1e6 and sigma <= 1e6.
            let sigma = try no.requiredDouble(
                "noise_multiplier", range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6))
            let lower = try no.requiredDouble("lower", range: .closed(-1e6, 1e6), default: 0)
            let upper = try no.requiredDouble("upper", range: .closed(-1e6, 1e6), default: 1)
            guard upper > lower else {
                throw no.error(
                    "upper",
                    "\(ConfigValue.numberText(upper)) must exceed lower \(ConfigValue.numberText(lower)) (the public range every input value is clipped to)"
                )
            }
            normalize = .privateStandardize(noiseMultiplier: sigma, lower: lower, upper: upper)
        case "per-example": normalize = .perExample
        case "standardize": normalize = .standardize
        default: normalize = .none
        }
        try no.finish()
        if !no.resolved.isEmpty { d.close(no, as: "normalize_options") }
        return normalize
    }

    // MARK: model

    static func parseModel(_ root: MapReader, context: ParseContext) throws -> ModelConfig {
        let m = try root.section("model")
        let registries = context.registries
        let label = try m.string("label")
        let hasName = m.has("name"), hasLayers = m.has("layers")
        if hasName == hasLayers {
            throw m.context.error(
                m.path,
                hasName
                    ? "has both `name` and `layers`; give exactly one (a registry model or a list of layers)"
                    : "needs `name` (one of \(registries.models.names.joined(separator: ", "))) or `layers` (a list of layer specs)"
            )
        }
        let model: ModelConfig
        if hasName {
            let plugin = try m.pluginName("name", registries.models.schema)
            let optionsReader = try m.section("options")
            let options = try optionsReader.pluginParameters(plugin, kind: "model")
            m.close(optionsReader, as: "options")
            model = ModelConfig(
                name: plugin.name, options: options, layers: nil, layerTypes: [], label: label ?? plugin.name)
        } else {
            guard case .list(let items)? = m.raw("layers"), !items.isEmpty else {
                throw m.error("layers", "must be a non-empty list of layer specs such as `{type: dense, units: 10}`")
            }
            var layers: [LayerSpec] = [], types: [String] = [], resolvedLayers: [ConfigValue] = []
            for (i, item) in items.enumerated() {
                let layerReader = try MapReader(item, path: m.childPath("layers") + "[\(i)]", context: context)
                let plugin = try layerReader.pluginName("type", registries.layers.schema)
                let options = try layerReader.pluginParameters(plugin, kind: "layer")
                guard let layer = registries.layers.layer(plugin.name, options) else {
                    throw layerReader.error("type", "no layer type `\(plugin.name)`")
                }
                layers.append(layer)
                types.append(plugin.name)
                resolvedLayers.append(.map(layerReader.resolved))
            }
            m.record("layers", .list(resolvedLayers))
            model = ModelConfig(name: nil, options: [:], layers: layers, layerTypes: types, label: label ?? "layers")
        }
        try m.finish()
        root.close(m, as: "model")
        return model
    }

    // MARK: optimizer

    static func parseOptimizer(_ root: MapReader, context: ParseContext) throws -> OptimizerConfig {
        let o = try root.section("optimizer")
        let plugin = try o.pluginName("name", context.registries.optimizers)
        let learningRate = try o.requiredDouble("learning_rate", range: .positive)
        let s = try o.section("schedule")
        let schedulePlugin = try s.pluginName("name", context.registries.schedules, default: "constant")
        let scheduleOptionsReader = try s.section("options")
        let scheduleOptions = try scheduleOptionsReader.pluginParameters(schedulePlugin, kind: "schedule")
        s.close(scheduleOptionsReader, as: "options")
        try s.finish()
        o.close(s, as: "schedule")
        let options = try o.pluginParameters(plugin, kind: "optimizer")
        root.close(o, as: "optimizer")
        guard let kind = OptimizerKind(rawValue: plugin.name) else {
            throw o.error("name", "`\(plugin.name)` has no optimizer behind it")
        }
        return OptimizerConfig(
            kind: kind, learningRate: learningRate, options: Parameters(plugin, options).values,
            schedule: ScheduleConfig(name: schedulePlugin.name, options: scheduleOptions))
    }

    // MARK: training

    static func parseTraining(_ t: MapReader) throws -> TrainingConfig {
        let expectedBatchSize = try t.requiredInt("expected_batch_size", range: .atLeast(1))
        let maxPhysical = try t.requiredInt("max_physical_batch_size", range: .atLeast(1), default: expectedBatchSize)
        // Upper bounds keep epochs x steps per epoch (and schedules in steps) within Int.
        let epochs = try t.int("epochs", range: .closed(1, 1e6))
        let steps = try t.int("steps", range: .closed(1, 1e9))
        if (epochs == nil) == (steps == nil) {
            throw t.context.error(
                t.childPath(epochs == nil ? "epochs" : "steps"),
                epochs == nil
                    ? "is missing; give exactly one of `training.epochs` and `training.steps`"
                    : "conflicts with `training.epochs`; give exactly one of `training.epochs` and `training.steps`")
        }
        let evalEvery = try t.requiredInt("eval_every", range: .atLeast(1), default: 1)
        let adversarial = try parseAdversarialTraining(t)
        let initialModel = try t.string("initial_model")
        let fineTune =
            try t.read(ParameterSpec("fine_tune", .choice(FineTuning.allCases.map(\.rawValue))))?.stringValue.flatMap(
                FineTuning.init(rawValue:)) ?? .all
        try t.finish()
        return TrainingConfig(
            expectedBatchSize: expectedBatchSize, maxPhysicalBatchSize: maxPhysical,
            epochs: epochs, steps: steps, evalEvery: evalEvery, adversarial: adversarial, initialModel: initialModel,
            fineTune: fineTune)
    }

    // MARK: privacy

    static func parsePrivacy(
        _ root: MapReader, training: TrainingConfig, countedPerStep: Int? = nil, normalize: Normalization,
        hasPublicPart: Bool = false, context: ParseContext
    ) throws -> PrivacyConfig {
        let p = try root.section("privacy")
        let registries = context.registries
        let enabled = try p.bool("enabled", default: true)
        let noiseMultiplier = try p.double("noise_multiplier", range: .nonNegative)
        let targetEpsilon = try p.double("target_epsilon", range: .positive)
        let delta = try p.double("delta", range: .openUnit)
        let clippingNorm = try p.double("clipping_norm", range: .positive)
        let clippingPlugin = try p.pluginName("clipping", registries.clippingModes, default: "flat")
        let clippingOptionsReader = try p.section("clipping_options")
        let clippingOptions = try clippingOptionsReader.pluginParameters(clippingPlugin, kind: "clipping mode")
        p.close(clippingOptionsReader, as: "clipping_options")
        let samplingPlugin = try p.pluginName("sampling", registries.samplers, default: SamplingScheme.poisson.rawValue)
        let accountantPlugin = try p.pluginName("accountant", registries.accountants, default: "rdp")
        let secureRNG = try p.bool("secure_rng", default: false)
        try p.finish()
        // The schemas are the types' own (DPTraining), so every name they accept converts.
        guard
            let clipping = ClippingMode(
                name: clippingPlugin.name, parameters: clippingOptions,
                expectedBatchSize: countedPerStep ?? training.expectedBatchSize),
            let sampling = SamplingScheme(rawValue: samplingPlugin.name),
            let accountants = AccountantKind.selection(named: accountantPlugin.name)
        else { preconditionFailure("a privacy schema of DPTraining names a value its type does not define") }
        if enabled {
            try checkPrivateRun(
                p, noiseMultiplier: noiseMultiplier, targetEpsilon: targetEpsilon, delta: delta,
                clippingNorm: clippingNorm, clipping: clipping)
        }
        // The resolved map of a non-private run keeps only `enabled`, so its hash ignores unused keys.
        if !enabled { p.resolved = [("enabled", .bool(false))] }
        // With a public part, `standardize` is fitted on the public part: no privacy cost.
        if enabled, noiseMultiplier != 0, !hasPublicPart, case .standardize = normalize {
            throw context.error(
                "dataset.normalize",
                "`standardize` fits the mean and standard deviation on the private training set, which no privacy ledger accounts for, so a private run refuses it; use `fixed` (declared constants: normalize_options {mean, std}), `per-example` (each example by its own statistics, no privacy cost) or `private-standardize` (Gaussian-mechanism statistics composed into the run's ledger: normalize_options {noise_multiplier, lower, upper})"
            )
        }
        root.close(p, as: "privacy")
        return PrivacyConfig(
            enabled: enabled,
            noiseMultiplier: enabled ? noiseMultiplier : nil, targetEpsilon: enabled ? targetEpsilon : nil,
            targetDelta: enabled ? delta : nil, clippingNorm: enabled ? clippingNorm : nil,
            clipping: enabled ? clipping : .flat, sampling: sampling, accountants: accountants,
            secureRNG: secureRNG)
    }

    /// The settings a private run needs: exactly one of sigma and a target epsilon, delta, C,
    /// and per-layer thresholds whose l2 norm is C.
    static func checkPrivateRun(
        _ p: MapReader, noiseMultiplier: Double?, targetEpsilon: Double?, delta: Double?,
        clippingNorm: Double?, clipping: ClippingMode
    ) throws {
        switch (noiseMultiplier, targetEpsilon) {
        case (nil, nil):
            throw p.context.error(
                p.childPath("noise_multiplier"),
                "is missing: a private run needs exactly one of `privacy.noise_multiplier` and `privacy.target_epsilon` (or `privacy.enabled: false` for a non-private control)"
            )
        case (let sigma?, let eps?):
            throw p.context.error(
                p.childPath("target_epsilon"),
                "\(ConfigValue.numberText(eps)) conflicts with `privacy.noise_multiplier: \(ConfigValue.numberText(sigma))`; give exactly one (remove the other with `null` in a sweep or include entry)"
            )
        default: break
        }
        if delta == nil {
            throw p.error("delta", "is required for a private run; allowed: a number in (0, 1), typically below 1/n")
        }
        guard let clippingNorm else {
            throw p.error("clipping_norm", "is required for a private run; allowed: a number > 0")
        }
        if case .perLayer(let norms?) = clipping {
            // The sensitivity of per-layer clipping is the l2 norm of the thresholds; the noise
            // is calibrated to clipping_norm, so the two must agree.
            let l2 = norms.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if abs(l2 - clippingNorm) > 1e-9 * max(1, clippingNorm) {
                throw p.error(
                    "clipping_options.layer_norms",
                    "has l2 norm \(ConfigValue.numberText(l2)), but the noise is calibrated to clipping_norm \(ConfigValue.numberText(clippingNorm)); allowed: thresholds whose l2 norm equals clipping_norm"
                )
            }
        }
    }
}
