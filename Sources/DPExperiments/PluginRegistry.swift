// MARK: - Parameter schemas

/// The allowed range of a numeric parameter, with open or closed ends.
public struct ValueRange: Hashable, Sendable, CustomStringConvertible {
    public var lower: Double?
    public var lowerInclusive: Bool
    public var upper: Double?
    public var upperInclusive: Bool

    public init(lower: Double? = nil, lowerInclusive: Bool = true, upper: Double? = nil, upperInclusive: Bool = true) {
        self.lower = lower
        self.lowerInclusive = lowerInclusive
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    /// `> 0`
    public static let positive = ValueRange(lower: 0, lowerInclusive: false)
    /// `>= 0`
    public static let nonNegative = ValueRange(lower: 0)
    /// `in (0, 1)`
    public static let openUnit = ValueRange(lower: 0, lowerInclusive: false, upper: 1, upperInclusive: false)
    /// `in [0, 1)`
    public static let halfOpenUnit = ValueRange(lower: 0, upper: 1, upperInclusive: false)
    /// `in (0, 1]`
    public static let unitExcludingZero = ValueRange(lower: 0, lowerInclusive: false, upper: 1)
    /// `>= n`
    public static func atLeast(_ n: Double) -> ValueRange { ValueRange(lower: n) }
    /// `in [a, b]`
    public static func closed(_ a: Double, _ b: Double) -> ValueRange { ValueRange(lower: a, upper: b) }

    public func contains(_ x: Double) -> Bool {
        guard x.isFinite else { return false }
        if let lower, lowerInclusive ? x < lower : x <= lower { return false }
        if let upper, upperInclusive ? x > upper : x >= upper { return false }
        return true
    }

    public var description: String {
        let lo = lower.map(ConfigValue.numberText), hi = upper.map(ConfigValue.numberText)
        switch (lo, hi) {
        case let (lo?, hi?): return "in \(lowerInclusive ? "[" : "(")\(lo), \(hi)\(upperInclusive ? "]" : ")")"
        case let (lo?, nil): return lowerInclusive ? ">= \(lo)" : "> \(lo)"
        case let (nil, hi?): return upperInclusive ? "<= \(hi)" : "< \(hi)"
        case (nil, nil): return "finite"
        }
    }
}

/// One parameter of a plugin (or one key of a config section): its type, range and default.
public struct ParameterSpec: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case bool, int, double, string
        case choice([String])
        case intList, doubleList, stringList

        var description: String {
            switch self {
            case .bool: return "true or false"
            case .int: return "an integer"
            case .double: return "a number"
            case .string: return "a string"
            case .choice(let options): return "one of " + options.joined(separator: ", ")
            case .intList: return "a list of integers"
            case .doubleList: return "a list of numbers"
            case .stringList: return "a list of strings"
            }
        }
    }

    public var name: String
    public var kind: Kind
    /// Range of the number, or of every element of a numeric list.
    public var range: ValueRange?
    /// Required list length, if fixed.
    public var count: Int?
    /// Filled in when the key is absent; nil means optional without default (or `required`).
    public var defaultValue: ConfigValue?
    public var required: Bool
    public var summary: String

    public init(
        _ name: String, _ kind: Kind, range: ValueRange? = nil, count: Int? = nil,
        default defaultValue: ConfigValue? = nil, required: Bool = false, _ summary: String = ""
    ) {
        self.name = name
        self.kind = kind
        self.range = range
        self.count = count
        self.defaultValue = defaultValue
        self.required = required
        self.summary = summary
    }

    /// What is allowed, for error messages and docs: `a number > 0`.
    public var allowedDescription: String {
        var text = kind.description
        if let count { text += " of length \(count)" }
        if let range { text += (kind == .intList || kind == .doubleList ? ", each " : " ") + range.description }
        return text
    }
}

// MARK: - Plugins

/// A named plugin (a dataset, model, optimizer, schedule, clipping mode, accountant, sampler or
/// layer type) and the schema of its parameters.
public struct PluginSpec: Hashable, Sendable {
    public var name: String
    public var summary: String
    public var parameters: [ParameterSpec]
    /// Whether `dataset.path` must be given (datasets only).
    public var requiresPath: Bool

