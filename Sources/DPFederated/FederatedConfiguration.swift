import DPAccounting
import DPAuditing
import DPTraining
import Foundation

/// The server's optimizer, applied to the pseudo-gradient `-Delta` (minus the aggregated client
/// update). Each reuses DPKit's optimizers (`DPTraining`): Reddi et al. 2021, "Adaptive
/// federated optimization".
public enum ServerOptimizer: Hashable, Sendable, CustomStringConvertible {
    /// FedAvg (McMahan et al. 2017): `w += lr Delta`; `lr = 1` is plain model averaging.
    case fedAvg(learningRate: Double)
    /// FedAvgM (Hsu et al. 2019): SGD with heavy-ball momentum on `-Delta`.
    case fedAvgM(learningRate: Double, momentum: Double)
    /// FedAdam (Reddi et al. 2021): DPKit's Adam on `-Delta`. Unlike the paper's pseudo-code it
    /// keeps Adam's bias correction; `epsilon` is the paper's adaptivity `tau` (1e-3 there).
    case fedAdam(learningRate: Double, beta1: Double, beta2: Double, epsilon: Double)

    public var description: String {
        switch self {
        case .fedAvg(let lr): return "fedavg(lr \(lr))"
        case .fedAvgM(let lr, let mu): return "fedavgm(lr \(lr), momentum \(mu))"
        case .fedAdam(let lr, let b1, let b2, let e): return "fedadam(lr \(lr), betas \(b1)/\(b2), tau \(e))"
        }
    }

    func validate() throws {
        switch self {
        case .fedAvg(let lr):
            guard lr > 0, lr.isFinite else {
                throw FederatedError("server learning rate \(lr) must be finite and > 0 (1 for plain FedAvg)")
            }
        case .fedAvgM(let lr, let mu):
            guard lr > 0, lr.isFinite, mu >= 0, mu < 1 else {
                throw FederatedError("FedAvgM: server learning rate \(lr) must be > 0 and momentum \(mu) in [0, 1)")
            }
        case .fedAdam(let lr, let b1, let b2, let e):
            guard lr > 0, lr.isFinite, (0..<1).contains(b1), (0..<1).contains(b2), e > 0 else {
                throw FederatedError(
                    "FedAdam: server learning rate \(lr) > 0, betas (\(b1), \(b2)) in [0, 1), tau \(e) > 0")
            }
        }
    }

    func make() -> any Optimizer {
        switch self {
        case .fedAvg(let lr): return SGD(learningRate: lr)
        case .fedAvgM(let lr, let mu): return SGD(learningRate: lr, momentum: mu)
        case .fedAdam(let lr, let b1, let b2, let e): return Adam(learningRate: lr, beta1: b1, beta2: b2, epsilon: e)
        }
    }
}

/// How client updates are weighted in the mean.
public enum ClientWeighting: String, Hashable, Sendable, CaseIterable {
    /// Every sampled client counts the same (the only weighting DP-FedAvg allows).
    case uniform
    /// Client `k` counts `n_k / sum n` (FedAvg of McMahan et al. 2017). Refused under user-level
    /// DP: a client's weight, and the denominator, depend on its data, so the sensitivity is
    /// not `C` and the accountant's event would not describe the release.
    case examples
}

/// E local epochs of minibatch SGD on each sampled client (non-private locally: user-level DP
/// protects the whole update).
public struct LocalTraining: Hashable, Sendable {
    public var epochs: Int
    public var batchSize: Int
    public var learningRate: Double
    public var momentum: Double

    public init(epochs: Int = 1, batchSize: Int = 10, learningRate: Double = 0.1, momentum: Double = 0) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
    }
}

/// What malicious clients do.
public enum AttackKind: Hashable, Sendable, CustomStringConvertible {
    /// Every example of `source` (of every class but `target` when nil) relabelled `target`
    /// (``LabelFlipping`` of DPAuditing, fraction 1).
    case labelFlipping(source: Int?, target: Int)
    /// BadNets backdoor (``Backdoor`` of DPAuditing): `fraction` of the client's examples (of
    /// other classes) copied with the trigger stamped and labelled `target`, added to its data.
    case backdoor(trigger: BackdoorTrigger, target: Int, fraction: Double)
    /// The honest update multiplied by `factor` (model replacement, Bagdasaryan et al. 2020).
    case updateScaling(factor: Double)

