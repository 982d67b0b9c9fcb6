import DPAccounting
import DPTensor
import DPTraining
import Foundation

// MARK: - Settings

/// User-level DP-FedAvg (McMahan, Ramage, Talwar and Zhang 2018, "Learning differentially private
/// recurrent language models"): every sampled client's whole update is clipped, the clipped
/// updates are summed with uniform weights, Gaussian noise is added once, and the sum is divided
/// by the *expected* number of clients per round (a fixed denominator: the realised count
/// depends on whether one user took part).
///
/// The clipping modes are DP-SGD's (``DPTraining/ClippingMode``), applied to a client's update
/// instead of an example's gradient:
/// - `.flat`: the whole update to `C`;
/// - `.perLayer(thresholds:)`: trainable layer `l` to `C_l` (`C / sqrt(L)` each when nil), so the
///   whole update stays within `C` and the sensitivity is unchanged;
/// - `.adaptive(targetQuantile:learningRate:countNoiseMultiplier:)`: Andrew et al. 2021 exactly
///   as DP-SGD does it (``DPTraining/AdaptiveClipping``): each client reports
///   `b_i = 1[||Delta_i|| <= C_t]`; the server releases the *centred* noisy count
///   `sum (b_i - 1/2) + N(0, sigma_b^2)` (sensitivity 1/2 under add/remove-one user, 1 under
///   replace-one) and moves `C_{t+1} = C_t exp(-eta (b~ / m + 1/2 - gamma))`; the update's noise
///   in round `t` is `z_Delta C_t` with the norm the clients clipped to, and the accounted total
///   `z` is split as `z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)` (refused unless `sigma_b > z / 2`).
/// `.automatic` is refused (it is a per-example rule of Bu et al. 2023, not studied for users).
///
/// The privacy unit is the user (all of a client's examples); the neighbouring relation is
/// add/remove-one user for Poisson client sampling and replace-one user for fixed-size sampling.
public struct UserLevelPrivacy: Hashable, Sendable {
    /// `z`: the round's total noise multiplier, the one accounted (for adaptive clipping it is
    /// split between the update and the count).
    public var noiseMultiplier: Double
    /// `C` (the first round's `C_0` under adaptive clipping).
    public var clippingNorm: Double
    public var clipping: ClippingMode

    public init(noiseMultiplier: Double, clippingNorm: Double, clipping: ClippingMode = .flat) {
        self.noiseMultiplier = noiseMultiplier
        self.clippingNorm = clippingNorm
        self.clipping = clipping
    }

    /// The multiplier on `C_t` of the update's noise standard deviation (`z` but for adaptive
    /// clipping, DP-SGD's split).
    /// - Throws: ``DPTraining/TrainingError/invalidSetting(_:)`` when the count noise is too small.
    public func updateNoiseMultiplier() throws -> Double {
        try clipping.gradientNoiseMultiplier(accounted: noiseMultiplier)
    }

    func validate(layers: Int? = nil) throws {
        guard noiseMultiplier > 0, noiseMultiplier.isFinite else {
            throw FederatedError(
                "user-level noise multiplier \(noiseMultiplier) must be finite and > 0 (set privacy.enabled: false for non-private FedAvg)"
            )
        }
        guard clippingNorm > 0, clippingNorm.isFinite else {
            throw FederatedError("user-level clipping norm \(clippingNorm) must be finite and > 0")
        }
        switch clipping {
        case .automatic:
            throw FederatedError(
                "automatic clipping is a per-example rule; clip user updates with flat, per-layer or adaptive clipping")
        case .perLayer(let t?):
            let l2 = t.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard Swift.abs(l2 - clippingNorm) <= 1e-9 * max(1, clippingNorm), t.allSatisfy({ $0 > 0 }) else {
                throw FederatedError(
                    "per-layer thresholds \(t) have l2 norm \(l2), but the noise is calibrated to the clipping norm \(clippingNorm): they must agree"
                )
            }
            if let layers, layers != t.count {
                throw FederatedError(
                    "per-layer clipping gives \(t.count) thresholds for a model with \(layers) trainable layers")
            }
        case .adaptive(let gamma, let eta, _):
            guard gamma > 0, gamma < 1, eta > 0, eta.isFinite else {
                throw FederatedError(
                    "adaptive clipping: target quantile \(gamma) must be in (0, 1) and learning rate \(eta) > 0")
            }
        default: break
        }
        _ = try updateNoiseMultiplier()
    }

