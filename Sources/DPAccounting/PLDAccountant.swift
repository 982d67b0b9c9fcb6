// Privacy loss distribution accountant with certified lower and upper bounds.
import Foundation

/// Accounts with privacy loss distributions (PLDs), giving epsilon to within a certified
/// interval: every report states "epsilon is between L and U".
///
/// For a pair of output distributions `(P, Q)` on neighbouring datasets the privacy loss is
/// `L = log(P(y) / Q(y))` with `y ~ P`, and the tight delta for epsilon is the hockey-stick
/// divergence `delta(eps) = E_P[(1 - e^{eps - L})_+]` (Meiser, Mohammadi 2018; Sommer, Meiser,
/// Mohammadi 2019; Koskela, Jalko, Honkela 2020). Composition adds independent losses, so the
/// composed PLD is a convolution, computed here by FFT (FFTW, real-to-complex) on a grid of
/// step `h` (``valueDiscretizationInterval``, refined to 1/``gridPointsPerDeviation`` of the
/// single-step loss standard deviation when that is narrower, and raised when the composed
/// distribution would not fit in ``maxGridSize`` points, with a warning in the report).
///
/// Supported: `.poissonSampled(q, .gaussian(sigma))` and `.gaussian(sigma)` (q = 1), any
/// self-composition and composition of them, under the add/remove-one relation. With
/// `P = (1 - q) N(0, sigma^2) + q N(1, sigma^2)` and `Q = N(0, sigma^2)`, both directions are
/// accounted: "remove" `(P, Q)` with `L(y) = log((1 - q) + q e^{(2y - 1)/(2 sigma^2)})`, and
/// "add" `(Q, P)` with loss `-L(y)`; the reported epsilon is the larger (as `dp_accounting`).
/// Sampling without replacement and the replace-one relation are refused.
///
/// Discretisation, per step and direction:
/// - Upper bound ("pessimistic"): connect-the-dots (Doroshenko, Ghazi, Kamath, Kumar,
///   Manurangsi 2022). The probability mass of each loss interval `[kh, (k+1)h]` is split
///   between its two end points so that both its P-mass and Q-mass are kept; the resulting
///   pair dominates `(P, Q)` (its hockey-stick curve is the chord interpolation of the true
///   one in `e^eps`), and domination survives composition. Loss beyond the grid goes to
///   `+inf` (upper tail) or the lowest point (lower tail), again keeping the pair dominating.
/// - Lower bound ("optimistic"): a pair dominated by `(P, Q)`. The true curve `delta(x)`,
///   `x = e^eps`, is convex with slope `-Q(L > eps)`, so it lies above the tangents at the
///   ends of each interval; lowering one end point by the chord's excess over those tangents
///   (see `dominatedPMF`) and taking the lower convex hull gives a curve below the true one
///   that is itself the curve of a discrete PLD on the grid (P-mass and Q-mass at most 1).
///   In the remove direction the loss mass piles up just above `log(1 - q)`: all loss up to
///   `log(1 - q) + h` is merged into one atom at its exact merged loss (merging is a
///   post-processing, so the pair stays dominated) and the lower grid is shifted onto it.
/// - Truncation: the FFT window is chosen by a Chernoff bound so that at most `tau = 1e-15` of
///   composed mass falls outside; `tau` is added to delta for the upper bound and subtracted for
///   the lower bound.
///
/// Floating-point round-off of the FFT (about 1e-16 of the total mass per point) is not part
/// of the certificate.
public struct PLDAccountant: PrivacyAccountant {
    /// A Poisson-subsampled Gaussian step (`probability == 1` is the plain Gaussian) and how
    /// many times it is composed.
    public struct Component: Codable, Hashable, Sendable {
        public var probability: Double
        public var noiseMultiplier: Double
        public var count: Int
    }

