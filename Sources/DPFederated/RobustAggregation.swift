import Foundation

/// How the server combines the (non-private) client updates.
///
/// The robust rules look at every client's update individually, so they run neither under
/// user-level DP (whose sensitivity analysis is for the clipped sum) nor under secure
/// aggregation (the server sees only the sum).
public enum Aggregator: Hashable, Sendable, CustomStringConvertible {
    /// The mean (weighted or uniform, ``ClientWeighting``): FedAvg.
    case mean
    /// The coordinate-wise median (Yin et al. 2018); for an even count, the mean of the two middle values.
    case median
    /// The coordinate-wise trimmed mean (Yin et al. 2018): in each coordinate the
    /// `floor(beta n)` largest and smallest values are dropped, the rest averaged.
    case trimmedMean(beta: Double)
    /// (Multi-)Krum (Blanchard et al. 2017): each update's score is the sum of squared distances
    /// to its `n - f - 2` nearest other updates; the `selected` updates with the lowest scores
    /// are averaged (`selected = 1`: Krum). Assumes `n >= 2 f + 3`.
    case krum(byzantine: Int, selected: Int)

    public var description: String {
        switch self {
        case .mean: return "mean"
        case .median: return "median"
        case .trimmedMean(let b): return "trimmed-mean(beta \(b))"
        case .krum(let f, let m): return m == 1 ? "krum(f \(f))" : "multi-krum(f \(f), m \(m))"
        }
    }

    public var isMean: Bool { self == .mean }

    /// Checks the rule can run on `n` updates.
    /// - Throws: ``FederatedError`` when Krum's assumption `n >= 2 f + 3` is violated (with the
    ///   largest f it tolerates), when trimming would drop every value, or selecting more than n.
    public func check(clients n: Int) throws {
        switch self {
        case .mean, .median:
            guard n >= 1 else {
                throw FederatedError("\(self) of no client updates: sample at least one client per round")
            }
        case .trimmedMean(let beta):
            let k = Int(Foundation.floor(beta * Double(n)))
            guard beta >= 0, beta < 0.5, n - 2 * k >= 1 else {
                throw FederatedError(
                    "trimmed mean beta \(beta) on \(n) updates drops \(2 * k) values per coordinate, leaving none: beta must be in [0, 0.5)"
                )
            }
        case .krum(let f, let m):
            guard f >= 0, n >= 2 * f + 3 else {
                throw FederatedError(
                    "Krum with f = \(f) Byzantine clients needs n >= 2f + 3 = \(2 * f + 3) updates per round (Blanchard et al. 2017), got \(n): sample more clients per round or lower f to at most \(max(0, (n - 3) / 2))"
                )
            }
            guard m >= 1, m <= n - f else {
                throw FederatedError(
                    "multi-Krum selects \(m) updates of \(n) with f = \(f): it must be in 1...\(n - f)")
            }
        }
    }

    /// Combines `updates` (all the same length). `weights` are used by the mean only.
    /// - Precondition: ``check(clients:)`` passed for `updates.count`.
    public func combine(_ updates: [[Float]], weights: [Double]? = nil) -> [Float] {
        precondition(!updates.isEmpty, "Aggregator.combine: no updates")
        let d = updates[0].count, n = updates.count
        switch self {
        case .mean:
            let w = weights ?? Array(repeating: 1, count: n)
            let total = w.reduce(0, +)
            var out = [Double](repeating: 0, count: d)
            for (u, wi) in zip(updates, w) { for j in 0..<d { out[j] += wi * Double(u[j]) } }
            return out.map { Float($0 / total) }
        case .median, .trimmedMean:
            let k: Int
            if case .trimmedMean(let beta) = self { k = Int(Foundation.floor(beta * Double(n))) } else { k = 0 }
            var column = [Float](repeating: 0, count: n)
            var out = [Float](repeating: 0, count: d)
            for j in 0..<d {
                for i in 0..<n { column[i] = updates[i][j] }
                column.sort()
                if self == .median {
                    out[j] = n % 2 == 1 ? column[n / 2] : Float((Double(column[n / 2 - 1]) + Double(column[n / 2])) / 2)
                } else {
                    var s = 0.0
                    for i in k..<(n - k) { s += Double(column[i]) }
                    out[j] = Float(s / Double(n - 2 * k))
                }
            }
            return out
        case .krum(let f, let m):
            let chosen = Self.krumSelection(updates, byzantine: f, selected: m)
            return Aggregator.mean.combine(chosen.map { updates[$0] })
        }
    }

    /// The indices Multi-Krum keeps, lowest score first.
    public static func krumSelection(_ updates: [[Float]], byzantine f: Int, selected m: Int) -> [Int] {
        let n = updates.count
        var dist = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for k in (i + 1)..<max(i + 1, n) {
                var s = 0.0
                for j in updates[i].indices {
                    let t = Double(updates[i][j]) - Double(updates[k][j])
                    s += t * t
                }
                dist[i][k] = s
                dist[k][i] = s
            }
        }
        let neighbours = n - f - 2
        let scores = (0..<n).map { i -> Double in
            let others = (0..<n).filter { $0 != i }.map { dist[i][$0] }.sorted()
            return others.prefix(neighbours).reduce(0, +)
        }
        return (0..<n).sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(m).map { $0 }
    }
}