    /// The privacy event of one round under `sampling` (the one rule of DP-SGD,
    /// ``SamplingScheme/stepEvent(samplingProbability:batchSize:datasetSize:noiseMultiplier:)``,
    /// with clients for examples): Poisson with `q = m / N`, or `m` of `N` without replacement.
    public func roundEvent(sampling: SamplingScheme, clientsPerRound m: Int, clientCount n: Int) -> DpEvent {
        sampling.stepEvent(
            samplingProbability: Double(m) / Double(n), batchSize: m, datasetSize: n,
            noiseMultiplier: noiseMultiplier)
    }

    /// Per-layer thresholds for `layers` trainable layers, nil for flat clipping at `norm`.
    func layerThresholds(norm c: Double, layers: Int) -> [Double]? {
        guard case .perLayer(let t) = clipping else { return nil }
        return t ?? Array(repeating: c / Double(layers).squareRoot(), count: layers)
    }
}

// MARK: - Flat updates

/// Where each trainable layer's parameters sit in a flattened update (`model.parameters` order).
public struct UpdateLayout: Hashable, Sendable {
    /// One range per trainable layer.
    public let layerRanges: [Range<Int>]
    public var count: Int { layerRanges.last?.upperBound ?? 0 }

    public init(layerRanges: [Range<Int>]) { self.layerRanges = layerRanges }

    /// One range covering `count` scalars (flat clipping only).
    public init(count: Int) { self.layerRanges = [0..<count] }
}

/// Clipping of one client's update: the unclipped norm and the factor applied.
public struct ClipResult: Hashable, Sendable {
    /// `||Delta_i||`, the whole update's L2 norm before clipping (what the count `b_i` compares
    /// with `C_t`).
    public var norm: Double
    /// Whether `||Delta_i|| <= C_t`.
    public var unclipped: Bool
}

public enum UpdateClipping {
    /// Clips `update` in place: to total norm `norm` (flat, `thresholds` nil) or each layer `l`
    /// to `thresholds[l]` (per layer).
    @discardableResult
    public static func clip(
        _ update: inout [Float], norm c: Double, layout: UpdateLayout, thresholds: [Double]?
    ) -> ClipResult {
        precondition(
            update.count == layout.count,
            "UpdateClipping: update of \(update.count) scalars for a layout of \(layout.count)")
        var total = 0.0
        var layerNorms: [Double] = []
        for r in layout.layerRanges {
            var s = 0.0
            for j in r { s += Double(update[j]) * Double(update[j]) }
            layerNorms.append(s.squareRoot())
            total += s
        }
        let norm = total.squareRoot()
        guard norm.isFinite else {
            // A non-finite update cannot be bounded: it is replaced by zeros (the client's
            // contribution is dropped, which clipping to norm 0 also allows).
            for j in update.indices { update[j] = 0 }
            return ClipResult(norm: norm, unclipped: false)
        }
        if let thresholds {
            precondition(
                thresholds.count == layout.layerRanges.count,
                "UpdateClipping: \(thresholds.count) thresholds for \(layout.layerRanges.count) layers")
            for (l, r) in layout.layerRanges.enumerated() where layerNorms[l] > thresholds[l] {
                scale(&update, r, to: thresholds[l], from: layerNorms[l])
            }
        } else if norm > c {
            scale(&update, update.indices, to: c, from: norm)
        }
        return ClipResult(norm: norm, unclipped: norm <= c)
    }

    /// Scales `update[range]` (of norm `norm > c`) so that its norm, computed in `Double` from
    /// the rounded `Float` values, is at most `c`: `Float(c / norm)` can round up and each
    /// product rounds, leaving the norm at `c (1 + 1e-7)`; the factor is stepped down until the
    /// bound holds (once or twice at most).
    static func scale(_ update: inout [Float], _ range: Range<Int>, to c: Double, from norm: Double) {
        let original = Array(update[range])
        var f = Float(c / norm)
        if Double(f) > c / norm { f = f.nextDown }
        while true {
            var s = 0.0
            for (j, v) in zip(range, original) {
                update[j] = v * f
                s += Double(update[j]) * Double(update[j])
            }
            if s.squareRoot() <= c || f == 0 { return }
            f = f.nextDown
        }
    }
}

// MARK: - The mechanism

/// Gaussian noise for the server: seeded Philox (reproducible) or the OS generator.
public struct NoiseSource: Sendable {
    public let randomness: RandomnessSource
    var rng: PhiloxRandom

    public init(randomness: RandomnessSource, seed: UInt64, stream: UInt64 = 0xfed_0015e) {
        self.randomness = randomness
        self.rng = PhiloxRandom(seed: seed, stream: stream)
    }

    /// Adds `N(0, sd^2)` to every element.
    public mutating func addNoise(to x: inout [Double], standardDeviation sd: Double) {
        guard sd > 0, !x.isEmpty else { return }
        var z = [Double](repeating: 0, count: x.count)
        z.withUnsafeMutableBufferPointer { p in
            if randomness == .secure {
                var s = SystemRandom()
                s.fillNormal(p)
            } else {
                rng.fillNormal(p)
            }
        }
        for j in x.indices { x[j] += sd * z[j] }
    }

