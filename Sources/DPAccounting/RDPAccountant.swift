// Renyi differential privacy accountant (the moments accountant in Renyi form).
import Foundation

/// Accounts with Renyi differential privacy (RDP) on a grid of orders.
///
/// A mechanism `M` is `(alpha, rho)`-RDP if `D_alpha(M(D) || M(D')) <= rho` for all neighbours
/// (Mironov 2017, "Renyi Differential Privacy"). Composition adds `rho` order by order, so the
/// accountant keeps one number per order. Per event:
///
/// - `.gaussian(sigma)`: `rho(alpha) = alpha / (2 sigma^2)` under either relation (sensitivity 1
///   in units of the relation).
/// - `.poissonSampled(q, .gaussian(sigma))`, add/remove-one: the sampled Gaussian mechanism of
///   Mironov, Talwar, Zhang 2019, `rho(alpha) = log(A_alpha) / (alpha - 1)` with
///   `A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha]`,
///   computed exactly for integer orders (binomial expansion) and for fractional orders (the
///   two-sided series of their Section 3.3), all in log space.
/// - `.sampledWithoutReplacement(m, n, .gaussian(sigma))`, replace-one: the general upper bound
///   of Wang, Balle, Kasiviswanathan 2019 (Theorem 9) with `gamma = m / n`,
///   `A_alpha <= 1 + gamma^2 C(alpha, 2) min(4 (e^{rho(2)} - 1), 2 e^{rho(2)})
///   + sum_{j>=3} gamma^j C(alpha, j) 2 e^{(j-1) rho(j)}`, `rho(j) = j / (2 sigma^2)`, for integer
///   orders, and their Corollary 10 (linear interpolation of `(alpha - 1) rho`) for fractional
///   ones. `sigma` is relative to the replace-one sensitivity (2C for a sum clipped to C).
///
/// Conversion to `(epsilon, delta)` uses the bound of Balle et al. 2020 ("Hypothesis testing
/// interpretations and Renyi DP", Theorem 21; also Canonne, Kamath, Steinke 2020):
/// `epsilon = rho + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1)`,
/// minimised over the grid, as in `dp_accounting` and Opacus.
///
/// Poisson sampling is refused under replace-one and sampling without replacement is refused
/// under add/remove-one: the accountant throws rather than apply a bound proven for the other
/// relation.
public struct RDPAccountant: PrivacyAccountant {
    /// The default grid: `1 + x/20` for `x` in 1...199, the integers 11...63, then
    /// 64, 72, 80, 96, 112, 128, 160, 192, 256, 384, 512, 768, 1024. A strict superset of
    /// `dp_accounting`'s default (`1 + x/10`, integers to 63, 128, 256, 512, 1024).
    public static let defaultOrders: [Double] = {
        var o = (1...199).map { 1 + Double($0) / 20 }
        o += (11...63).map(Double.init)
        o += [64, 72, 80, 96, 112, 128, 160, 192, 256, 384, 512, 768, 1024]
        return o
    }()

    public var name: String { "rdp" }
    public let neighboringRelation: NeighboringRelation
    /// The Renyi orders, each > 1, strictly increasing.
    public let orders: [Double]
    /// The accumulated RDP `rho(alpha)` at each order of ``orders``.
    public private(set) var rdp: [Double]
    /// The last event composed and its RDP curve: a trainer composes the same step every
    /// iteration, and the curve (fractional-order series at every order) dominates the cost.
    private var lastCurve: (event: DpEvent, curve: [Double])?

    /// - Parameters:
    ///   - orders: Renyi orders, each > 1 (sorted and de-duplicated here).
    ///   - neighboringRelation: the relation the guarantee is stated for.
    public init(
        orders: [Double] = RDPAccountant.defaultOrders,
        neighboringRelation: NeighboringRelation = .addOrRemoveOne
    ) {
        let sorted = Array(Set(orders)).sorted()
        precondition(!sorted.isEmpty && sorted[0] > 1, "Renyi orders must be > 1")
        self.orders = sorted
        self.neighboringRelation = neighboringRelation
        self.rdp = Array(repeating: 0, count: sorted.count)
    }

