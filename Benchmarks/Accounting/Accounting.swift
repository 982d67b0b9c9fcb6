import Benchmark
import DPAccounting
import Foundation
import Paired

// The Accounting suite: the RDP and PLD accountants on the reference settings of issue 3.
//
//     cd Benchmarks && swift package benchmark --target Accounting
//
// Targets: RDP epsilon for 1e5 composed steps well under a millisecond; PLD bounds for each of
// the four reference settings under 100 ms on one core. Figures: median microseconds per call.

/// The four reference settings (delta = 1e-5): q, sigma, steps.
private let references: [(q: Double, sigma: Double, steps: Int)] = [
    (256.0 / 60000, 1.1, 14062), (0.004, 1.3, 3750), (0.01, 4.0, 10000), (0.01, 2.0, 10000),
]

private func step(_ q: Double, _ sigma: Double) -> DpEvent {
    .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma))
}

/// A benchmark reporting the median microseconds of `body` (run `slowdown` times per call).
private func timeBenchmark(_ name: String, warmup: Int, repetitions: Int, _ body: @escaping () -> Void) {
    let metric = Figures.microseconds("compose + epsilon")
    Benchmark(name, configuration: Figures.configuration([metric])) { benchmark in
        let t = Figures.medianSeconds(warmup: warmup, repetitions: repetitions, Figures.measured(body))
        benchmark.measurement(metric, Int((t * 1e6).rounded()))
    }
}

let benchmarks: @Sendable () -> Void = {
    // A fresh accountant composes 1e5 steps of a new event (the RDP curve at every order) and
    // converts to epsilon.
    let event = step(0.01, 1.0)
    timeBenchmark("RDP compose 1e5 steps + epsilon", warmup: 2, repetitions: 51) {
        var a = RDPAccountant()
        do {
            try a.compose(event, count: 100_000)
            blackHole(try a.epsilon(delta: 1e-5))
        } catch { fatalError("\(error)") }
    }

    // PLD bounds (both directions, upper and lower) on each reference setting.
    for r in references {
        timeBenchmark("PLD compose + bounds q=\(r.q) sigma=\(r.sigma) T=\(r.steps)", warmup: 1, repetitions: 7) {
            var a = PLDAccountant()
            do {
                try a.compose(step(r.q, r.sigma), count: r.steps)
                blackHole(try a.epsilon(delta: 1e-5))
            } catch { fatalError("\(error)") }
        }
    }
}