    public init(_ name: String, _ summary: String = "", parameters: [ParameterSpec] = [], requiresPath: Bool = false) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.requiresPath = requiresPath
    }
}

/// A list of known plugin names of one kind, with their parameter schemas.
///
/// Adding a plugin is one line in `PluginRegistries.standard` (or `registries.models.register(...)`
/// at run time); the config validator then accepts the name and checks its options.
public struct PluginRegistry: Hashable, Sendable {
    /// What the plugins are, for messages: `dataset`, `model`, `clipping mode`.
    public var kind: String
    public private(set) var plugins: [PluginSpec]
    /// Names that are refused with a reason (for example layers that mix examples in a batch).
    public var refused: [String: String]

    public init(kind: String, _ plugins: [PluginSpec], refused: [String: String] = [:]) {
        self.kind = kind
        self.plugins = plugins
        self.refused = refused
    }

    public var names: [String] { plugins.map(\.name) }

    public func plugin(named name: String) -> PluginSpec? { plugins.first { $0.name == name } }

    /// Adds a plugin, replacing one of the same name.
    public mutating func register(_ plugin: PluginSpec) {
        plugins.removeAll { $0.name == plugin.name }
        plugins.append(plugin)
    }
}

/// Every registry the config validator consults.
public struct PluginRegistries: Hashable, Sendable {
    public var datasets: PluginRegistry
    public var models: PluginRegistry
    public var layers: PluginRegistry
    public var optimizers: PluginRegistry
    public var schedules: PluginRegistry
    public var clippingModes: PluginRegistry
    public var accountants: PluginRegistry
    public var samplers: PluginRegistry

    public init(
        datasets: PluginRegistry, models: PluginRegistry, layers: PluginRegistry, optimizers: PluginRegistry,
        schedules: PluginRegistry, clippingModes: PluginRegistry, accountants: PluginRegistry, samplers: PluginRegistry
    ) {
        self.datasets = datasets
        self.models = models
        self.layers = layers
        self.optimizers = optimizers
        self.schedules = schedules
        self.clippingModes = clippingModes
        self.accountants = accountants
        self.samplers = samplers
    }