    public var name: String { "pld" }
    public let neighboringRelation: NeighboringRelation
    /// The requested grid step `h` of the privacy loss (see the type's discussion).
    public let valueDiscretizationInterval: Double
    /// The grid step is raised until the composed distribution needs at most this many points.
    public let maxGridSize: Int
    /// The grid step is refined to at most 1/`gridPointsPerDeviation` of the smallest
    /// single-step loss standard deviation.
    public let gridPointsPerDeviation: Double
    /// Composed mass allowed outside the FFT window (counted against the bounds).
    public let tailMassTruncation: Double
    /// The composed steps, identical steps merged.
    public private(set) var components: [Component] = []

    /// - Parameters:
    ///   - valueDiscretizationInterval: the requested grid step of the privacy loss (default
    ///     1e-4, as `dp_accounting`); must be > 0.
    ///   - maxGridSize: the largest composed grid before the step is raised (default 2^18).
    ///   - gridPointsPerDeviation: the step is refined to at most this fraction of the
    ///     smallest single-step loss standard deviation (default 50; lower is faster and looser).
    ///   - neighboringRelation: only `.addOrRemoveOne` is supported; any event composed into an
    ///     accountant with `.replaceOne` is refused.
    public init(
        valueDiscretizationInterval: Double = 1e-4, maxGridSize: Int = 1 << 18,
        gridPointsPerDeviation: Double = 50,
        neighboringRelation: NeighboringRelation = .addOrRemoveOne
    ) {
        precondition(valueDiscretizationInterval > 0, "valueDiscretizationInterval must be > 0")
        precondition(maxGridSize >= 1024, "maxGridSize must be >= 1024")
        precondition(gridPointsPerDeviation >= 1, "gridPointsPerDeviation must be >= 1")
        self.gridPointsPerDeviation = gridPointsPerDeviation
        self.valueDiscretizationInterval = valueDiscretizationInterval
        self.maxGridSize = maxGridSize
        self.neighboringRelation = neighboringRelation
        self.tailMassTruncation = 1e-15
    }

    public mutating func compose(_ event: DpEvent, count: Int = 1) throws {
        try Validate.count(count)
        try event.validate()
        var flat: [Component] = []
        try Self.flatten(event, multiplier: count, relation: neighboringRelation, into: &flat)
        var merged = components
        for c in flat where c.count > 0 {
            if let i = merged.firstIndex(where: {
                $0.probability == c.probability && $0.noiseMultiplier == c.noiseMultiplier
            }) {
                let (s, o) = merged[i].count.addingReportingOverflow(c.count)
                guard !o else { throw AccountingError.invalidParameter("total count overflows Int") }
                merged[i].count = s
            } else {
                merged.append(c)
            }
        }
        components = merged
    }

    static func flatten(
        _ event: DpEvent, multiplier: Int, relation: NeighboringRelation,
        into out: inout [Component]
    ) throws {
        func refuseRelation() throws {
            if relation != .addOrRemoveOne {
                throw AccountingError.unsupportedEvent(
                    "\(event.summary): the PLD accountant supports only the addOrRemoveOne relation, not \(relation.rawValue); use RDPAccountant(neighboringRelation: .replaceOne)"
                )
            }
        }
        switch event {
        case .noOp, .poissonSampled(_, .noOp), .sampledWithoutReplacement(_, _, .noOp):
            return
        case .gaussian(let s):
            try refuseRelation()
            out.append(Component(probability: 1, noiseMultiplier: s, count: multiplier))
        case .poissonSampled(let q, .gaussian(let s)):
            try refuseRelation()
            out.append(Component(probability: q, noiseMultiplier: s, count: multiplier))
        case .sampledWithoutReplacement:
            throw AccountingError.unsupportedEvent(
                "\(event.summary): the PLD accountant does not support sampling without replacement (a replace-one analysis); use RDPAccountant(neighboringRelation: .replaceOne)"
            )
        case .poissonSampled:
            throw AccountingError.unsupportedEvent(
                "\(event.summary): the PLD accountant only supports Poisson sampling applied directly to a gaussian event"
            )
        case .selfComposed(let e, let c):
            try flatten(e, multiplier: try Validate.multiply(multiplier, c), relation: relation, into: &out)
        case .composed(let es):
            for e in es { try flatten(e, multiplier: multiplier, relation: relation, into: &out) }
        }
    }

    // MARK: - Queries

    /// Epsilon for `delta`, with certified bounds: `epsilonLower <= true epsilon <= epsilonUpper`,
    /// and `epsilon == epsilonUpper`.
    public func epsilon(delta: Double) throws -> EpsilonReport {
        try Validate.delta(delta)
        let c = try composedBounds()
        var upper = 0.0, lower = 0.0
        for d in c {
            upper = Swift.max(upper, d.upper.epsilon(delta: delta))
            lower = Swift.max(lower, d.lower.epsilon(delta: delta))
        }
        lower = Swift.min(lower, upper)
        var warnings: [String] = []
        if upper == .infinity {
            let floor = c.map { $0.upper.infinityMass + $0.upper.slack }.max() ?? 0
            warnings.append(
                "delta = \(delta) is below \(floor), the mass the PLD cannot bound (privacy loss at infinity plus the truncated tails); the upper bound is infinite: use a larger delta or the RDP accountant"
            )
        }
        if let h = c.first?.upper.interval, h > valueDiscretizationInterval * 1.0001 {
            warnings.append("discretisation interval raised to \(h) to fit \(maxGridSize) grid points")
        }
        return EpsilonReport(
            epsilon: upper, delta: delta, accountant: name,
            epsilonLower: lower, epsilonUpper: upper, warnings: warnings)
    }

    /// The certified upper bound on delta for `epsilon`.
    public func delta(epsilon: Double) throws -> Double {
        try deltaBounds(epsilon: epsilon).upper
    }

    /// Certified bounds `lower <= true delta(epsilon) <= upper`.
    public func deltaBounds(epsilon: Double) throws -> (lower: Double, upper: Double) {
        try Validate.epsilon(epsilon)
        var lo = 0.0, hi = 0.0
        for d in try composedBounds() {
            hi = Swift.max(hi, d.upper.delta(epsilon: epsilon))
            lo = Swift.max(lo, d.lower.delta(epsilon: epsilon))
        }
        return (Swift.min(lo, hi), Swift.min(hi, 1))
    }

    // MARK: - Composition

    /// Upper and lower composed PLDs for the two directions (remove, add).
    func composedBounds() throws -> [(upper: ComposedPLD, lower: ComposedPLD)] {
        let active = components.filter { $0.count > 0 }
        if active.isEmpty {
            return [(ComposedPLD.identity, ComposedPLD.identity)]
        }
        let h = try gridInterval(for: active)
        var result: [(upper: ComposedPLD, lower: ComposedPLD)] = []
        for direction in [LossDirection.remove, .add] {
            var up: [(DiscretePLD, Int)] = [], low: [(DiscretePLD, Int)] = []
            for c in active {
                let model = SubsampledGaussianLoss(q: c.probability, sigma: c.noiseMultiplier, direction: direction)
                let pair = try model.discretize(interval: h)
                up.append((pair.upper, c.count))
                low.append((pair.lower, c.count))
            }
            result.append(
                (
                    FFTComposition.compose(up, interval: h, tailMass: tailMassTruncation, pessimistic: true),
                    FFTComposition.compose(low, interval: h, tailMass: tailMassTruncation, pessimistic: false)
                ))
        }
        return result
    }