    public var description: String {
        switch self {
        case .labelFlipping(let s, let t): return "label-flipping(\(s.map(String.init) ?? "all") -> \(t))"
        case .backdoor(let tr, let t, let f): return "backdoor(\(tr.size)x\(tr.size) patch -> \(t), fraction \(f))"
        case .updateScaling(let f): return "update-scaling(x\(f))"
        }
    }
}

/// A fraction of the clients, chosen once from the seed, attacks in every round it is sampled.
public struct FederatedAttack: Hashable, Sendable {
    public var maliciousFraction: Double
    public var kind: AttackKind
    /// Also scale the malicious update (boosting a backdoor or a flip); 1: no scaling.
    public var boost: Double

    public init(maliciousFraction: Double, kind: AttackKind, boost: Double = 1) {
        self.maliciousFraction = maliciousFraction
        self.kind = kind
        self.boost = boost
    }
}

/// Secure aggregation in each round (``SecureAggregation``), with the server adding the central
/// DP noise after unmasking.
public struct SecureAggregationSettings: Hashable, Sendable {
    /// `s`: updates are encoded as `round(x 2^s)` in `Z_2^32`.
    public var scaleBits: Int
    /// The threshold as a fraction of the round's clients (rounded up, at least a majority).
    public var thresholdFraction: Double
    /// Each sampled client drops out before sending its masked input with this probability.
    public var dropoutProbability: Double
    /// The fewest surviving inputs the server unmasks the sum of: the sum of one input is that
    /// input, and of two it is the other's for either of them. With fewer survivors (possible
    /// under Poisson sampling and dropouts) nothing is unmasked and the round releases noise
    /// only; the round is still composed. Default 3.
    ///
    /// Privacy: the rule makes a round's output depend on the survivor count, so adding one user
    /// can change it by more than `C` when exactly `k - 1` others survive. Conditioned on the
    /// other users' sampling and dropouts, each round is otherwise the subsampled Gaussian (or
    /// independent of the user), so the accounted epsilon holds at
    /// `delta + T P[Binomial(N - 1, q (1 - dropout)) = k - 1]` (joint convexity of the hockey-stick
    /// divergence over that randomness); ``FederatedConfiguration/warnings(clientCount:delta:)``
    /// states the extra term when it matters.
    public var minimumClients: Int

    public init(
        scaleBits: Int = 16, thresholdFraction: Double = 0.6, dropoutProbability: Double = 0, minimumClients: Int = 3
    ) {
        self.scaleBits = scaleBits
        self.thresholdFraction = thresholdFraction
        self.dropoutProbability = dropoutProbability
        self.minimumClients = minimumClients
    }

    func threshold(clients n: Int) -> Int { max(n / 2 + 1, Int(Foundation.ceil(thresholdFraction * Double(n)))) }
}

/// Everything a federated run needs besides the model, the data and the partition.
public struct FederatedConfiguration: Hashable, Sendable {
    public var rounds: Int
    /// Client sampling: Poisson (each client independently with `q = m / N`) or exactly `m`
    /// of `N` without replacement (DP-SGD's samplers, with clients for examples).
    public var sampling: SamplingScheme
    /// `m`: the (expected) clients per round.
    public var clientsPerRound: Int
    public var local: LocalTraining
    public var server: ServerOptimizer
    public var weighting: ClientWeighting
    public var aggregator: Aggregator
    /// User-level DP-FedAvg; nil for non-private training.
    public var privacy: UserLevelPrivacy?
    public var secureAggregation: SecureAggregationSettings?
    public var attack: FederatedAttack?
    public var seed: UInt64
    /// Where the client sample and the server's noise come from (``RandomnessSource``).
    public var randomness: RandomnessSource

    public init(
        rounds: Int, sampling: SamplingScheme = .poisson, clientsPerRound: Int, local: LocalTraining = LocalTraining(),
        server: ServerOptimizer = .fedAvg(learningRate: 1), weighting: ClientWeighting = .uniform,
        aggregator: Aggregator = .mean, privacy: UserLevelPrivacy? = nil,
        secureAggregation: SecureAggregationSettings? = nil, attack: FederatedAttack? = nil, seed: UInt64 = 0,
        randomness: RandomnessSource = .seeded
    ) {
        self.rounds = rounds
        self.sampling = sampling
        self.clientsPerRound = clientsPerRound
        self.local = local
        self.server = server
        self.weighting = weighting
        self.aggregator = aggregator
        self.privacy = privacy
        self.secureAggregation = secureAggregation
        self.attack = attack
        self.seed = seed
        self.randomness = randomness
    }

