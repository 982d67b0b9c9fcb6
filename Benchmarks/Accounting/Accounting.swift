import DPAccounting
import DPTensor
import Foundation
import Harness

// The Accounting suite: the RDP and PLD accountants on the reference settings of issue 3.
//
//     cd Benchmarks && swift build -c release && .build/release/Accounting --check Accounting/thresholds.json
//
// Targets: RDP epsilon for 1e5 composed steps well under a millisecond; PLD bounds for each of
// the four reference settings under 100 ms on one core.

/// The four reference settings (delta = 1e-5): q, sigma, steps.
private let references: [(q: Double, sigma: Double, steps: Int)] = [
    (256.0 / 60000, 1.1, 14062), (0.004, 1.3, 3750), (0.01, 4.0, 10000), (0.01, 2.0, 10000),
]

private func step(_ q: Double, _ sigma: Double) -> DpEvent {
    .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma))
}

@main enum AccountingBenchmarks {
    static func main() {
        let suite = Suite(name: "Accounting")
        print("Accounting suite (figures are calls per second; 1000 / value = ms per call)")

        // A fresh accountant composes 1e5 steps of a new event (the RDP curve at every order)
        // and converts to epsilon.
        let prototype = RDPAccountant()
        let event = step(0.01, 1.0)
        suite.measure("RDP: compose 1e5 steps + epsilon", work: 1, unit: "calls/s", repetitions: 51) {
            var a = prototype
            do {
                try a.compose(event, count: 100_000)
                blackHole(try a.epsilon(delta: 1e-5))
            } catch { fatalError("\(error)") }
        }

        // PLD bounds (both directions, upper and lower) on each reference setting.
        for r in references {
            suite.measure("PLD: compose + bounds q=\(r.q) sigma=\(r.sigma) T=\(r.steps)",
                          work: 1, unit: "calls/s", warmup: 1, repetitions: 7) {
                var a = PLDAccountant()
                do {
                    try a.compose(step(r.q, r.sigma), count: r.steps)
                    blackHole(try a.epsilon(delta: 1e-5))
                } catch { fatalError("\(error)") }
            }
        }
        exit(suite.finish())
    }
}
