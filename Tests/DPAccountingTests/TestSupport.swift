import Foundation
import Testing

@testable import DPAccounting

/// The accountants under the shared contract.
enum AccountantKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case rdp, pld
    var testDescription: String { rawValue }

    /// A fresh accountant. The PLD uses a coarser grid than production to keep the debug
    /// build fast; the production grid is exercised by the golden tests.
    func make() -> any PrivacyAccountant {
        switch self {
        case .rdp: return RDPAccountant()
        case .pld: return PLDAccountant.coarse
        }
    }
}

/// A Poisson-sampled Gaussian step.
func step(_ q: Double, _ sigma: Double) -> DpEvent {
    .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma))
}

/// The analytic Gaussian mechanism (Balle and Wang 2018, Theorem 8), sensitivity 1:
/// `delta(eps) = Phi(-eps sigma + 1/(2 sigma)) - e^eps Phi(-eps sigma - 1/(2 sigma))`.
enum AnalyticGaussian {
    static func phi(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    /// `log Phi(z)` for `z < 0` far into the tail, from the asymptotic series of `erfc`.
    static func logPhi(_ z: Double) -> Double {
        if z > -30 { return log(phi(z)) }
        let x = -z / 2.0.squareRoot(), u = 1 / (x * x)
        return log(0.5) - x * x - log(x) - 0.5 * log(Double.pi) + log(1 - u / 2 + 3 * u * u / 4 - 15 * u * u * u / 8)
    }

    static func delta(epsilon eps: Double, sigma: Double) -> Double {
        phi(-eps * sigma + 1 / (2 * sigma)) - exp(eps + logPhi(-eps * sigma - 1 / (2 * sigma)))
    }

    /// The epsilon with `delta(epsilon) = delta`, by bisection (delta decreases in epsilon).
    static func epsilon(delta: Double, sigma: Double) -> Double {
        var lo = 0.0, hi = 1.0
        while self.delta(epsilon: hi, sigma: sigma) > delta { hi *= 2 }
        for _ in 0..<200 {
            let mid = 0.5 * (lo + hi)
            if self.delta(epsilon: mid, sigma: sigma) > delta { lo = mid } else { hi = mid }
        }
        return hi
    }
}

/// Relative-and-absolute closeness.
func isClose(_ a: Double, _ b: Double, rel: Double, abs absTol: Double = 0) -> Bool {
    abs(a - b) <= Swift.max(absTol, rel * Swift.max(abs(a), abs(b)))
}

/// Heavier sweeps run only with `DPKIT_HEAVY_TESTS=1`.
let heavyTests = ProcessInfo.processInfo.environment["DPKIT_HEAVY_TESTS"] == "1"

extension PLDAccountant {
    /// A coarse grid for fast tests (1e-3, at least 10 points per loss standard deviation).
    static let coarse = PLDAccountant(valueDiscretizationInterval: 1e-3, gridPointsPerDeviation: 10)
}