    /// The grid step: the requested one, refined to 1/``gridPointsPerDeviation`` of the smallest single-step loss
    /// standard deviation (a grid coarser than the loss itself makes the bounds loose), then
    /// raised so the composed loss (estimated as 24 standard deviations plus the widest
    /// single-step range) fits in `maxGridSize` points.
    func gridInterval(for active: [Component]) throws -> Double {
        var variance = 0.0, widest = 0.0, sumRanges = 0.0
        var smallestDeviation = Double.infinity
        for c in active {
            var v = 0.0, r = 0.0
            for direction in [LossDirection.remove, .add] {
                let m = SubsampledGaussianLoss(q: c.probability, sigma: c.noiseMultiplier, direction: direction)
                let vd = m.lossVariance()
                v = Swift.max(v, vd)
                if vd > 0 { smallestDeviation = Swift.min(smallestDeviation, vd.squareRoot()) }
                let range = m.lossRange
                guard range.upper < 600, range.lower > -600 else {
                    throw AccountingError.unsupportedEvent(
                        "poissonSampled(probability: \(c.probability), gaussian(noiseMultiplier: \(c.noiseMultiplier))): the single-step privacy loss exceeds 600 in magnitude (noise multiplier too small for the PLD grid); use the RDP accountant"
                    )
                }
                r = Swift.max(r, range.upper - range.lower)
            }
            variance += Double(c.count) * v
            widest = Swift.max(widest, r)
            sumRanges += Double(c.count) * r
        }
        let width = Swift.min(sumRanges, 24 * variance.squareRoot() + widest)
        let fine = Swift.min(valueDiscretizationInterval, smallestDeviation / gridPointsPerDeviation)
        return Swift.max(
            fine, width / Double(maxGridSize),
            widest / Double(4 * maxGridSize))
    }
}

// MARK: - Single-step privacy loss of the subsampled Gaussian

enum LossDirection { case remove, add }

/// The privacy loss of one Poisson-subsampled Gaussian step (sensitivity 1, add/remove-one).
///
/// Remove: pair `(P, Q)`, `P = (1-q) N(0, s^2) + q N(1, s^2)`, `Q = N(0, s^2)`,
/// loss `l(y) = log((1-q) + q exp((2y-1)/(2 s^2)))`, increasing in `y`.
/// Add: pair `(Q, P)`, loss `-l(y)` with `y ~ Q`.
struct SubsampledGaussianLoss {
    let q: Double
    let sigma: Double
    let direction: LossDirection
    /// Standard deviations of `y` kept on each side before the tails are folded.
    static let tailSigmas = 9.0

    /// `l(y)`.
    func l(_ y: Double) -> Double {
        let x = (2 * y - 1) / (2 * sigma * sigma)
        return q == 1 ? x : Special.logAdd(log1p(-q), log(q) + x)
    }

    /// The `y` where `l(y) = v`, or `-inf` when `v <= log(1 - q)`.
    func threshold(_ v: Double) -> Double {
        if q == 1 { return sigma * sigma * v + 0.5 }
        let a = expm1(v) + q
        if a <= 0 { return -.infinity }
        return sigma * sigma * (log(a) - log(q)) + 0.5
    }

    /// `(P(L > eps), Q(L > eps))` for the pair of this direction.
    func survival(_ eps: Double) -> (p: Double, q: Double) {
        switch direction {
        case .remove:
            let t = threshold(eps)
            if t == -.infinity { return (1, 1) }
            let s0 = Special.normalSurvival(t / sigma), s1 = Special.normalSurvival((t - 1) / sigma)
            return ((1 - q) * s0 + q * s1, s0)
        case .add:
            let t = threshold(-eps)
            if t == -.infinity { return (0, 0) }
            let c0 = Special.normalCDF(t / sigma), c1 = Special.normalCDF((t - 1) / sigma)
            return (c0, (1 - q) * c0 + q * c1)
        }
    }

