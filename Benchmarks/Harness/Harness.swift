import Foundation

/// A small benchmark harness: each benchmark runs its body a few times to warm up, then
/// `repetitions` times under the clock; the figure is the throughput of the median run.
/// `finish(arguments:)` prints a table and, given `--check <thresholds.json>`, compares each
/// figure with its checked-in minimum and exits non-zero on a regression.
///
/// Thresholds file: `{ "<benchmark name>": { "min": <value> } }` in the benchmark's unit
/// (higher is better for every figure).
public final class Suite {
    public struct Result: Sendable {
        public var name: String
        public var value: Double
        public var unit: String
        public var medianSeconds: Double?
    }

    public let name: String
    public private(set) var results: [Result] = []
    public var filter: String?

    public init(name: String, arguments: [String] = CommandLine.arguments) {
        self.name = name
        if let i = arguments.firstIndex(of: "--filter"), i + 1 < arguments.count { filter = arguments[i + 1] }
    }

    /// Times `body` and records `work / median seconds` in `unit` (for example GFLOP/s with
    /// `work` = 2MNK / 1e9). Returns the throughput.
    @discardableResult
    public func measure(_ name: String, work: Double, unit: String, warmup: Int = 2, repetitions: Int = 11,
                        _ body: () -> Void) -> Double {
        if let f = filter, !name.contains(f) { return .nan }
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        times.reserveCapacity(repetitions)
        for _ in 0..<repetitions {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        times.sort()
        let median = times[times.count / 2]
        let value = work / median
        results.append(Result(name: name, value: value, unit: unit, medianSeconds: median))
        print("  " + name.padding(toLength: 58, withPad: " ", startingAt: 0)
              + String(format: " %10.3f ", value) + unit.padding(toLength: 12, withPad: " ", startingAt: 0)
              + String(format: " (median %.3f ms of %d)", median * 1e3, repetitions))
        return value
    }

    /// Times `a` and `b` alternately, `repetitions` times after a warm-up, and records the
    /// median throughput of each and the median of the per-pair ratios `a / b` (throughput), so
    /// that load from other processes affects both sides of every ratio alike. Returns the ratio.
    @discardableResult
    public func compare(_ nameA: String, _ nameB: String, ratioName: String, work: Double, unit: String,
                        warmup: Int = 2, repetitions: Int = 21, _ a: () -> Void, _ b: () -> Void) -> Double {
        if let f = filter, !(nameA.contains(f) || nameB.contains(f) || ratioName.contains(f)) { return .nan }
        for _ in 0..<warmup { a(); b() }
        var ta: [Double] = [], tb: [Double] = [], ratios: [Double] = []
        for rep in 0..<repetitions {
            // Alternate which goes first, so neither side always follows the other.
            var x = 0.0, y = 0.0
            if rep % 2 == 0 { x = Suite.seconds(a); y = Suite.seconds(b) } else { y = Suite.seconds(b); x = Suite.seconds(a) }
            ta.append(x); tb.append(y); ratios.append(y / x)
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        results.append(Result(name: nameA, value: work / median(ta), unit: unit, medianSeconds: median(ta)))
        results.append(Result(name: nameB, value: work / median(tb), unit: unit, medianSeconds: median(tb)))
        results.append(Result(name: ratioName, value: median(ratios), unit: "x", medianSeconds: nil))
        for r in results.suffix(3) {
            print("  " + r.name.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: " %10.3f ", r.value)
                  + r.unit.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + (r.medianSeconds.map { String(format: " (median %.3f ms of %d)", $0 * 1e3, repetitions) } ?? " (median of paired runs)"))
        }
        return median(ratios)
    }

    /// Wall-clock seconds of one call.
    public static func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    /// Records a derived figure (a ratio of two measurements, say).
    public func record(_ name: String, value: Double, unit: String) {
        if let f = filter, !name.contains(f) { return }
        results.append(Result(name: name, value: value, unit: unit, medianSeconds: nil))
        print("  " + name.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: " %10.3f ", value) + unit)
    }

    /// Checks thresholds if asked (`--check path`) and returns the exit status.
    public func finish(arguments: [String] = CommandLine.arguments) -> Int32 {
        guard let i = arguments.firstIndex(of: "--check"), i + 1 < arguments.count else { return 0 }
        let path = arguments[i + 1]
        guard let data = FileManager.default.contents(atPath: path),
              let table = try? JSONDecoder().decode([String: [String: Double]].self, from: data)
        else {
            print("error: cannot read thresholds file \(path)")
            return 2
        }
        var failures = 0
        for r in results {
            guard let min = table[r.name]?["min"] else { continue }
            if !(r.value >= min) {
                print("REGRESSION: \(r.name): " + String(format: "%.3f", r.value) + " \(r.unit) is below the threshold \(min)")
                failures += 1
            }
        }
        let missing = table.keys.filter { k in !results.contains { $0.name == k } && (filter.map { k.contains($0) } ?? true) }
        for k in missing.sorted() { print("note: threshold for '\(k)' but no such benchmark ran") }
        print(failures == 0 ? "thresholds: all \(results.count) figures pass (\(path))"
                            : "thresholds: \(failures) regression(s) (\(path))")
        return failures == 0 ? 0 : 1
    }
}

/// Keeps the optimiser from removing a computation whose result is otherwise unused.
@inline(never) public func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }
