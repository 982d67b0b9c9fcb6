import DPAuditing
import DPFederated
import DPTraining

/// `federated:` section: the run is federated learning over `clients` clients (DPFederated)
/// instead of centralised DP-SGD.
///
/// The other sections keep their meaning where it carries over: `dataset` and `model` as usual;
/// `optimizer` (SGD only) is the clients' local optimizer; `training.expected_batch_size` is the
/// local batch size B and `training.epochs` the local epochs E (`training.eval_every` counts
/// rounds); `privacy` is user-level DP-FedAvg: `noise_multiplier` z, `clipping_norm` C (C_0 for
/// adaptive clipping), `clipping` (flat, per-layer, adaptive), `sampling` the client sampler
/// (poisson with q = clients_per_round / clients, or fixed-size), `delta`, `accountant`.
///
/// ```yaml
/// federated:
///   clients: 3000
///   partition: dirichlet        # iid | label-shards | dirichlet
///   alpha: 0.5                  # dirichlet only; shards_per_client for label-shards
///   rounds: 200
///   clients_per_round: 100
///   server: fedavg              # fedavg | fedavgm | fedadam, with server_learning_rate (and
///                               # server_momentum, or server_beta1/server_beta2/server_tau)
///   weighting: uniform          # uniform | examples (non-private only)
///   aggregator: mean            # mean | median | trimmed-mean (trim_fraction) | krum (byzantine, krum_selected)
///   attack: {fraction: 0.1, kind: backdoor, target: 0, patch_size: 3, poison_fraction: 0.5, boost: 1}
///   secure_aggregation: {scale_bits: 16, threshold_fraction: 0.6, dropout: 0, min_clients: 3}
/// ```
public struct FederatedConfig: Hashable, Sendable {
    public var clients: Int
    public var partition: PartitionScheme
    public var rounds: Int
    public var clientsPerRound: Int
    public var server: ServerOptimizer
    public var weighting: ClientWeighting
    public var aggregator: Aggregator
    public var attack: FederatedAttack?
    public var secureAggregation: SecureAggregationSettings?

    /// The runs.csv columns a federated run adds (``OutputSchema/derivedColumns(_:)``).
    public static let columns = [
        "rounds", "clients", "clients_per_round", "client_accuracy_p10", "client_accuracy_p50", "client_accuracy_p90",
        "backdoor_success_rate", "client_size_min", "client_size_max", "client_classes_mean", "rounds_per_second",
        "local_seconds_fraction",
    ]

    /// The library's configuration for `run`.
    public func configuration(_ c: RunConfig) -> FederatedConfiguration {
        var privacy: UserLevelPrivacy? = nil
        if c.privacy.enabled, let z = c.privacy.noiseMultiplier, let norm = c.privacy.clippingNorm {
            privacy = UserLevelPrivacy(noiseMultiplier: z, clippingNorm: norm, clipping: c.privacy.clipping)
        }
        return FederatedConfiguration(
            rounds: rounds, sampling: c.privacy.sampling, clientsPerRound: clientsPerRound,
            local: LocalTraining(
                epochs: c.training.epochs ?? 1, batchSize: c.training.expectedBatchSize,
                learningRate: c.optimizer.learningRate, momentum: c.optimizer.momentum),
            server: server, weighting: weighting, aggregator: aggregator, privacy: privacy,
            secureAggregation: secureAggregation, attack: attack, seed: UInt64(c.seed),
            randomness: c.privacy.secureRNG ? .secure : .seeded)
    }
}

// MARK: - Parsing

extension RunConfig {
    static func parseFederated(_ root: MapReader) throws -> FederatedConfig? {
        guard root.has("federated") else { return nil }
        let f = try root.section("federated")
        let clients = try f.requiredInt("clients", range: .closed(1, 1e7))
        let partition: PartitionScheme
        switch try f.requiredChoice("partition", ["iid", "label-shards", "dirichlet"], default: "iid") {
        case "label-shards":
            partition = .labelShards(
                shardsPerClient: try f.requiredInt("shards_per_client", range: .closed(1, 1e6), default: 2))
        case "dirichlet":
            partition = .dirichlet(
                alpha: try f.requiredDouble("alpha", range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6)))
        default: partition = .iid
        }
        let rounds = try f.requiredInt("rounds", range: .closed(1, 1e7))
        let perRound = try f.requiredInt("clients_per_round", range: .atLeast(1))
        if perRound > clients {
            throw f.error(
                "clients_per_round",
                "\(perRound) is more than the \(clients) clients; use at most \(clients) clients per round")
        }
        let server: ServerOptimizer
        let lr = try f.requiredDouble("server_learning_rate", range: .positive, default: 1)
        switch try f.requiredChoice("server", ["fedavg", "fedavgm", "fedadam"], default: "fedavg") {
        case "fedavgm":
            server = .fedAvgM(
                learningRate: lr, momentum: try f.requiredDouble("server_momentum", range: .halfOpenUnit, default: 0.9))
        case "fedadam":
            server = .fedAdam(
                learningRate: lr, beta1: try f.requiredDouble("server_beta1", range: .halfOpenUnit, default: 0.9),
                beta2: try f.requiredDouble("server_beta2", range: .halfOpenUnit, default: 0.99),
                epsilon: try f.requiredDouble("server_tau", range: .positive, default: 1e-3))
        default: server = .fedAvg(learningRate: lr)
        }
        let weighting = try f.requiredCase("weighting", default: ClientWeighting.uniform)
        let aggregator: Aggregator
        switch try f.requiredChoice("aggregator", ["mean", "median", "trimmed-mean", "krum"], default: "mean") {
        case "median": aggregator = .median
        case "trimmed-mean":
            aggregator = .trimmedMean(
                beta: try f.requiredDouble("trim_fraction", range: .closed(0, 0.4999), default: 0.1))
        case "krum":
            aggregator = .krum(
                byzantine: try f.requiredInt("byzantine", range: .atLeast(0), default: 1),
                selected: try f.requiredInt("krum_selected", range: .atLeast(1), default: 1))
        default: aggregator = .mean
        }
        var attack: FederatedAttack? = nil
        if f.has("attack") {
            let a = try f.section("attack")
            let fraction = try a.requiredDouble("fraction", range: .halfOpenUnit)
            let kind: AttackKind
            switch try a.requiredChoice("kind", ["label-flipping", "backdoor", "update-scaling"]) {
            case "label-flipping":
                kind = .labelFlipping(
                    source: try a.int("source", range: .atLeast(0)),
                    target: try a.requiredInt("target", range: .atLeast(0), default: 0))
            case "backdoor":
                kind = .backdoor(
                    trigger: BackdoorTrigger(size: try a.requiredInt("patch_size", range: .atLeast(1), default: 3)),
                    target: try a.requiredInt("target", range: .atLeast(0), default: 0),
                    fraction: try a.requiredDouble(
                        "poison_fraction", range: ValueRange(lower: 0, lowerInclusive: false, upper: 100), default: 0.5)
                )
            default:
                kind = .updateScaling(factor: try a.requiredDouble("factor", range: .closed(-1e6, 1e6), default: 10))
            }
            let boost = try a.requiredDouble("boost", range: .closed(-1e6, 1e6), default: 1)
            try a.finish()
            f.close(a, as: "attack")
            attack = FederatedAttack(maliciousFraction: fraction, kind: kind, boost: boost)
        }
        var secure: SecureAggregationSettings? = nil
        if f.has("secure_aggregation") {
            let s = try f.section("secure_aggregation")
            secure = SecureAggregationSettings(
                scaleBits: try s.requiredInt("scale_bits", range: .closed(0, 30), default: 16),
                thresholdFraction: try s.requiredDouble("threshold_fraction", range: .unitExcludingZero, default: 0.6),
                dropoutProbability: try s.requiredDouble("dropout", range: .halfOpenUnit, default: 0),
                minimumClients: try s.requiredInt("min_clients", range: .closed(1, 1e7), default: 3))
            try s.finish()
            f.close(s, as: "secure_aggregation")
        }
        try f.finish()
        root.close(f, as: "federated")
        return FederatedConfig(
            clients: clients, partition: partition, rounds: rounds, clientsPerRound: perRound, server: server,
            weighting: weighting, aggregator: aggregator, attack: attack, secureAggregation: secure)
    }

    /// What a federated run cannot combine with, checked once the other sections are parsed.
    static func checkFederated(_ f: FederatedConfig, config c: RunConfig, context: ParseContext) throws {
        func refuse(_ path: String, _ why: String) -> ConfigError { context.error(path, why) }
        if c.training.steps != nil || c.training.epochs == nil {
            throw refuse(
                "training.steps",
                "a federated run counts rounds (`federated.rounds`); `training.epochs` is the local epochs E, give it instead of `training.steps`"
            )
        }
        if c.training.adversarial != nil { throw refuse("training.adversarial", "is not available in federated runs") }
        if c.optimizer.kind == .adam {
            throw refuse(
                "optimizer.name",
                "the clients' local optimizer is SGD (with momentum); the server optimizer is `federated.server`")
        }
        if c.audit != nil || c.evaluation != nil || c.poisoning != nil {
            throw refuse(
                c.audit != nil ? "audit" : c.evaluation != nil ? "evaluation" : "poisoning",
                "is not available in federated runs (attacks on federated training: `federated.attack`)")
        }
        switch c.dataset.normalize {
        case .standardize, .privateStandardize:
            throw refuse(
                "dataset.normalize",
                "`\(c.dataset.normalize.name)` fits statistics on the pooled training set, which a federated server never holds (and `private-standardize` is accounted per example, not per user); use `none`, `fixed` or `per-example`"
            )
        default: break
        }
        if c.privacy.enabled {
            if c.privacy.targetEpsilon != nil {
                throw refuse(
                    "privacy.target_epsilon",
                    "federated runs take `privacy.noise_multiplier` (user-level z); calibrate it with `dpkit calibrate --sampling-probability q --steps rounds`"
                )
            }
            if c.privacy.noiseMultiplier == 0 {
                throw refuse(
                    "privacy.noise_multiplier",
                    "must be > 0 in a private federated run (set `privacy.enabled: false` for the non-private control)")
            }
            if case .automatic = c.privacy.clipping {
                throw refuse(
                    "privacy.clipping",
                    "automatic clipping is a per-example rule; use flat, per-layer or adaptive for user updates")
            }
        }
        do {
            try f.configuration(c).validate(clientCount: f.clients)
        } catch let e as FederatedError {
            throw refuse("federated", e.description)
        } catch let e as TrainingError {
            throw refuse("privacy", e.description)
        }
    }
}
