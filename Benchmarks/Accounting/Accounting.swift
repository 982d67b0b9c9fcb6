// The Accounting suite: RDP and PLD accountants on the settings of the README.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --target Accounting
import Benchmark
import DPAccounting

/// The four golden settings (delta = 1e-5): q, sigma, steps.
private let goldens: [(q: Double, sigma: Double, steps: Int)] = [
    (256.0 / 60000, 1.1, 14062), (0.004, 1.3, 3750), (0.01, 4.0, 10000), (0.01, 2.0, 10000),
]

private func step(_ q: Double, _ sigma: Double) -> DpEvent {
    .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(2)
    Benchmark.defaultConfiguration.metrics = [.wallClock, .cpuTotal, .mallocCountTotal]

    // A fresh accountant composes 1e5 steps of a new event (the RDP curve at all 265 orders is
    // computed) and converts to epsilon.
    Benchmark("RDP: compose 1e5 steps + epsilon (q=0.01, sigma=1.0)") { benchmark in
        let event = step(0.01, 1.0)
        let prototype = RDPAccountant()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var a = prototype
            do {
                try a.compose(event, count: 100_000)
                blackHole(try a.epsilon(delta: 1e-5))
            } catch { fatalError("\(error)") }
        }
        benchmark.stopMeasurement()
    }

    // The epsilon query alone on an accountant that already holds 1e5 steps.
    Benchmark("RDP: epsilon query on 1e5 composed steps") { benchmark in
        var a = RDPAccountant()
        do { try a.compose(step(0.01, 1.0), count: 100_000) } catch { fatalError("\(error)") }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try? a.epsilon(delta: 1e-5))
        }
        benchmark.stopMeasurement()
    }

    // PLD bounds (both directions, upper and lower) on each golden setting at the production grid.
    for g in goldens {
        Benchmark("PLD: epsilon bounds q=\(g.q) sigma=\(g.sigma) T=\(g.steps)",
                  configuration: .init(maxIterations: 50)) { benchmark in
            var a = PLDAccountant()
            do { try a.compose(step(g.q, g.sigma), count: g.steps) } catch { fatalError("\(error)") }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try? a.epsilon(delta: 1e-5))
            }
            benchmark.stopMeasurement()
        }
    }
}