    public mutating func normal() -> Double {
        var x = [0.0]
        addNoise(to: &x, standardDeviation: 1)
        return x[0]
    }
}

/// What one DP-FedAvg round released besides the model update.
public struct PrivateRoundReport: Hashable, Sendable {
    /// `C_t`, the norm used this round (the update's noise is calibrated to it).
    public var clippingNorm: Double
    /// The standard deviation of the noise added to the summed update, `z_Delta C_t`.
    public var noiseStandardDeviation: Double
    /// The noisy unclipped fraction `b~ / m + 1/2` (adaptive clipping only).
    public var noisyUnclippedFraction: Double?
    /// The true unclipped count (diagnostic; not released).
    public var unclippedCount: Int
    /// `C_{t+1}`.
    public var nextClippingNorm: Double
}

/// DP-FedAvg's server step, in named phases: clip each update, sum, add noise once, divide by the
/// expected number of clients; for adaptive clipping also the noisy centred unclipped count and
/// the geometric norm update (DP-SGD's, ``DPTraining/AdaptiveClipping``).
public struct DPFedAvgAggregator: Sendable {
    public let privacy: UserLevelPrivacy
    /// `m`: the expected clients per round (`q N` for Poisson, exactly `m` for fixed size).
    public let expectedClients: Double
    public let layout: UpdateLayout
    /// `C_t` of the next round.
    public private(set) var clippingNorm: Double
    let updateNoiseMultiplier: Double

    public init(privacy: UserLevelPrivacy, expectedClients: Double, layout: UpdateLayout) throws {
        try privacy.validate(layers: layout.layerRanges.count)
        guard expectedClients > 0 else {
            throw FederatedError("expected clients per round \(expectedClients) must be > 0")
        }
        self.privacy = privacy
        self.expectedClients = expectedClients
        self.layout = layout
        self.clippingNorm = privacy.clippingNorm
        self.updateNoiseMultiplier = try privacy.updateNoiseMultiplier()
    }

    /// The per-layer thresholds of this round (nil: flat).
    public var thresholds: [Double]? { privacy.layerThresholds(norm: clippingNorm, layers: layout.layerRanges.count) }

    /// Phase 1 (on each client, or on the server for the simulation): clip in place.
    public func clip(_ update: inout [Float]) -> ClipResult {
        UpdateClipping.clip(&update, norm: clippingNorm, layout: layout, thresholds: thresholds)
    }

    /// Phases 2 to 4 from the sum of the `clients` clipped updates and their true unclipped
    /// count (both may come out of secure aggregation): add `N(0, (z_Delta C_t)^2)` to each
    /// coordinate, divide by `m`; for adaptive clipping release the centred noisy count and move
    /// `C_t`.
    /// - Returns: the averaged noisy update and the round's report.
    public mutating func release(
        clippedSum: [Double], clients: Int, unclippedCount: Int, noise: inout NoiseSource
    ) -> (update: [Float], report: PrivateRoundReport) {
        var sum = clippedSum
        let c = clippingNorm
        let sd = updateNoiseMultiplier * c
        noise.addNoise(to: &sum, standardDeviation: sd)
        let update = sum.map { Float($0 / expectedClients) }
        var fraction: Double? = nil
        if case .adaptive(let gamma, let eta, let sigmaB) = privacy.clipping {
            let countNoise = sigmaB * noise.normal()
            fraction = (Double(unclippedCount) - Double(clients) / 2 + countNoise) / expectedClients + 0.5
            clippingNorm = AdaptiveClipping.nextClippingNorm(
                c, unclipped: unclippedCount, batchSize: clients, noise: countNoise, expectedBatchSize: expectedClients,
                targetQuantile: gamma, learningRate: eta)
        }
        return (
            update,
            PrivateRoundReport(
                clippingNorm: c, noiseStandardDeviation: sd, noisyUnclippedFraction: fraction,
                unclippedCount: unclippedCount, nextClippingNorm: clippingNorm)
        )
    }

    /// The whole round on plain updates: clip each, sum in `Double`, then ``release``.
    public mutating func aggregate(
        _ updates: [[Float]], noise: inout NoiseSource
    ) -> (update: [Float], report: PrivateRoundReport) {
        var sum = [Double](repeating: 0, count: layout.count)
        var unclipped = 0
        for var u in updates {
            if clip(&u).unclipped { unclipped += 1 }
            for j in sum.indices { sum[j] += Double(u[j]) }
        }
        return release(clippedSum: sum, clients: updates.count, unclippedCount: unclipped, noise: &noise)
    }
}
