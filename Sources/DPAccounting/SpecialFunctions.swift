// Numerically stable helpers in log space, shared by the accountants.
import Foundation

/// Small numerical kernels used by the accountants. All work in log space where a value can
/// overflow or underflow a `Double`.
enum Special {
    /// `log(exp(a) + exp(b))` without overflow; `-inf` is the identity.
    @inline(__always)
    static func logAdd(_ a: Double, _ b: Double) -> Double {
        if a == -.infinity { return b }
        if b == -.infinity { return a }
        let m = Swift.max(a, b)
        return m + log1p(exp(-abs(a - b)))
    }

    /// `log(exp(a) - exp(b))` for `a >= b`; returns `-inf` when the difference is not positive
    /// (which only happens through rounding when `a` and `b` agree to machine precision).
    @inline(__always)
    static func logSub(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        if b >= a { return -.infinity }
        let d = b - a
        return a + (d > -0.693 ? log(-expm1(d)) : log1p(-exp(d)))
    }

    /// `log(erfc(x))`, accurate far into the upper tail where `erfc` underflows.
    ///
    /// For `x >= 25` it uses the asymptotic series
    /// `erfc(x) = exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + 105/(16x^8))`,
    /// whose truncation error there is below 1e-13 relative.
    static func logErfc(_ x: Double) -> Double {
        if x < 25 { return log(erfc(x)) }
        let z = 1 / (x * x)
        let series = 1 - z / 2 + 3 * z * z / 4 - 15 * z * z * z / 8 + 105 * z * z * z * z / 16
        return -x * x - log(x) - 0.5 * log(Double.pi) + log(series)
    }

    /// Standard normal survival function `1 - Phi(z) = erfc(z / sqrt 2) / 2`.
    @inline(__always)
    static func normalSurvival(_ z: Double) -> Double { 0.5 * erfc(z * 0.7071067811865476) }

    /// Standard normal distribution function `Phi(z)`.
    @inline(__always)
    static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z * 0.7071067811865476) }

    /// Streams `log sum exp(t_i)` with one `exp` per term: keeps the running maximum `m` and
    /// `s = sum exp(t_i - m)`, rescaling when the maximum moves.
    struct LogSum {
        private var m = -Double.infinity
        private var s = 0.0

        @inline(__always)
        mutating func add(_ t: Double) {
            if t <= m {
                s += exp(t - m)
            } else if t > -.infinity {
                s = s * exp(m - t) + 1
                m = t
            }
        }

        var value: Double { m == -.infinity ? -.infinity : m + log(s) }
    }
}