    /// The plugins DPKit ships. Add one line here to add a plugin.
    public static let standard = PluginRegistries(
        datasets: PluginRegistry(kind: "dataset", [
            PluginSpec("fashion-mnist", "Fashion-MNIST 28x28 grey images, 10 classes (IDX files; `path` is their directory, default: the Debian package's)"),
            PluginSpec("synthetic-shapes", "generated images of simple shapes, one class per shape", parameters: [
                ParameterSpec("image_size", .int, range: .closed(8, 1024), default: .int(28), "side of the square image in pixels"),
                ParameterSpec("noise", .double, range: .closed(0, 10), default: .double(0.1), "standard deviation of pixel noise"),
            ]),
            PluginSpec("gaussian-mixture", "points from one Gaussian per class", parameters: [
                ParameterSpec("dimensions", .int, range: .closed(1, 1_000_000), default: .int(20), "input dimension"),
                ParameterSpec("classes", .int, range: .closed(2, 100_000), default: .int(2), "number of classes"),
                ParameterSpec("separation", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6), default: .double(2.0), "distance between class means in units of the standard deviation"),
            ]),
            PluginSpec("csv", "a numeric CSV file, one example per row", parameters: [
                ParameterSpec("label_column", .string, default: .string("label"), "name of the integer label column"),
                ParameterSpec("test_path", .string, "a separate test file; without it the last test_size rows are held out"),
            ], requiresPath: true),
        ]),
        models: PluginRegistry(kind: "model", [
            PluginSpec("logistic-regression", "one dense layer and softmax"),
            PluginSpec("mlp", "dense layers with an activation between them", parameters: [
                ParameterSpec("hidden_sizes", .intList, range: .atLeast(1), default: .list([.int(128)]), "widths of the hidden layers"),
                ParameterSpec("activation", .choice(["tanh", "relu", "sigmoid"]), default: .string("tanh")),
            ]),
            PluginSpec("cnn-tanh", "convolutional network with tanh activations (Papernot et al. 2021, tempered sigmoids): conv 16 8x8/2 pad 3, max-pool 2/1, conv 32 4x4/2, max-pool 2/1, dense 32, dense classes"),
            PluginSpec("cnn-tanh-tramer", "cnn-tanh with the first convolution's padding 2, as Tramer & Boneh 2021 trained it"),
        ]),
        layers: PluginRegistry(kind: "layer type", [
            PluginSpec("dense", parameters: [ParameterSpec("units", .int, range: .atLeast(1), required: true)]),
            PluginSpec("conv2d", parameters: [
                ParameterSpec("channels", .int, range: .atLeast(1), required: true),
                ParameterSpec("kernel_size", .int, range: .atLeast(1), default: .int(3)),
                ParameterSpec("stride", .int, range: .atLeast(1), default: .int(1)),
                ParameterSpec("padding", .int, range: .nonNegative, default: .int(0)),
            ]),
            PluginSpec("max-pool2d", parameters: [
                ParameterSpec("size", .int, range: .atLeast(1), default: .int(2)),
                ParameterSpec("stride", .int, range: .atLeast(1), "default size"),
            ]),
            PluginSpec("avg-pool2d", parameters: [
                ParameterSpec("size", .int, range: .atLeast(1), default: .int(2)),
                ParameterSpec("stride", .int, range: .atLeast(1), "default size"),
            ]),
            PluginSpec("flatten"),
            PluginSpec("tanh"),
            PluginSpec("relu"),
            PluginSpec("sigmoid"),
            PluginSpec("tempered-sigmoid", "s * sigmoid(T x) - o (Papernot et al. 2021)", parameters: [
                ParameterSpec("scale", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6), default: .double(2)),
                ParameterSpec("temperature", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6), default: .double(2)),
                ParameterSpec("offset", .double, range: .closed(-1e6, 1e6), default: .double(1)),
            ]),
            PluginSpec("group-norm", parameters: [ParameterSpec("groups", .int, range: .atLeast(1), required: true)]),
            PluginSpec("layer-norm", "normalise each example over its last `axes` axes", parameters: [ParameterSpec("axes", .int, range: .atLeast(1), default: .int(1))]),
            PluginSpec("dropout", parameters: [ParameterSpec("rate", .double, range: .halfOpenUnit, required: true)]),
        ], refused: [
            "batch-norm": "batch normalisation mixes examples of a batch, so per-example gradients and DP-SGD's guarantee break; use group-norm",
            "batchnorm": "batch normalisation mixes examples of a batch, so per-example gradients and DP-SGD's guarantee break; use group-norm",
        ]),
        optimizers: PluginRegistry(kind: "optimizer", [
            PluginSpec("sgd", "stochastic gradient descent (heavy-ball momentum when momentum > 0)", parameters: [
                ParameterSpec("momentum", .double, range: .halfOpenUnit, default: .double(0)),
                ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
            ]),
            PluginSpec("momentum", "SGD with heavy-ball momentum", parameters: [
                ParameterSpec("momentum", .double, range: .halfOpenUnit, default: .double(0.9)),
                ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
            ]),
            PluginSpec("adam", "Adam (Kingma & Ba 2015)", parameters: [
                ParameterSpec("betas", .doubleList, range: .halfOpenUnit, count: 2, default: .list([.double(0.9), .double(0.999)])),
                ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
            ]),
        ]),
        schedules: PluginRegistry(kind: "learning-rate schedule", [
            PluginSpec("constant"),
            PluginSpec("step", "multiply the learning rate by gamma every step_epochs epochs", parameters: [
                ParameterSpec("step_epochs", .int, range: .closed(1, 1e6), default: .int(10)),
                ParameterSpec("gamma", .double, range: .unitExcludingZero, default: .double(0.1)),
            ]),
            PluginSpec("cosine", "cosine decay to min_learning_rate after warmup_epochs of linear warm-up", parameters: [
                ParameterSpec("min_learning_rate", .double, range: .nonNegative, default: .double(0)),
                ParameterSpec("warmup_epochs", .int, range: .closed(0, 1e6), default: .int(0)),
            ]),
        ]),
        clippingModes: PluginRegistry(kind: "clipping mode", [
            PluginSpec("flat", "clip the whole per-example gradient to clipping_norm (Abadi et al. 2016)"),
            PluginSpec("per-layer", "clip each layer's gradient to its own threshold; the thresholds' l2 norm is clipping_norm", parameters: [
                ParameterSpec("layer_norms", .doubleList, range: .positive, "thresholds per layer; default clipping_norm / sqrt(layers) each"),
            ]),
            PluginSpec("automatic", "normalise per-example gradients: g C / (‖g‖ + stability) (Bu et al. 2022)", parameters: [
                ParameterSpec("stability", .double, range: .positive, default: .double(0.01)),
            ]),
            PluginSpec("adaptive", "adapt clipping_norm to a quantile of gradient norms (Andrew et al. 2021); the private quantile estimate spends budget", parameters: [
                ParameterSpec("target_quantile", .double, range: .openUnit, default: .double(0.5)),
                ParameterSpec("learning_rate", .double, range: .positive, default: .double(0.2), "geometric update rate of the norm"),
                ParameterSpec("count_noise_multiplier", .double, range: .positive, "noise on the clipped count; default expected_batch_size / 20"),
            ]),
        ]),
        accountants: PluginRegistry(kind: "accountant", [
            PluginSpec("rdp", "Renyi DP (Mironov 2017; Mironov, Talwar & Zhang 2019)"),
            PluginSpec("pld", "privacy loss distributions with lower and upper bounds (Koskela et al. 2020; Doroshenko et al. 2022)"),
            PluginSpec("both", "RDP and PLD side by side"),
        ]),
        samplers: PluginRegistry(kind: "sampling method", [
            PluginSpec("poisson", "each example joins each batch independently with probability q"),
            PluginSpec("fixed-size", "each step draws a fresh uniformly random batch of exactly expected_batch_size examples (sampling without replacement; replace-one neighbouring; RDP accountant)"),
        ]))
}

