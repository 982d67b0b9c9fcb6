import DPSchema

// The names and parameter schemas of DP-SGD's choices: samplers, clipping modes and
// accountants. Configs (`privacy.sampling`, `privacy.clipping`, `privacy.accountant`), the CLI
// (`--sampling`, `--accountant`) and the plugin reference read these; parsing turns a name
// into the typed value here once.

// MARK: - Samplers

extension SamplingScheme {
    /// `privacy.sampling`: one entry per case, spelt as its raw value.
    public static let schema = PluginRegistry(
        kind: "sampling method",
        allCases.map { scheme in
            switch scheme {
            case .poisson:
                return PluginSpec(scheme.rawValue, "each example joins each batch independently with probability q")
            case .fixedSize:
                return PluginSpec(
                    scheme.rawValue,
                    "each step draws a fresh uniformly random batch of exactly expected_batch_size examples (sampling without replacement; replace-one neighbouring; RDP accountant)"
                )
            }
        })
}

// MARK: - Clipping modes

extension ClippingMode {
    /// `privacy.clipping`, options in `privacy.clipping_options`.
    public static let schema = PluginRegistry(
        kind: "clipping mode",
        [
            PluginSpec("flat", "clip the whole per-example gradient to clipping_norm (Abadi et al. 2016)"),
            PluginSpec(
                "per-layer",
                "clip each layer's gradient to its own threshold; the thresholds' l2 norm is clipping_norm",
                parameters: [
                    ParameterSpec(
                        "layer_norms", .doubleList, range: .positive,
                        "thresholds per layer; default clipping_norm / sqrt(layers) each")
                ]),
            PluginSpec(
                "automatic", "normalise per-example gradients: g C / (‖g‖ + stability) (Bu et al. 2022)",
                parameters: [
                    ParameterSpec("stability", .double, range: .positive, default: .double(0.01))
                ]),
            PluginSpec(
                "adaptive",
                "adapt clipping_norm to a quantile of gradient norms (Andrew et al. 2021); the private quantile estimate spends budget",
                parameters: [
                    ParameterSpec("target_quantile", .double, range: .openUnit, default: .double(0.5)),
                    ParameterSpec(
                        "learning_rate", .double, range: .positive, default: .double(0.2),
                        "geometric update rate of the norm"),
                    ParameterSpec(
                        "count_noise_multiplier", .double, range: .positive,
                        "noise on the clipped count; default expected_batch_size / 20"),
                ]),
        ])

    /// The mode named `name` with its `parameters` (defaults filled in from ``schema``); nil for
    /// a name the schema does not list. `expectedBatchSize` gives adaptive clipping's default
    /// count noise, `expectedBatchSize / 20`.
    public init?(name: String, parameters given: [String: ConfigValue], expectedBatchSize: Int) {
        guard let spec = Self.schema.plugin(named: name) else { return nil }
        let p = Parameters(spec, given)
        switch name {
        case "flat": self = .flat
        case "per-layer": self = .perLayer(thresholds: p.optionalDoubleList("layer_norms"))
        case "automatic": self = .automatic(stability: p.double("stability"))
        case "adaptive":
            self = .adaptive(
                targetQuantile: p.double("target_quantile"), learningRate: p.double("learning_rate"),
                countNoiseMultiplier: p.optionalDouble("count_noise_multiplier") ?? Double(expectedBatchSize) / 20)
        default: return nil
        }
    }
}

// MARK: - Accountants

extension AccountantKind {
    /// `privacy.accountant` and `accounting.accountant`: one accountant, or `both`.
    public static let schema = PluginRegistry(
        kind: "accountant",
        [
            PluginSpec("rdp", "Renyi DP (Mironov 2017; Mironov, Talwar & Zhang 2019)"),
            PluginSpec(
                "pld",
                "privacy loss distributions with lower and upper bounds (Koskela et al. 2020; Doroshenko et al. 2022)"),
            PluginSpec("both", "RDP and PLD side by side"),
        ])

    /// The accountants a schema name selects (`both` is RDP and PLD); nil for an unknown name.
    public static func selection(named name: String) -> [AccountantKind]? {
        name == "both" ? [.rdp, .pld] : AccountantKind(rawValue: name).map { [$0] }
    }

