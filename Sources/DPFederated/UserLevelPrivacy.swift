import DPAccounting
import DPTensor
import DPTraining
import Foundation

// MARK: - Settings

/// How each sampled client's update is bounded before it is summed.
public enum ClientClipping: Hashable, Sendable {
    /// A fixed clipping norm `C` for every round.
    case fixed(norm: Double)
    /// The norm adapts to a quantile of the update norms (``AdaptiveClipping``).
    case adaptive(AdaptiveClipping)

    /// The clipping norm of the first round.
    public var initialNorm: Double {
        switch self {
        case .fixed(let c): return c
        case .adaptive(let a): return a.initialNorm
        }
    }
}

/// Adaptive clipping of Andrew, Thakkar, McMahan and Ramaswamy 2021 ("Differentially private
/// learning with adaptive clipping", Algorithm 1 and Theorem 1).
///
/// In round `t`, with clipping norm `C_t` (the one every client clips to and the update noise is
/// calibrated to):
/// - each sampled client reports `b_i = 1[||Delta_i|| <= C_t]` (its unclipped update's norm);
/// - the server releases `b~ = (sum_i b_i + N(0, sigma_b^2)) / m`, `m` the expected number of
///   clients per round (the fixed denominator, as for the update);
/// - the next norm is the geometric update `C_{t+1} = C_t exp(-eta_C (b~ - gamma))`: when more
///   than the target fraction `gamma` is unclipped the norm shrinks, when fewer it grows.
///
/// Privacy: the count is released with the centred values `b_i - 1/2` in {-1/2, 1/2}, so its
/// sensitivity is 1/2 under add/remove-one user (a shift by the public `m/2` changes nothing),
/// and its noise multiplier is `sigma_b / (1/2) = 2 sigma_b`. The update (sensitivity `C_t`,
/// noise `z_Delta C_t`) and the count run on the same sample, so together they are one Gaussian
/// mechanism with multiplier `(z_Delta^-2 + (2 sigma_b)^-2)^(-1/2)`. DPKit accounts the
/// configured total multiplier `z` and derives the update's:
/// `z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`, which requires `2 sigma_b > z`. Under
/// replace-one (fixed-size client sampling) both sensitivities double (1 and `2 C_t`), which
/// halves both multipliers and the total alike, so the same `z_Delta` is accounted as
/// `z / 2` there, exactly as DP-SGD's fixed-size batches are.
public struct AdaptiveClipping: Hashable, Sendable {
    /// `C_0`.
    public var initialNorm: Double
    /// `gamma`, the target fraction of unclipped updates (0.5 for the median).
    public var targetQuantile: Double
    /// `eta_C`, the geometric learning rate (0.2 in the paper).
    public var learningRate: Double
    /// `sigma_b`, the standard deviation of the noise on the unclipped count (the paper uses
    /// `m / 20`: the noisy fraction is then within about 0.05 of the truth).
    public var countNoise: Double

    public init(initialNorm: Double, targetQuantile: Double = 0.5, learningRate: Double = 0.2, countNoise: Double) {
        self.initialNorm = initialNorm
        self.targetQuantile = targetQuantile
        self.learningRate = learningRate
        self.countNoise = countNoise
    }

    /// `z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`, the update's noise multiplier that makes the
    /// round (update and count) a Gaussian mechanism with multiplier `z`.
    /// - Throws: ``FederatedError`` when `2 sigma_b <= z` (the count alone would spend more than
    ///   the whole budget), naming the smallest count noise that works.
    public func updateNoiseMultiplier(total z: Double) throws -> Double {
        guard z > 0, z.isFinite else {
            throw FederatedError("user-level noise multiplier \(z) must be finite and > 0 for adaptive clipping")
        }
        guard countNoise > 0, 2 * countNoise > z else {
            throw FederatedError(
                "adaptive clipping count noise \(countNoise) is too small for noise multiplier \(z): the unclipped count alone would use the whole budget; it must exceed z / 2 = \(z / 2) (the paper uses expected clients / 20)"
            )
        }
        return 1 / (1 / (z * z) - 1 / (4 * countNoise * countNoise)).squareRoot()
    }

