import Foundation
import Testing

@testable import DPAccounting

@Suite("PLDAccountant")
struct PLDAccountantTests {
    /// Production setting (interval 1e-4) on all four goldens; each takes well under a second
    /// even in a debug build.
    @Test("upper bound within 1% of dp_accounting 0.6, lower bound below it", arguments: Golden.all)
    func goldens(_ g: Golden) throws {
        var acct = PLDAccountant()
        try acct.compose(g.event)
        let r = try acct.epsilon(delta: 1e-5)
        #expect(abs(r.epsilonUpper! - g.pld) <= 0.01 * g.pld)
        #expect(r.epsilonUpper! >= g.pld * (1 - 1e-3), "an upper bound should not undercut the reference")
        #expect(r.epsilonLower! < g.pld)
        #expect(r.epsilonLower! <= r.epsilonUpper!)
        #expect(r.epsilonUpper! - r.epsilonLower! < 0.01 * g.pld, "the certified interval is tight")
        #expect(r.epsilon == r.epsilonUpper)
        #expect(r.accountant == "pld")
        #expect(r.warnings.isEmpty)
    }

    /// With a 1e-3 grid to stay fast in debug builds (q = 1 spreads the loss over many points).
    @Test(
        "q = 1 matches the analytic Gaussian mechanism (Balle and Wang 2018)",
        arguments: [(0.8, 1), (2.0, 1), (5.0, 1), (3.0, 10)] as [(Double, Int)])
    func analyticGaussian(_ sc: (Double, Int)) throws {
        let (sigma, steps) = sc
        var a = PLDAccountant.coarse
        try a.compose(.gaussian(noiseMultiplier: sigma), count: steps)
        let bounds = try a.composedBounds()
        for delta in [1e-5, 1e-3] {
            var lower = 0.0, upper = 0.0
            for d in bounds {
                lower = max(lower, d.lower.epsilon(delta: delta))
                upper = max(upper, d.upper.epsilon(delta: delta))
            }
            // T Gaussian steps of sigma compose to one Gaussian with sigma / sqrt(T).
            let exact = AnalyticGaussian.epsilon(delta: delta, sigma: sigma / Double(steps).squareRoot())
            #expect(lower <= exact + 1e-9)
            #expect(upper >= exact - 1e-9)
            #expect(isClose(upper, exact, rel: 1e-3, abs: 1e-5), "upper \(upper) exact \(exact)")
            #expect(isClose(lower, exact, rel: 1e-3, abs: 1e-5), "lower \(lower) exact \(exact)")
            let dUpper = bounds.map { $0.upper.delta(epsilon: exact) }.max()!
            let dLower = bounds.map { $0.lower.delta(epsilon: exact) }.max()!
            #expect(dLower <= delta * (1 + 1e-9) && delta <= dUpper * (1 + 1e-9))
        }
    }

    @Test("a delta below the truncated mass gives an infinite upper bound, with a warning")
    func tinyDelta() throws {
        var a = PLDAccountant.coarse
        try a.compose(step(0.01, 1.0), count: 100)
        let r = try a.epsilon(delta: 1e-17)
        #expect(r.epsilonUpper == .infinity && r.epsilon == .infinity)
        #expect(r.epsilonLower!.isFinite)
        #expect(r.warnings.contains { $0.contains("cannot bound") })
    }

    @Test("the replace-one relation is refused")
    func replaceOne() {
        var a = PLDAccountant(neighboringRelation: .replaceOne)
        #expect(throws: AccountingError.self) { try a.compose(.gaussian(noiseMultiplier: 1)) }
    }

    @Test("the grid is coarsened for very long compositions, with a warning")
    func adaptiveGrid() throws {
        var a = PLDAccountant()
        try a.compose(step(1, 0.5), count: 100_000)
        let r = try a.epsilon(delta: 1e-5)
        #expect(r.warnings.contains { $0.contains("discretisation interval raised") })
        let exact = AnalyticGaussian.epsilon(delta: 1e-5, sigma: 0.5 / 100_000.0.squareRoot())
        #expect(r.epsilonLower! <= exact && exact <= r.epsilonUpper!)
        #expect(isClose(r.epsilonUpper!, exact, rel: 1e-3))
    }

    @Test("FFT sizes are 5-smooth and large enough", arguments: [1, 7, 1000, 131_073, 200_001])
    func fastSizes(_ n: Int) {
        let s = FFTComposition.fastSize(atLeast: n)
        var m = s
        for p in [2, 3, 5] { while m % p == 0 { m /= p } }
        #expect(s >= n && m == 1 && s < 2 * n + 2)
    }
}

@Suite("Accountant invariants")
struct InvariantTests {
    /// A sparse sample of q in [1e-3, 1], sigma in [0.5, 10], steps in [1, 1e5]; the full grid
    /// runs with DPKIT_HEAVY_TESTS=1.
    static let grid: [(Double, Double, Int)] = {
        if heavyTests {
            var g: [(Double, Double, Int)] = []
            for q in [1e-3, 1e-2, 0.1, 1] {
                for s in [0.5, 1, 3, 10] { for t in [1, 100, 10_000, 100_000] { g.append((q, s, t)) } }
            }
            return g
        }
        return [
            (1e-3, 0.5, 100_000), (1e-2, 1, 1), (1e-2, 3, 10_000), (0.1, 0.5, 100),
            (0.1, 10, 100_000), (1, 1, 100), (1, 10, 1), (1e-3, 10, 1000),
        ]
    }()

    @Test("PLD lower <= PLD upper <= RDP", arguments: grid, [1e-5, 1e-6])
    func ordering(_ c: (Double, Double, Int), delta: Double) throws {
        let (q, s, t) = c
        var rdp = RDPAccountant(), pld = (heavyTests ? PLDAccountant() : PLDAccountant.coarse)
        try rdp.compose(step(q, s), count: t)
        try pld.compose(step(q, s), count: t)
        let r = try rdp.epsilon(delta: delta).epsilon
        let p = try pld.epsilon(delta: delta)
        #expect(p.epsilonLower! <= p.epsilonUpper!)
        #expect(p.epsilonUpper! <= r * (1 + 1e-3) + 1e-6, "PLD \(p.epsilonUpper!) RDP \(r)")
        #expect(p.epsilonUpper! - p.epsilonLower! <= 0.01 * p.epsilonUpper! + 1e-4, "the certified interval is tight")
    }

    @Test(
        "q = 1, one step: RDP is alpha / (2 sigma^2) and PLD brackets the analytic Gaussian",
        arguments: [0.5, 1.0, 4.0, 10.0])
    func fullBatch(_ sigma: Double) throws {
        var pld = PLDAccountant.coarse
        try pld.compose(step(1, sigma))
        var rdp = RDPAccountant()
        try rdp.compose(step(1, sigma))
        #expect(zip(rdp.orders, rdp.rdp).allSatisfy { $1 == $0 / (2 * sigma * sigma) })
        for delta in [1e-5, 1e-6] {
            let r = try pld.epsilon(delta: delta)
            let exact = AnalyticGaussian.epsilon(delta: delta, sigma: sigma)
            #expect(r.epsilonLower! <= exact + 1e-9 && exact <= r.epsilonUpper! + 1e-9)
            #expect(isClose(r.epsilonUpper!, exact, rel: 1e-3, abs: 1e-6))
            #expect(try rdp.epsilon(delta: delta).epsilon >= exact)
        }
    }
}