    /// The range of the loss kept on the grid: `[log(1-q), l(1 + 9 s)]` (remove) or
    /// `[-l(9 s), -log(1-q)]` (add); unbounded ends (q = 1) are cut at 9 standard deviations.
    var lossRange: (lower: Double, upper: Double) {
        let z = Self.tailSigmas
        switch direction {
        case .remove:
            return (q < 1 ? log1p(-q) : l(-z * sigma), l(1 + z * sigma))
        case .add:
            return (-l(z * sigma), q < 1 ? -log1p(-q) : -l(-z * sigma))
        }
    }

    /// The variance of the loss under the first distribution of the pair, by quadrature on
    /// 2001 points over +-10 standard deviations (only used to size the grid).
    func lossVariance() -> Double {
        let lo = -10 * sigma, hi = 1 + 10 * sigma, n = 2001
        let step = (hi - lo) / Double(n - 1)
        var w = 0.0, m1 = 0.0, m2 = 0.0
        for i in 0..<n {
            let y = lo + Double(i) * step
            let g0 = exp(-0.5 * (y / sigma) * (y / sigma)), g1 = exp(-0.5 * ((y - 1) / sigma) * ((y - 1) / sigma))
            let density: Double, loss: Double
            switch direction {
            case .remove:
                density = (1 - q) * g0 + q * g1
                loss = l(y)
            case .add:
                density = g0
                loss = -l(y)
            }
            w += density
            m1 += density * loss
            m2 += density * loss * loss
        }
        let mean = m1 / w
        return Swift.max(0, m2 / w - mean * mean)
    }

    /// Upper (connect-the-dots, dominating) and lower (dominated) discrete PLDs on the grid
    /// `k * interval`.
    func discretize(interval h: Double) throws -> (upper: DiscretePLD, lower: DiscretePLD) {
        let range = lossRange
        let kLo = Int((range.lower / h).rounded(.down))
        let kHi = Swift.max(Int((range.upper / h).rounded(.up)), kLo + 1)
        let n = kHi - kLo + 1
        var sp = [Double](repeating: 0, count: n), sq = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let s = survival(Double(kLo + i) * h)
            sp[i] = s.p
            sq[i] = s.q
        }
        let eps = { (i: Int) in Double(kLo + i) * h }
        let shrink = -expm1(-h) // 1 - e^{-h}

        // Upper bound: connect the dots.
        var up = [Double](repeating: 0, count: n)
        up[0] = Swift.max(0, 1 - sp[0]) // lower tail folded onto the lowest point
        for k in 0..<(n - 1) {
            let pb = Swift.max(0, sp[k] - sp[k + 1]), qb = Swift.max(0, sq[k] - sq[k + 1])
            if pb == 0 { continue }
            // u = e^{eps_k} Q_b / P_b in [e^{-h}, 1]; the upper end gets P_b (1 - u) / (1 - e^{-h}).
            let u = qb > 0 ? exp(eps(k) + log(qb) - log(pb)) : 0
            let c = pb * Swift.min(1, Swift.max(0, (1 - u) / shrink))
            up[k] += pb - c
            up[k + 1] += c
        }
        let tailP = sp[n - 1], tailQ = sq[n - 1]
        let atTop = tailQ > 0 ? Swift.min(tailP, exp(eps(n - 1) + log(tailQ))) : 0
        up[n - 1] += atTop
        let upper = DiscretePLD(offset: kLo, pmf: up, infinityMass: Swift.max(0, tailP - atTop))

