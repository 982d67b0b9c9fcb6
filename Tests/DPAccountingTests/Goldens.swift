// Golden values shared by the tests.
import Testing

@testable import DPAccounting

/// A Poisson-sampled Gaussian setting with `dp_accounting` 0.6 reference epsilons at
/// delta = 1e-5 (`RdpAccountant()` and `PLDAccountant()` with default settings, composing
/// `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`).
struct Golden: Sendable, CustomTestStringConvertible {
    let q: Double
    let sigma: Double
    let steps: Int
    let rdp: Double
    let pld: Double
    var testDescription: String { "q=\(q) sigma=\(sigma) T=\(steps)" }

    var event: DpEvent {
        .selfComposed(
            event: .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma)),
            count: steps)
    }

    static let all: [Golden] = [
        Golden(q: 256.0 / 60000, sigma: 1.1, steps: 14062, rdp: 2.5966, pld: 2.3817),
        Golden(q: 0.004, sigma: 1.3, steps: 3750, rdp: 0.9220, pld: 0.8336),
        Golden(q: 0.01, sigma: 4.0, steps: 10000, rdp: 1.0355, pld: 0.9470),
        Golden(q: 0.01, sigma: 2.0, steps: 10000, rdp: 2.3529, pld: 2.1628),
    ]
}