    public mutating func compose(_ event: DpEvent, count: Int = 1) throws {
        try Validate.count(count)
        try event.validate()
        let r: [Double]
        if let last = lastCurve, last.event == event {
            r = last.curve
        } else {
            r = try Self.rdp(of: event, orders: orders, relation: neighboringRelation)
            lastCurve = (event, r)
        }
        let c = Double(count)
        for i in rdp.indices where count > 0 { rdp[i] += c * r[i] }
    }

    /// The RDP curve of one run of `event` at `orders`.
    ///
    /// - Throws: ``AccountingError/unsupportedEvent(_:)`` for an event this accountant has no
    ///   bound for under `relation`.
    public static func rdp(
        of event: DpEvent, orders: [Double],
        relation: NeighboringRelation
    ) throws -> [Double] {
        switch event {
        case .noOp:
            return Array(repeating: 0, count: orders.count)
        case .gaussian(let sigma):
            return orders.map { $0 / (2 * sigma * sigma) }
        case .poissonSampled(let q, .gaussian(let sigma)):
            guard relation == .addOrRemoveOne else {
                throw AccountingError.unsupportedEvent(
                    "\(event.summary): the RDP accountant bounds Poisson sampling only under the addOrRemoveOne relation (Mironov, Talwar, Zhang 2019), but this accountant uses \(relation.rawValue)"
                )
            }
            return orders.map { SampledGaussianRDP.poisson(q: q, sigma: sigma, order: $0) }
        case .poissonSampled(_, .noOp):
            return Array(repeating: 0, count: orders.count)
        case .sampledWithoutReplacement(let m, let n, .gaussian(let sigma)):
            guard relation == .replaceOne else {
                throw AccountingError.unsupportedEvent(
                    "\(event.summary): the RDP accountant bounds sampling without replacement only under the replaceOne relation (Wang, Balle, Kasiviswanathan 2019), but this accountant uses \(relation.rawValue); use RDPAccountant(neighboringRelation: .replaceOne)"
                )
            }
            if m == 0 { return Array(repeating: 0, count: orders.count) }
            return orders.map {
                SampledGaussianRDP.withoutReplacement(gamma: Double(m) / Double(n), sigma: sigma, order: $0)
            }
        case .sampledWithoutReplacement(_, _, .noOp):
            return Array(repeating: 0, count: orders.count)
        case .selfComposed(let e, let c):
            return try rdp(of: e, orders: orders, relation: relation).map { Double(c) * $0 }
        case .composed(let es):
            var total = Array(repeating: 0.0, count: orders.count)
            for e in es {
                let r = try rdp(of: e, orders: orders, relation: relation)
                for i in total.indices { total[i] += r[i] }
            }
            return total
        case .poissonSampled, .sampledWithoutReplacement:
            throw AccountingError.unsupportedEvent(
                "\(event.summary): the RDP accountant only bounds sampling applied directly to a gaussian (or noOp) event"
            )
        }
    }

    // MARK: - Conversion