    /// Every check that does not need the data, for `clientCount` clients.
    /// - Throws: ``FederatedError`` naming the setting and the fix.
    public func validate(clientCount n: Int) throws {
        guard rounds >= 0 else { throw FederatedError("federated rounds = \(rounds) must be >= 0") }
        guard clientsPerRound >= 1 else { throw FederatedError("clients per round = \(clientsPerRound) must be >= 1") }
        guard clientsPerRound <= n else {
            throw FederatedError(
                "clients per round = \(clientsPerRound) is more than the \(n) clients: use at most \(n) clients per round, or more clients"
            )
        }
        guard local.epochs >= 1, local.batchSize >= 1, local.learningRate >= 0, local.learningRate.isFinite,
            local.momentum >= 0, local.momentum < 1
        else {
            throw FederatedError(
                "local training: epochs \(local.epochs) and batch size \(local.batchSize) must be >= 1, learning rate \(local.learningRate) >= 0, momentum \(local.momentum) in [0, 1)"
            )
        }
        try server.validate()
        if case .krum(let f, _) = aggregator, sampling == .poisson {
            throw FederatedError(
                "Krum needs the same number of updates every round (n >= 2f + 3 = \(2 * f + 3)): use fixed-size client sampling with it, not Poisson"
            )
        }
        if sampling == .fixedSize || aggregator != .mean { try aggregator.check(clients: clientsPerRound) }
        if let attack {
            guard attack.maliciousFraction >= 0, attack.maliciousFraction < 1 else {
                throw FederatedError("malicious fraction \(attack.maliciousFraction) must be in [0, 1)")
            }
            if !aggregator.isMean && attack.maliciousFraction >= 0.5 {
                throw FederatedError(
                    "malicious fraction \(attack.maliciousFraction) >= 1/2: \(aggregator) cannot tolerate a malicious majority (its breakdown point is below 1/2); lower the fraction"
                )
            }
            if case .krum(let f, _) = aggregator {
                let expected = Int(Foundation.ceil(attack.maliciousFraction * Double(clientsPerRound)))
                if expected > f {
                    throw FederatedError(
                        "Krum with f = \(f) but about \(expected) of the \(clientsPerRound) clients per round are malicious (fraction \(attack.maliciousFraction)): raise f to at least \(expected), keeping n >= 2f + 3"
                    )
                }
            }
            switch attack.kind {
            case .backdoor(_, _, let frac):
                guard frac > 0, frac.isFinite else { throw FederatedError("backdoor fraction \(frac) must be > 0") }
            case .updateScaling(let f):
                guard f.isFinite else { throw FederatedError("update scaling factor \(f) must be finite") }
            case .labelFlipping: break
            }
        }
        if let privacy {
            try privacy.validate()
            guard weighting == .uniform else {
                throw FederatedError(
                    "user-level DP needs uniform client weighting: with weights n_k / sum n a client's influence and the denominator depend on its data, so the sensitivity is not the clipping norm and no accountant here models the release; set weighting: uniform"
                )
            }
            guard aggregator.isMean else {
                throw FederatedError(
                    "user-level DP is accounted for the clipped sum (DP-FedAvg); \(aggregator) has a different sensitivity that no accountant here models; use the mean (clipping already bounds each client's influence)"
                )
            }
            if let s = secureAggregation, s.dropoutProbability > 0, sampling != .poisson {
                throw FederatedError(
                    "secure-aggregation dropouts with fixed-size client sampling: the round no longer uses exactly m clients, which the replace-one event does not model; use Poisson sampling (dropouts then only thin the sample) or no dropouts"
                )
            }
        }
        if let s = secureAggregation {
            guard privacy != nil else {
                throw FederatedError(
                    "secure aggregation needs a bound on every update for its fixed-point encoding: enable user-level DP (its clipping norm is the bound)"
                )
            }
            guard aggregator.isMean, weighting == .uniform else {
                throw FederatedError(
                    "secure aggregation hides individual updates, so the server can only form their uniform sum: \(aggregator) with \(weighting.rawValue) weighting cannot run on it"
                )
            }
            _ = try FixedPointEncoding(scaleBits: s.scaleBits)
            guard s.thresholdFraction > 0, s.thresholdFraction <= 1, s.dropoutProbability >= 0, s.dropoutProbability < 1
            else {
                throw FederatedError(
                    "secure aggregation threshold fraction \(s.thresholdFraction) must be in (0, 1], dropout probability \(s.dropoutProbability) in [0, 1)"
                )
            }
            guard s.minimumClients >= 1, s.minimumClients <= clientsPerRound else {
                throw FederatedError(
                    "secure aggregation minimum clients \(s.minimumClients) must be in 1...\(clientsPerRound) (clients per round): with fewer survivors a round releases noise only, so a minimum above the clients per round never trains"
                )
            }
        }
    }

