import Foundation
import Testing

@testable import DPAccounting

@Suite("Calibration")
struct CalibrationTests {
    static let targets: [(epsilon: Double, q: Double, steps: Int)] = [
        (1.0, 256.0 / 60000, 14062), (3.0, 0.01, 10000), (8.0, 0.1, 100), (0.5, 0.004, 3750),
    ]

    @Test(
        "the returned sigma's epsilon is <= target and within 1% of it",
        arguments: AccountantKind.allCases, 0..<targets.count)
    func roundTrip(_ kind: AccountantKind, _ i: Int) throws {
        let t = Self.targets[i]
        let sigma: Double
        switch kind {
        case .rdp:
            sigma = try noiseMultiplier(
                targetEpsilon: t.epsilon, delta: 1e-5, samplingProbability: t.q,
                steps: t.steps, accountant: RDPAccountant())
        case .pld:
            sigma = try noiseMultiplier(
                targetEpsilon: t.epsilon, delta: 1e-5, samplingProbability: t.q,
                steps: t.steps, accountant: PLDAccountant.coarse)
        }
        var a = kind.make()
        try a.compose(step(t.q, sigma), count: t.steps)
        let eps = try a.epsilon(delta: 1e-5).epsilon
        #expect(eps <= t.epsilon)
        #expect(eps >= 0.99 * t.epsilon, "sigma \(sigma) gives \(eps)")
    }

    @Test("calibrating against the MNIST golden recovers sigma = 1.1")
    func recoversGolden() throws {
        let g = Golden.all[0]
        let sigma = try noiseMultiplier(targetEpsilon: g.rdp, delta: 1e-5, samplingProbability: g.q, steps: g.steps)
        #expect(abs(sigma - 1.1) < 0.01)
    }

    @Test("without replacement via an event builder (replace-one RDP)")
    func withoutReplacement() throws {
        let acct = RDPAccountant(neighboringRelation: .replaceOne)
        let build = { (s: Double) -> DpEvent in
            .selfComposed(
                event: .sampledWithoutReplacement(
                    sampleSize: 256, datasetSize: 60000,
                    event: .gaussian(noiseMultiplier: s)), count: 2000)
        }
        let sigma = try noiseMultiplier(targetEpsilon: 2, delta: 1e-5, accountant: acct, event: build)
        var a = acct
        try a.compose(build(sigma))
        let eps = try a.epsilon(delta: 1e-5).epsilon
        #expect(eps <= 2 && eps >= 1.98)
        // The Poisson builder is refused by the replace-one accountant.
        #expect(throws: AccountingError.self) {
            try noiseMultiplier(targetEpsilon: 2, delta: 1e-5, samplingProbability: 0.01, steps: 10, accountant: acct)
        }
    }

    @Test("maxSteps is the largest T within budget", arguments: AccountantKind.allCases)
    func steps(_ kind: AccountantKind) throws {
        let t: Int
        switch kind {
        case .rdp: t = try maxSteps(targetEpsilon: 2, delta: 1e-5, samplingProbability: 0.01, noiseMultiplier: 1.0)
        case .pld:
            t = try maxSteps(
                targetEpsilon: 2, delta: 1e-5, samplingProbability: 0.01, noiseMultiplier: 1.0,
                accountant: PLDAccountant.coarse)
        }
        func eps(_ n: Int) throws -> Double {
            var a = kind.make()
            try a.compose(step(0.01, 1.0), count: n)
            return try a.epsilon(delta: 1e-5).epsilon
        }
        #expect(t > 100)
        #expect(try eps(t) <= 2)
        #expect(try eps(t + 1) > 2)
        #expect(try maxSteps(targetEpsilon: 0.01, delta: 1e-5, samplingProbability: 1, noiseMultiplier: 1) == 0)
    }

    @Test("invalid calibration inputs are named")
    func invalid() {
        #expect(throws: AccountingError.self) {
            try noiseMultiplier(targetEpsilon: 0, delta: 1e-5, samplingProbability: 0.1, steps: 10)
        }
        #expect(throws: AccountingError.self) {
            try noiseMultiplier(targetEpsilon: 1, delta: 1, samplingProbability: 0.1, steps: 10)
        }
        #expect(throws: AccountingError.self) {
            try noiseMultiplier(targetEpsilon: 1, delta: 1e-5, samplingProbability: 0, steps: 10)
        }
        #expect(throws: AccountingError.self) {
            try noiseMultiplier(targetEpsilon: 1, delta: 1e-5, samplingProbability: 0.1, steps: -1)
        }
    }
}