    /// The next clipping norm from the released unclipped fraction (post-processing).
    public func nextNorm(current: Double, noisyUnclippedFraction bTilde: Double) -> Double {
        current * Foundation.exp(-learningRate * (bTilde - targetQuantile))
    }

    func validate() throws {
        guard initialNorm > 0, initialNorm.isFinite else {
            throw FederatedError("adaptive clipping initial norm \(initialNorm) must be finite and > 0")
        }
        guard targetQuantile > 0, targetQuantile < 1 else {
            throw FederatedError("adaptive clipping target quantile \(targetQuantile) must be in (0, 1)")
        }
        guard learningRate > 0, learningRate.isFinite else {
            throw FederatedError("adaptive clipping learning rate \(learningRate) must be finite and > 0 (0.2 in the paper)")
        }
    }
}

/// User-level DP-FedAvg (McMahan, Ramage, Talwar and Zhang 2018, "Learning differentially private
/// recurrent language models"): every sampled client's whole update is clipped, the clipped
/// updates are summed with uniform weights, Gaussian noise is added once, and the sum is divided
/// by the *expected* number of clients per round (a fixed denominator: the realised count
/// depends on whether one user took part).
///
/// The privacy unit is the user (all of a client's examples); the neighbouring relation is
/// add/remove-one user for Poisson client sampling and replace-one user for fixed-size sampling.
public struct UserLevelPrivacy: Hashable, Sendable {
    /// `z`: the round's total noise multiplier, the one accounted (for adaptive clipping it is
    /// split between the update and the count; see ``AdaptiveClipping``).
    public var noiseMultiplier: Double
    public var clipping: ClientClipping
    /// Per-layer clipping: trainable layer `k` of `L` is clipped to `C / sqrt(L)`, so the whole
    /// update's norm stays at most `C` and the sensitivity is unchanged.
    public var perLayer: Bool

    public init(noiseMultiplier: Double, clipping: ClientClipping, perLayer: Bool = false) {
        self.noiseMultiplier = noiseMultiplier
        self.clipping = clipping
        self.perLayer = perLayer
    }

    /// The multiplier on `C_t` of the update's noise standard deviation.
    public func updateNoiseMultiplier() throws -> Double {
        switch clipping {
        case .fixed: return noiseMultiplier
        case .adaptive(let a): return try a.updateNoiseMultiplier(total: noiseMultiplier)
        }
    }

    func validate() throws {
        guard noiseMultiplier > 0, noiseMultiplier.isFinite else {
            throw FederatedError(
                "user-level noise multiplier \(noiseMultiplier) must be finite and > 0 (leave the dp section out for non-private FedAvg)"
            )
        }
        switch clipping {
        case .fixed(let c):
            guard c > 0, c.isFinite else { throw FederatedError("user-level clipping norm \(c) must be finite and > 0") }
        case .adaptive(let a):
            try a.validate()
            _ = try a.updateNoiseMultiplier(total: noiseMultiplier)
        }
    }

