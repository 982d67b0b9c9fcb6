import Benchmark
import Foundation

// DPKit's figures on ordo-one/benchmark.
//
// The machine the suites run on is shared and noisy, so the thresholds guard RATIOS of two
// sides timed alternately (tensor API against raw cblas_sgemm, private step against
// non-private step, fast per-sample norms against materialised per-sample gradients): load
// from other processes slows both sides of each pair alike. The library times one closure per
// benchmark and cannot pair two, so a paired benchmark runs once (`Figures.configuration`) and
// does its own pairing here; what it reports are custom metrics (integers: ratios in per
// mille, rates in milli-units), checked against `Thresholds/<Suite>.<benchmark>.p90.json` by
// `swift package benchmark thresholds check`. With one iteration, p90 is that one value.
//
// `DPKIT_BENCH_SLOWDOWN=k` runs the measured (DPKit) side k times per timed call: a 3x slower
// DPKit must trip the thresholds (`make bench-suites-selftest`).

/// The figures a DPKit suite reports, as custom metrics of ordo-one/benchmark.
public enum Figures {
    /// How many times the measured side runs per timed call (1 unless `DPKIT_BENCH_SLOWDOWN`).
    public static let slowdown: Int = {
        let k = ProcessInfo.processInfo.environment["DPKIT_BENCH_SLOWDOWN"].flatMap { Int($0) } ?? 1
        return max(1, k)
    }()

    /// A ratio, higher is better, reported in per mille (0.9 -> 900).
    public static func ratio(_ name: String) -> BenchmarkMetric {
        .custom("\(name) (per mille)", polarity: .prefersLarger, useScalingFactor: false)
    }

    /// A rate, higher is better, reported in thousandths of `unit` (45 GFLOP/s -> 45000).
    public static func rate(_ name: String, unit: String) -> BenchmarkMetric {
        .custom("\(name) (1/1000 \(unit))", polarity: .prefersLarger, useScalingFactor: false)
    }

    /// A time per call, lower is better, in microseconds.
    public static func microseconds(_ name: String) -> BenchmarkMetric {
        .custom("\(name) (us per call)", polarity: .prefersSmaller, useScalingFactor: false)
    }

    /// The configuration of a benchmark that does its own timing: one iteration, no warm-up by
    /// the library, `metrics` plus wall clock; tolerance 0 at p90 (the thresholds are minima
    /// and maxima, as they were in the old harness's thresholds.json).
    public static func configuration(_ metrics: [BenchmarkMetric]) -> Benchmark.Configuration {
        .init(
            metrics: [.wallClock] + metrics, warmupIterations: 0, maxDuration: .seconds(600), maxIterations: 1,
            thresholds: Dictionary(
                uniqueKeysWithValues: metrics.map {
                    ($0, BenchmarkThresholds(relative: [.p90: 0], absolute: [.p90: 0]))
                }))
    }

    /// Records `value` (a ratio or rate) in thousandths.
    public static func record(_ benchmark: Benchmark, _ metric: BenchmarkMetric, milli value: Double) {
        benchmark.measurement(metric, Int((value * 1000).rounded()))
    }

    // MARK: - Timing

    /// Median seconds of `body`, after `warmup` untimed calls.
    public static func medianSeconds(warmup: Int = 2, repetitions: Int = 11, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<repetitions { times.append(seconds(body)) }
        return median(times)
    }

    /// Times `measured` (DPKit, run `slowdown` times per call) and `reference` alternately,
    /// `repetitions` pairs after a warm-up, alternating which side goes first. Returns the
    /// median seconds of each side and the median of the per-pair ratios
    /// `reference time / measured time` (higher is better for DPKit).
    public static func paired(
        warmup: Int = 2, repetitions: Int = 21, measured: () -> Void, reference: () -> Void
    )
        -> (measured: Double, reference: Double, ratio: Double)
    {
        func m() { for _ in 0..<slowdown { measured() } }
        for _ in 0..<warmup {
            m()
            reference()
        }
        var tm: [Double] = [], tr: [Double] = [], ratios: [Double] = []
        for rep in 0..<repetitions {
            var x = 0.0, y = 0.0
            if rep % 2 == 0 {
                x = seconds(m)
                y = seconds(reference)
            } else {
                y = seconds(reference)
                x = seconds(m)
            }
            tm.append(x)
            tr.append(y)
            ratios.append(y / x)
        }
        return (median(tm), median(tr), median(ratios))
    }

    /// `body` run `slowdown` times: the measured side of an unpaired figure.
    public static func measured(_ body: @escaping () -> Void) -> () -> Void {
        { for _ in 0..<slowdown { body() } }
    }

    /// Wall-clock seconds of one call.
    public static func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s[s.count / 2]
    }

    // MARK: - Environment

    public static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "?" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }

    public static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