    /// The schema name of `selection`: `rdp`, `pld` or `both`.
    public static func name(of selection: [AccountantKind]) -> String {
        selection.count == 1 ? selection[0].rawValue : "both"
    }

    /// The accountant a target epsilon is calibrated with and enforced by, for `selection`:
    /// PLD when PLD alone is asked for, RDP otherwise.
    public static func budgetAccountant(of selection: [AccountantKind]) -> AccountantKind {
        selection == [.pld] ? .pld : .rdp
    }
}

// MARK: - Optimizers

/// `optimizer.name`: the optimizers by name, with their parameters (beside `name` in configs).
public enum OptimizerKind: String, CaseIterable, Sendable {
    case sgd, momentum, adam

    public static let schema = PluginRegistry(
        kind: "optimizer",
        [
            PluginSpec(
                "sgd", "stochastic gradient descent (heavy-ball momentum when momentum > 0)",
                parameters: [
                    ParameterSpec("momentum", .double, range: .halfOpenUnit, default: .double(0)),
                    ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
                ]),
            PluginSpec(
                "momentum", "SGD with heavy-ball momentum",
                parameters: [
                    ParameterSpec("momentum", .double, range: .halfOpenUnit, default: .double(0.9)),
                    ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
                ]),
            PluginSpec(
                "adam", "Adam (Kingma & Ba 2015)",
                parameters: [
                    ParameterSpec(
                        "betas", .doubleList, range: .halfOpenUnit, count: 2,
                        default: .list([.double(0.9), .double(0.999)])),
                    ParameterSpec("weight_decay", .double, range: .nonNegative, default: .double(0)),
                ]),
        ])

    /// This optimizer at `learningRate` with `parameters` (defaults filled in from ``schema``).
    public func make(learningRate: Double, parameters given: [String: ConfigValue]) -> Optimizer {
        let p = Parameters(Self.schema.plugin(named: rawValue) ?? PluginSpec(rawValue), given)
        switch self {
        case .sgd, .momentum:
            return SGD(
                learningRate: learningRate, momentum: p.double("momentum"), weightDecay: p.double("weight_decay"))
        case .adam:
            let b = p.optionalDoubleList("betas") ?? [0.9, 0.999]
            return Adam(learningRate: learningRate, beta1: b[0], beta2: b[1], weightDecay: p.double("weight_decay"))
        }
    }
}

// MARK: - Learning-rate schedules

extension LearningRateSchedule {
    /// `optimizer.schedule.name`, options in `optimizer.schedule.options`.
    public static let schema = PluginRegistry(
        kind: "learning-rate schedule",
        [
            PluginSpec("constant"),
            PluginSpec(
                "step", "multiply the learning rate by gamma every step_epochs epochs",
                parameters: [
                    ParameterSpec("step_epochs", .int, range: .closed(1, 1e6), default: .int(10)),
                    ParameterSpec("gamma", .double, range: .unitExcludingZero, default: .double(0.1)),
                ]),
            PluginSpec(
                "cosine", "cosine decay to min_learning_rate after warmup_epochs of linear warm-up",
                parameters: [
                    ParameterSpec("min_learning_rate", .double, range: .nonNegative, default: .double(0)),
                    ParameterSpec("warmup_epochs", .int, range: .closed(0, 1e6), default: .int(0)),
                ]),
        ])

    /// The schedule named `name` with `parameters` (defaults filled in from ``schema``), in steps
    /// of a run of `totalSteps` with `stepsPerEpoch`; nil for a name the schema does not list.
    public init?(
        name: String, parameters given: [String: ConfigValue], learningRate: Double, stepsPerEpoch: Int,
        totalSteps: Int
    ) {
        guard let spec = Self.schema.plugin(named: name) else { return nil }
        let p = Parameters(spec, given)
        switch name {
        case "constant": self = .constant
        case "step": self = .step(everySteps: p.int("step_epochs") * stepsPerEpoch, factor: p.double("gamma"))
        case "cosine":
            let minimum = p.double("min_learning_rate")
            self = .cosine(
                totalSteps: totalSteps, minimumFactor: learningRate > 0 ? minimum / learningRate : 0,
                warmupSteps: min(p.int("warmup_epochs") * stepsPerEpoch, totalSteps))
        default: return nil
        }
    }
}