    /// The privacy event of one round under `sampling` (the one rule of DP-SGD,
    /// ``SamplingScheme/stepEvent(samplingProbability:batchSize:datasetSize:noiseMultiplier:)``,
    /// with clients for examples): Poisson with `q = m / N`, or `m` of `N` without replacement.
    public func roundEvent(sampling: SamplingScheme, clientsPerRound m: Int, clientCount n: Int) -> DpEvent {
        sampling.stepEvent(
            samplingProbability: Double(m) / Double(n), batchSize: m, datasetSize: n,
            noiseMultiplier: noiseMultiplier)
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
    /// Clips `update` in place to total norm `norm` (flat) or to `norm / sqrt(L)` per layer.
    @discardableResult
    public static func clip(_ update: inout [Float], norm c: Double, layout: UpdateLayout, perLayer: Bool) -> ClipResult {
        precondition(update.count == layout.count, "UpdateClipping: update of \(update.count) scalars for a layout of \(layout.count)")
        var total = 0.0
        var layerNorms: [Double] = []
        for r in layout.layerRanges {
            var s = 0.0
            for j in r { s += Double(update[j]) * Double(update[j]) }
            layerNorms.append(s.squareRoot())
            total += s
        }
        let norm = total.squareRoot()
        if perLayer {
            let ck = c / Double(layout.layerRanges.count).squareRoot()
            for (r, nk) in zip(layout.layerRanges, layerNorms) where nk > ck {
                let f = Float(ck / nk)
                for j in r { update[j] *= f }
            }
        } else if norm > c {
            let f = Float(c / norm)
            for j in update.indices { update[j] *= f }
        }
        guard norm.isFinite else {
            // A non-finite update cannot be bounded: it is replaced by zeros (the client's
            // contribution is dropped, which clipping to norm 0 also allows).
            for j in update.indices { update[j] = 0 }
            return ClipResult(norm: norm, unclipped: false)
        }
        return ClipResult(norm: norm, unclipped: norm <= c)
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
    /// The noisy unclipped fraction `b~` (adaptive clipping only).
    public var noisyUnclippedFraction: Double?
    /// The true unclipped count (diagnostic; not released).
    public var unclippedCount: Int
    /// `C_{t+1}`.
    public var nextClippingNorm: Double
}

/// DP-FedAvg's server step, in named phases: clip each update, sum, add noise once, divide by the
/// expected number of clients; for adaptive clipping also the noisy unclipped count and the
/// geometric norm update.
public struct DPFedAvgAggregator: Sendable {
    public let privacy: UserLevelPrivacy
    /// `m`: the expected clients per round (`q N` for Poisson, exactly `m` for fixed size).
    public let expectedClients: Double
    public let layout: UpdateLayout
    /// `C_t` of the next round.
    public private(set) var clippingNorm: Double
    let updateNoiseMultiplier: Double

    public init(privacy: UserLevelPrivacy, expectedClients: Double, layout: UpdateLayout) throws {
        try privacy.validate()
        guard expectedClients > 0 else {
            throw FederatedError("expected clients per round \(expectedClients) must be > 0")
        }
        self.privacy = privacy
        self.expectedClients = expectedClients
        self.layout = layout
        self.clippingNorm = privacy.clipping.initialNorm
        self.updateNoiseMultiplier = try privacy.updateNoiseMultiplier()
    }

    /// Phase 1 (on each client, or on the server for the simulation): clip in place.
    public func clip(_ update: inout [Float]) -> ClipResult {
        UpdateClipping.clip(&update, norm: clippingNorm, layout: layout, perLayer: privacy.perLayer)
    }

    /// Phases 2 to 4 from the sum of the clipped updates and the true unclipped count (both
    /// may come out of secure aggregation): add `N(0, (z_Delta C_t)^2)` to each coordinate,
    /// divide by `m`; for adaptive clipping release `b~` and move `C_t`.
    /// - Returns: the averaged noisy update and the round's report.
    public mutating func release(
        clippedSum: [Double], unclippedCount: Int, noise: inout NoiseSource
    ) -> (update: [Float], report: PrivateRoundReport) {
        var sum = clippedSum
        let c = clippingNorm
        let sd = updateNoiseMultiplier * c
        noise.addNoise(to: &sum, standardDeviation: sd)
        let update = sum.map { Float($0 / expectedClients) }
        var bTilde: Double? = nil
        if case .adaptive(let a) = privacy.clipping {
            let noisyCount = Double(unclippedCount) + a.countNoise * noise.normal()
            bTilde = noisyCount / expectedClients
            clippingNorm = a.nextNorm(current: c, noisyUnclippedFraction: bTilde!)
        }
        return (
            update,
            PrivateRoundReport(
                clippingNorm: c, noiseStandardDeviation: sd, noisyUnclippedFraction: bTilde,
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
        return release(clippedSum: sum, unclippedCount: unclipped, noise: &noise)
    }
}
