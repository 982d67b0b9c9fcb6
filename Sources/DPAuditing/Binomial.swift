import Foundation

/// The binomial distribution `Bin(n, p)`, evaluated in log space so that tails of 10^5 trials
/// and probabilities far below 1e-300 stay finite. The auditing bounds are built on it.
public struct Binomial: Sendable {
    public let trials: Int
    public let probability: Double

    public init(trials: Int, probability: Double) {
        precondition(trials >= 0, "a binomial needs a non-negative number of trials, got \(trials)")
        precondition(probability >= 0 && probability <= 1, "probability \(probability) is outside [0, 1]")
        self.trials = trials
        self.probability = probability
    }

    /// `log P[X = k]`; `-inf` outside `0...n`.
    public func logProbability(_ k: Int) -> Double {
        guard k >= 0, k <= trials else { return -.infinity }
        let p = probability
        if p == 0 { return k == 0 ? 0 : -.infinity }
        if p == 1 { return k == trials ? 0 : -.infinity }
        let n = Double(trials)
        let kk = Double(k)
        return lgamma(n + 1) - lgamma(kk + 1) - lgamma(n - kk + 1) + kk * log(p) + (n - kk) * log1p(-p)
    }

    /// `P[lower <= X <= upper]` (the bounds clamped to `0...n`), summed in log space.
    public func probability(from lower: Int, through upper: Int) -> Double {
        let a = max(0, lower)
        let b = min(trials, upper)
        guard a <= b else { return 0 }
        var m = -Double.infinity
        var logs: [Double] = []
        logs.reserveCapacity(b - a + 1)
        for k in a...b {
            let l = logProbability(k)
            logs.append(l)
            m = max(m, l)
        }
        guard m > -.infinity else { return 0 }
        var s = 0.0
        for l in logs { s += exp(l - m) }
        return min(1, exp(m + log(s)))
    }

    /// `P[X >= k] = I_p(k, n - k + 1)` (the regularized incomplete beta function).
    public func upperTail(atLeast k: Int) -> Double {
        if k <= 0 { return 1 }
        if k > trials { return 0 }
        return IncompleteBeta.regularized(a: Double(k), b: Double(trials - k + 1), x: probability)
    }

    /// `P[X <= k] = I_(1-p)(n - k, k + 1)`.
    public func lowerTail(atMost k: Int) -> Double {
        if k < 0 { return 0 }
        if k >= trials { return 1 }
        return IncompleteBeta.regularized(a: Double(trials - k), b: Double(k + 1), x: 1 - probability)
    }
}

/// The regularized incomplete beta function `I_x(a, b)`, by its continued fraction (evaluated
/// with the modified Lentz method, DLMF 8.17.22), using the symmetry
/// `I_x(a, b) = 1 - I_(1-x)(b, a)` where the fraction converges slowly. Converges in
/// `O(sqrt(max(a, b)))` terms; the binomial tails of 10^5 trials take microseconds.
/// `Binomial.probability(from:through:)` (a direct sum) is its slow reference in the tests.
enum IncompleteBeta {
    static func regularized(a: Double, b: Double, x: Double) -> Double {
        precondition(a > 0 && b > 0, "incomplete beta needs a, b > 0")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        if x < (a + 1) / (a + b + 2) {
            return min(1, exp(logFront) * fraction(a: a, b: b, x: x) / a)
        }
        return max(0, 1 - exp(logFront) * fraction(a: b, b: a, x: 1 - x) / b)
    }

    /// The continued fraction `1 / (1 + d1 / (1 + d2 / (1 + ...)))` of DLMF 8.17.22.
    private static func fraction(a: Double, b: Double, x: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...100_000 {
            let mm = Double(m)
            // Even step: d_2m = m (b - m) x / ((a + 2m - 1)(a + 2m)).
            var num = mm * (b - mm) * x / ((a + 2 * mm - 1) * (a + 2 * mm))
            d = 1 + num * d
            if abs(d) < tiny { d = tiny }
            c = 1 + num / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            // Odd step: d_2m+1 = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)).
            num = -(a + mm) * (a + b + mm) * x / ((a + 2 * mm) * (a + 2 * mm + 1))
            d = 1 + num * d
            if abs(d) < tiny { d = tiny }
            c = 1 + num / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let step = d * c
            h *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return h
    }
}

/// Exact (Clopper-Pearson 1934) one-sided confidence bounds for a binomial proportion.
///
/// For `k` successes in `n` trials, the upper bound at level `1 - alpha` is the `p` with
/// `P[Bin(n, p) <= k] = alpha` (1 when `k = n`); the lower bound is the `p` with
/// `P[Bin(n, p) >= k] = alpha` (0 when `k = 0`). Each holds with probability at least
/// `1 - alpha` whatever the true proportion: the coverage is exact or conservative, never
/// approximate, which is what a sound privacy lower bound needs.
public enum ClopperPearson {
    /// The upper `1 - alpha` bound on the proportion.
    public static func upperBound(successes k: Int, trials n: Int, alpha: Double) -> Double {
        precondition(n > 0 && k >= 0 && k <= n, "Clopper-Pearson needs 0 <= k <= n, n > 0 (k \(k), n \(n))")
        precondition(alpha > 0 && alpha < 1, "alpha \(alpha) is outside (0, 1)")
        if k == n { return 1 }
        // P[Bin(n, p) <= k] falls as p grows: bisect for the p where it crosses alpha.
        var lo = Double(k) / Double(n)
        var hi = 1.0
        for _ in 0..<100 {
            let mid = (lo + hi) / 2
            if Binomial(trials: n, probability: mid).lowerTail(atMost: k) > alpha { lo = mid } else { hi = mid }
            if hi - lo < 1e-15 { break }
        }
        return hi
    }

    /// The lower `1 - alpha` bound on the proportion.
    public static func lowerBound(successes k: Int, trials n: Int, alpha: Double) -> Double {
        1 - upperBound(successes: n - k, trials: n, alpha: alpha)
    }
}