    /// The smallest epsilon over the order grid for `delta`, with the order that attains it.
    ///
    /// Uses `epsilon(alpha) = rho + log1p(-1/alpha) - log(delta * alpha) / (alpha - 1)` (Balle et
    /// al. 2020, Theorem 21), and `epsilon = 0` where `delta^2 + expm1(-rho) > 0` (the KL bound
    /// `delta <= sqrt(1 - exp(-rho))` already gives delta). Warns when the optimum is the first
    /// or last order: a wider grid could give a smaller epsilon.
    public func epsilon(delta: Double) throws -> EpsilonReport {
        try Validate.delta(delta)
        var best = Double.infinity
        var bestIndex = 0
        for (i, (a, r)) in zip(orders, rdp).enumerated() {
            let e: Double
            if delta * delta + expm1(-r) > 0 {
                e = 0
            } else if a > 1.01 {
                e = r + log1p(-1 / a) - log(delta * a) / (a - 1)
            } else {
                e = .infinity
            }
            if e < best {
                best = e
                bestIndex = i
            }
        }
        var warnings: [String] = []
        if best.isFinite, best > 0, bestIndex == 0 || bestIndex == orders.count - 1 {
            warnings.append(
                "the optimal Renyi order \(orders[bestIndex]) is at the edge of the grid [\(orders.first!), \(orders.last!)]; a wider grid may give a smaller epsilon"
            )
        }
        if !best.isFinite {
            warnings.append("no order of the grid gives a finite epsilon for delta = \(delta)")
        }
        return EpsilonReport(
            epsilon: Swift.max(0, best), delta: delta, accountant: name,
            order: orders[bestIndex], warnings: warnings)
    }

    /// The smallest delta over the order grid for `epsilon`.
    ///
    /// Uses `log delta = (alpha - 1)(rho - epsilon + log1p(-1/alpha)) - log alpha` (Balle et al.
    /// 2020) and the KL bound `delta <= sqrt(1 - exp(-rho))`, whichever is smaller.
    public func delta(epsilon: Double) throws -> Double {
        try Validate.epsilon(epsilon)
        var best = Double.infinity
        for (a, r) in zip(orders, rdp) {
            var logDelta = r == 0 ? -Double.infinity : 0.5 * log1p(-exp(-r))
            if a > 1.01 {
                logDelta = Swift.min(logDelta, (a - 1) * (r - epsilon + log1p(-1 / a)) - log(a))
            }
            best = Swift.min(best, logDelta)
        }
        return Swift.min(exp(best), 1)
    }
}

// MARK: - Sampled Gaussian RDP

/// The RDP of one subsampled Gaussian step, `rho(alpha)`, for sensitivity 1.
enum SampledGaussianRDP {
    /// Poisson sampling with probability `q`, add/remove-one (Mironov, Talwar, Zhang 2019).
    static func poisson(q: Double, sigma: Double, order alpha: Double) -> Double {
        if q == 1 { return alpha / (2 * sigma * sigma) }
        if alpha.isInfinite { return .infinity }
        let logA: Double
        if alpha == alpha.rounded(), alpha <= 1e6 {
            logA = logAInteger(q: q, sigma: sigma, alpha: Int(alpha))
        } else {
            logA = logAFractional(q: q, sigma: sigma, alpha: alpha)
        }
        return Swift.max(0, logA / (alpha - 1))
    }