// MARK: - Reference

extension PluginRegistries {
    /// Every registry as (title, registry), in the order of the config file.
    public var all: [(title: String, registry: PluginRegistry)] {
        [
            ("Datasets (`dataset.name`, options in `dataset.options`)", datasets),
            ("Models (`model.name`, options in `model.options`)", models),
            ("Layer types (`model.layers[].type`, parameters beside `type`)", layers),
            ("Optimizers (`optimizer.name`, parameters beside `name`)", optimizers),
            ("Learning-rate schedules (`optimizer.schedule.name`, options in `optimizer.schedule.options`)", schedules),
            ("Clipping modes (`privacy.clipping`, options in `privacy.clipping_options`)", clippingModes),
            ("Accountants (`privacy.accountant`, `accounting.accountant`)", accountants),
            ("Sampling methods (`privacy.sampling`)", samplers),
        ]
    }

    /// A markdown reference of every plugin and parameter (pasted into docs/experiments.md).
    public func referenceMarkdown() -> String {
        var out = ""
        for (title, registry) in all {
            out += "#### \(title)\n\n| name | parameters | description |\n|---|---|---|\n"
            for plugin in registry.plugins {
                let parameters = plugin.parameters.map { p -> String in
                    var text = "`\(p.name)`: \(p.allowedDescription)"
                    if let d = p.defaultValue { text += ", default `\(d.displayText)`" }
                    if p.required { text += ", required" }
                    if !p.summary.isEmpty { text += " (\(p.summary))" }
                    return text
                }
                let description = plugin.summary + (plugin.requiresPath ? "; requires `dataset.path`" : "")
                out += "| `\(plugin.name)` | \(parameters.isEmpty ? "–" : parameters.joined(separator: "; ")) | \(description) |\n"
            }
            for (name, reason) in registry.refused.sorted(by: { $0.key < $1.key }) {
                out += "| `\(name)` | refused | \(reason) |\n"
            }
            out += "\n"
        }
        return out
    }
}