    /// Warnings about settings that are valid but weaken a guarantee (printed with the plan):
    /// Krum's `f` exceeded in some rounds, trimmed mean trimming less than the malicious
    /// fraction, and the extra delta of secure aggregation's minimum survivor count.
    public func warnings(clientCount n: Int, delta: Double? = nil) -> [String] {
        var out: [String] = []
        if let attack, attack.maliciousFraction > 0 {
            let malicious = Int((attack.maliciousFraction * Double(n)).rounded())
            switch aggregator {
            case .krum(let f, _):
                // Fixed-size sampling (Krum refuses Poisson): m of N without replacement, so the
                // malicious count is hypergeometric.
                let p = Self.hypergeometricTail(population: n, successes: malicious, draws: clientsPerRound, above: f)
                if p > 0.01 {
                    out.append(
                        "Krum assumes at most f = \(f) malicious updates per round, but with \(malicious) malicious of \(n) clients and \(clientsPerRound) per round, P[more than \(f) are sampled] = \(String(format: "%.3g", p)) per round (\(String(format: "%.3g", 1 - pow(1 - p, Double(rounds)))) over \(rounds) rounds): raise f"
                    )
                }
            case .trimmedMean(let beta) where beta < attack.maliciousFraction:
                out.append(
                    "trimmed mean trims a fraction \(beta) from each end, below the malicious fraction \(attack.maliciousFraction): malicious values survive the trim in a typical round; raise trim_fraction above it"
                )
            default: break
            }
        }
        if privacy != nil, let s = secureAggregation, sampling == .poisson, let delta {
            let q = Double(clientsPerRound) / Double(n) * (1 - s.dropoutProbability)
            let extra = Double(rounds) * Self.binomialProbability(n - 1, q, s.minimumClients - 1)
            if extra > delta / 100 {
                out.append(
                    "secure aggregation's minimum of \(s.minimumClients) surviving clients adds up to \(String(format: "%.3g", extra)) to delta (T P[Binomial(N-1, q(1-dropout)) = \(s.minimumClients - 1)]): the epsilon holds at delta + \(String(format: "%.3g", extra)); sample more clients per round or lower min_clients"
                )
            }
        }
        return out
    }

    /// `P[X = k]` for `X ~ Binomial(n, p)`, in log space.
    static func binomialProbability(_ n: Int, _ p: Double, _ k: Int) -> Double {
        guard k >= 0, k <= n else { return 0 }
        if p <= 0 { return k == 0 ? 1 : 0 }
        if p >= 1 { return k == n ? 1 : 0 }
        let logC = lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
        return exp(logC + Double(k) * log(p) + Double(n - k) * log1p(-p))
    }

    /// `P[X > f]` for `X` the number of successes in `draws` draws without replacement from a
    /// population of `population` with `successes` successes.
    static func hypergeometricTail(population n: Int, successes k: Int, draws m: Int, above f: Int) -> Double {
        func logChoose(_ a: Int, _ b: Int) -> Double {
            lgamma(Double(a + 1)) - lgamma(Double(b + 1)) - lgamma(Double(a - b + 1))
        }
        var p = 0.0
        if f + 1 <= min(k, m) {
            for x in (f + 1)...min(k, m) where m - x <= n - k {
                p += exp(logChoose(k, x) + logChoose(n - k, m - x) - logChoose(n, m))
            }
        }
        return min(1, p)
    }

    /// The privacy event of one round (nil without DP).
    public func roundEvent(clientCount n: Int) -> DpEvent? {
        privacy?.roundEvent(sampling: sampling, clientsPerRound: clientsPerRound, clientCount: n)
    }
}