    /// `log A_alpha` for integer alpha:
    /// `A = sum_{i=0}^{alpha} C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2))`.
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        let logQ = log(q), log1mQ = log1p(-q)
        let s2 = 2 * sigma * sigma
        var sum = Special.LogSum()
        var logBinom = 0.0 // log C(alpha, 0)
        for i in 0...alpha {
            if i > 0 { logBinom += log(Double(alpha - i + 1) / Double(i)) }
            let di = Double(i)
            sum.add(logBinom + di * logQ + Double(alpha - i) * log1mQ + (di * di - di) / s2)
        }
        return sum.value
    }

    /// `log A_alpha` for fractional alpha by the two-sided series of Mironov, Talwar, Zhang
    /// 2019 (Section 3.3): with `z0 = sigma^2 log(1/q - 1) + 1/2`,
    /// `A = sum_i C(alpha, i) [q^i (1-q)^(alpha-i) e^{(i^2-i)/(2 sigma^2)} erfc((i - z0)/(sqrt2 sigma)) / 2
    ///    + q^(alpha-i) (1-q)^i e^{((alpha-i)^2-(alpha-i))/(2 sigma^2)} erfc((z0 - (alpha-i))/(sqrt2 sigma)) / 2]`,
    /// summed until both terms fall below `e^-30` (the binomial coefficients change sign past
    /// `alpha`, so positive and negative parts are kept apart in log space).
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        var positive = Special.LogSum(), negative = Special.LogSum()
        let logQ = log(q), log1mQ = log1p(-q)
        let s2 = 2 * sigma * sigma
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        let sqrt2Sigma = 2.0.squareRoot() * sigma
        var logAbsCoef = 0.0 // log |C(alpha, 0)|
        var coefPositive = true
        var i = 0
        while i < 100_000 {
            if i > 0 {
                let factor = (alpha - Double(i) + 1) / Double(i)
                logAbsCoef += log(abs(factor))
                if factor < 0 { coefPositive.toggle() }
            }
            let di = Double(i), j = alpha - di
            let logT0 = logAbsCoef + di * logQ + j * log1mQ
            let logT1 = logAbsCoef + j * logQ + di * log1mQ
            let logE0 = log(0.5) + Special.logErfc((di - z0) / sqrt2Sigma)
            let logE1 = log(0.5) + Special.logErfc((z0 - j) / sqrt2Sigma)
            let logS0 = logT0 + (di * di - di) / s2 + logE0
            let logS1 = logT1 + (j * j - j) / s2 + logE1
            if coefPositive {
                positive.add(logS0)
                positive.add(logS1)
            } else {
                negative.add(logS0)
                negative.add(logS1)
            }
            i += 1
            if Swift.max(logS0, logS1) < -30, di > alpha { break }
        }
        return Special.logSub(positive.value, negative.value)
    }

    /// Sampling `m` of `n` records without replacement (`gamma = m/n`), replace-one, by the
    /// general bound of Wang, Balle, Kasiviswanathan 2019 (Theorem 9; Corollary 10 between
    /// integer orders).
    static func withoutReplacement(gamma: Double, sigma: Double, order alpha: Double) -> Double {
        if gamma >= 1 { return alpha / (2 * sigma * sigma) }
        if alpha.isInfinite { return .infinity }
        if alpha == alpha.rounded() {
            return logAWithoutReplacement(gamma: gamma, sigma: sigma, alpha: Int(alpha)) / (alpha - 1)
        }
        let lo = alpha.rounded(.down), hi = alpha.rounded(.up)
        // (alpha - 1) rho(alpha) is convex in alpha, so interpolating it between integers is
        // an upper bound (Corollary 10); at alpha = 1 it is 0.
        let x = lo == 1 ? 0 : logAWithoutReplacement(gamma: gamma, sigma: sigma, alpha: Int(lo))
        let y = logAWithoutReplacement(gamma: gamma, sigma: sigma, alpha: Int(hi))
        let t = alpha - lo
        return ((1 - t) * x + t * y) / (alpha - 1)
    }

    /// `log` of the Theorem 9 bound on `A_alpha` for integer alpha >= 2, with the Gaussian's
    /// `rho(j) = j / (2 sigma^2)` and `e^{rho(inf)} = inf` (so `min(2, ...) = 2`).
    static func logAWithoutReplacement(gamma: Double, sigma: Double, alpha: Int) -> Double {
        if alpha <= 1 { return 0 }
        let s2 = 2 * sigma * sigma
        let logGamma = log(gamma)
        let rho2 = 2 / s2
        var logA = 0.0 // the leading 1
        var logBinom = 0.0
        for j in 1...alpha {
            logBinom += log(Double(alpha - j + 1)) - log(Double(j))
            if j == 1 { continue }
            let dj = Double(j)
            let term: Double
            if j == 2 {
                // min(4 (e^{rho2} - 1), 2 e^{rho2})
                let a = log(4) + rho2 + log(-expm1(-rho2))
                let b = log(2) + rho2
                term = 2 * logGamma + logBinom + Swift.min(a, b)
            } else {
                term = dj * logGamma + logBinom + log(2) + (dj - 1) * dj / s2
            }
            logA = Special.logAdd(logA, term)
        }
        return logA
    }
}
