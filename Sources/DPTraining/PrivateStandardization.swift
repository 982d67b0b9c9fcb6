import DPAccounting
import DPData
import DPTensor
import Foundation

/// Standardisation statistics (mean and standard deviation, one per group) estimated with the
/// Gaussian mechanism, so that a private run fits nothing on its training set without paying
/// for it.
///
/// Mechanism. Every feature value is clipped to the public range `[lower, upper]` (width `w`).
/// Example `i` contributes, for each group `g` (channel, or the whole example), the mean of its
/// clipped values `a_ig` and the mean of their squares `s_ig`, each centred on the middle of its
/// range: `a_ig - (lower + upper) / 2` lies in `[-w/2, w/2]`, and `s_ig - (s_min + s_max) / 2`
/// in `[-w_s/2, w_s/2]`, with `[s_min, s_max]` the range of `x^2` on `[lower, upper]`. The sums
/// over the training set get `N(0, (sigma Delta)^2)` noise on each of the `2G` coordinates.
///
/// Sensitivity (L2): add/remove-one `Delta = sqrt(G (w^2 + w_s^2)) / 2` (one centred vector
/// appears or disappears); replace-one `2 Delta` (one vector is swapped for another). Under
/// replace-one the same noise is therefore `Gaussian(sigma / 2)`, the convention the training
/// step uses too (``BatchSampler/stepEvent(noiseMultiplier:)``).
///
/// The number of training examples `n` is treated as public (as DP-SGD's expected batch size
/// `q n` does). The estimates are `mean = S_a / n + centre_a`, `E[x^2] = S_s / n + centre_s`,
/// `std = sqrt(max(E[x^2] - mean^2, (w / 100)^2))` (the floor keeps a noisy variance from
/// collapsing to zero; it is data-independent).
public struct PrivateStandardization: Sendable {
    public var noiseMultiplier: Double
    public var lower: Double
    public var upper: Double
    /// One statistic per channel (leading axis of `[C, H, W]` examples) or one for all features.
    public var perChannel: Bool

    public init(noiseMultiplier: Double, lower: Double, upper: Double, perChannel: Bool) {
        precondition(
            noiseMultiplier > 0 && upper > lower,
            "PrivateStandardization: sigma \(noiseMultiplier) must be > 0 and upper \(upper) > lower \(lower)")
        self.noiseMultiplier = noiseMultiplier
        self.lower = lower
        self.upper = upper
        self.perChannel = perChannel
    }

    /// The range of `x^2` for `x` in `[lower, upper]`.
    var squareRange: (Double, Double) {
        let hi = max(lower * lower, upper * upper)
        let lo = (lower <= 0 && upper >= 0) ? 0 : min(lower * lower, upper * upper)
        return (lo, hi)
    }

    /// The add/remove-one L2 sensitivity of the centred sums, for `groups` groups.
    public func sensitivity(groups: Int) -> Double {
        let w = upper - lower, (slo, shi) = squareRange
        let ws = shi - slo
        return (Double(groups) * (w * w + ws * ws)).squareRoot() / 2
    }

    /// The privacy event of one release under `relation`.
    public func event(relation: NeighboringRelation) -> DpEvent {
        .gaussian(noiseMultiplier: relation == .replaceOne ? noiseMultiplier / 2 : noiseMultiplier)
    }

    /// The exact centred per-group sums `(sum_a, sum_s)` over `dataset`, before noise.
    func centredSums(_ dataset: Dataset) -> (a: [Double], s: [Double]) {
        let groups = perChannel ? dataset.exampleShape[0] : 1
        let ca = (lower + upper) / 2, (slo, shi) = squareRange
        let cs = (slo + shi) / 2
        var sa = [Double](repeating: 0, count: groups), ss = sa
        dataset.forEachGroupMoments(groups: groups, clippedTo: Float(lower)...Float(upper)) { _, g, mean, meanSquare in
            sa[g] += mean - ca
            ss[g] += meanSquare - cs
        }
        return (sa, ss)
    }

    /// The noisy statistics of `dataset` and the event to compose into the run's ledger.
    /// `normal` draws one standard normal (seeded stream or OS CSPRNG, by the run's randomness).
    public func fit(
        to dataset: Dataset, relation: NeighboringRelation,
        normal: () -> Double
    ) -> (Standardization, DpEvent) {
        let (sa, ss) = centredSums(dataset)
        let groups = sa.count
        let sd = noiseMultiplier * sensitivity(groups: groups)
        let n = Double(max(1, dataset.count))
        let ca = (lower + upper) / 2, (slo, shi) = squareRange
        let cs = (slo + shi) / 2
        let floor = (upper - lower) / 100
        var mean = [Float](), deviation = [Float]()
        for g in 0..<groups {
            let m = (sa[g] + sd * normal()) / n + ca
            let second = (ss[g] + sd * normal()) / n + cs
            let v = max(second - m * m, floor * floor)
            mean.append(Float(m))
            deviation.append(Float(v.squareRoot()))
        }
        return (Standardization(mean: mean, standardDeviation: deviation), event(relation: relation))
    }
}