        // Lower bound. In the remove direction the loss piles up just above its minimum
        // log(1 - q) (most of the y-line maps there): merge all loss up to log(1 - q) + h into
        // one atom at its exact merged loss l* = log(P(cell) / Q(cell)) (merging is a
        // post-processing, so the pair stays dominated) and put the lower grid at l* + k h, so
        // the pile sits exactly on a grid point instead of costing a margin every step.
        if direction == .remove, q < 1 {
            let top = log1p(-q) + h
            let t = threshold(top)
            let pCell = (1 - q) * Special.normalCDF(t / sigma) + q * Special.normalCDF((t - 1) / sigma)
            let qCell = Special.normalCDF(t / sigma)
            if pCell > 0, qCell > 0 {
                let merged = Swift.min(top, Swift.max(log1p(-q), log(pCell) - log(qCell)))
                let m = Swift.max(2, Int(((range.upper - merged) / h).rounded(.up)) + 1)
                var lp = [Double](repeating: 0, count: m), lq = [Double](repeating: 0, count: m)
                lp[0] = 1 - pCell
                lq[0] = 1 - qCell
                for k in 1..<m {
                    let sv = survival(merged + Double(k) * h)
                    lp[k] = sv.p
                    lq[k] = sv.q
                }
                let pmf = Self.dominatedPMF(eps: { merged + Double($0) * h }, sp: lp, sq: lq, h: h)
                return (upper, DiscretePLD(offset: 0, pmf: pmf, infinityMass: 0, shift: merged))
            }
        }
        let pmf = Self.dominatedPMF(eps: eps, sp: sp, sq: sq, h: h)
        return (upper, DiscretePLD(offset: kLo, pmf: pmf, infinityMass: 0))
    }

    /// A discrete PLD on the grid `eps(k)` dominated by the pair whose survival functions at the
    /// grid points are `sp`, `sq` (no mass below `eps(0)`).
    ///
    /// The true curve `delta(x) = P(L > eps) - x Q(L > eps)`, `x = e^eps`, is convex with slope
    /// `-Q(L > eps)`, so it lies above the tangents at the ends of each interval. With the
    /// interval's masses `P_b`, `Q_b` and `r = (P_b - x_k Q_b) / w` (`w = x_{k+1} - x_k`), the end
    /// slopes differ from the chord's by `Q_b - r` and `r`; the tangents meet at the fraction
    /// `t = r / Q_b`, where the chord is `(Q_b - r) r w / Q_b` above them. Lowering the end
    /// nearer that point by `gap / (1 - t) = r w` (left, `t < 1/2`) or `gap / t = (Q_b - r) w`
    /// (right) puts the chord below both tangents, hence below the curve. The lower convex hull
    /// of the lowered points (capped so that P-mass and Q-mass stay <= 1) is the curve of the
    /// returned PLD.
    static func dominatedPMF(eps: (Int) -> Double, sp: [Double], sq: [Double], h: Double) -> [Double] {
        let n = sp.count
        let shrink = -expm1(-h)
        var margin = [Double](repeating: 0, count: n)
        for k in 0..<(n - 1) {
            let pb = Swift.max(0, sp[k] - sp[k + 1]), qb = Swift.max(0, sq[k] - sq[k + 1])
            if pb == 0 || qb == 0 { continue }
            let u = exp(eps(k) + log(qb) - log(pb))
            let c = pb * Swift.min(1, Swift.max(0, (1 - u) / shrink)) // P-mass sent up
            let r = Swift.min(qb, c * exp(-eps(k + 1)))
            let w = exp(eps(k)) * expm1(h)
            if r < qb / 2 {
                margin[k] = Swift.max(margin[k], r * w)
            } else {
                margin[k + 1] = Swift.max(margin[k + 1], (qb - r) * w)
            }
        }
        var xs = [Double](repeating: 0, count: n), fs = [Double](repeating: 0, count: n)
        for k in 0..<n {
            xs[k] = exp(eps(k))
            let g = sp[k] - (sq[k] > 0 ? exp(eps(k) + log(sq[k])) : 0)
            fs[k] = Swift.max(0, g - margin[k])
        }
        // A valid curve has P-mass f(0) <= 1 and Q-mass (the slope magnitude) <= 1: cap the
        // first point at 1 - x_0 and so that no chord from it is steeper than 1. Lowering a
        // point keeps the curve below the true one.
        var cap = 1 - xs[0]
        for k in 1..<n { cap = Swift.min(cap, fs[k] + (xs[k] - xs[0])) }
        fs[0] = Swift.max(0, Swift.min(fs[0], cap))
        fs[n - 1] = 0
        var hull: [Int] = []
        hull.reserveCapacity(n)
        for k in 0..<n {
            while hull.count >= 2 {
                let a = hull[hull.count - 2], b = hull[hull.count - 1]
                // b lies on or above the segment a-k: drop it.
                let cross = (xs[b] - xs[a]) * (fs[k] - fs[a]) - (fs[b] - fs[a]) * (xs[k] - xs[a])
                if cross <= 0 { hull.removeLast() } else { break }
            }
            hull.append(k)
        }
        var low = [Double](repeating: 0, count: n)
        var prevSlope = 1.0 // slope magnitude left of the first point (Q-mass <= 1)
        for j in 0..<hull.count {
            let v = hull[j]
            let slope =
                j + 1 < hull.count
                ? (fs[v] - fs[hull[j + 1]]) / (xs[hull[j + 1]] - xs[v]) : 0
            low[v] = Swift.max(0, xs[v] * (prevSlope - slope))
            prevSlope = slope
        }
        return low
    }
}

// MARK: - Discrete PLDs

/// A privacy loss distribution on the grid `(offset + k) * h`, plus mass at `+inf`.
struct DiscretePLD {
    var offset: Int
    var pmf: [Double]
    var infinityMass: Double
    /// Loss of index `k` is `(offset + k) * h + shift`.
    var shift: Double = 0
}

/// A composed PLD with the truncation slack that the bound must absorb.
struct ComposedPLD {
    var offset: Int
    var pmf: [Double]
    var infinityMass: Double
    var interval: Double
    /// Mass possibly misplaced by truncation: added to delta (upper) or subtracted (lower).
    var slack: Double
    var pessimistic: Bool
    /// Loss of index `k` is `(offset + k) * interval + shift`.
    var shift: Double = 0

    static let identity = ComposedPLD(
        offset: 0, pmf: [1], infinityMass: 0, interval: 1e-4,
        slack: 0, pessimistic: true)

    private var constant: Double { pessimistic ? infinityMass + slack : infinityMass - slack }

    /// `delta(eps) = P(inf) + sum_{l_k > eps} p_k (1 - e^{eps - l_k})` (+- slack).
    func delta(epsilon eps: Double) -> Double {
        var s = constant
        for k in stride(from: pmf.count - 1, through: 0, by: -1) {
            let l = Double(offset + k) * interval + shift
            if l <= eps { break }
            s += pmf[k] * -expm1(eps - l)
        }
        return Swift.min(1, Swift.max(0, s))
    }

    /// The smallest `eps >= 0` with `delta(eps) <= target` (exact on the piecewise curve).
    ///
    /// Scans the grid downwards keeping `a = const + sum_{l_j > l_k} p_j` and
    /// `b = sum_{l_j > l_k} p_j e^{l_k - l_j}`, so `delta(l_k) = a - b` without overflow, and
    /// solves `a - e^{eps - l_k} b = target` inside the crossing interval.
    func epsilon(delta target: Double) -> Double {
        let c = constant
        if c > target { return .infinity }
        let decay = exp(-interval)
        var a = c, b = 0.0
        var k = pmf.count - 1
        while k >= 0 {
            let l = Double(offset + k) * interval + shift
            if a - b > target {
                return Swift.max(0, l + log((a - target) / b))
            }
            if l <= 0 { return 0 }
            a += pmf[k]
            b = (b + pmf[k]) * decay // now relative to l_{k-1}
            k -= 1
        }
        // delta(l_0 - h) <= target: the crossing is below the grid, where
        // delta(eps) = a - e^{eps - l_0 + h} b.
        let l = Double(offset - 1) * interval + shift
        if b == 0 || a <= target { return 0 }
        return Swift.max(0, l + log((a - target) / b))
    }
}
