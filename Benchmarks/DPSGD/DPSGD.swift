import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Harness

// The DPSGD suite: what privacy costs per step, and what the norm-only fast path saves.
//
//     cd Benchmarks && swift build -c release && .build/release/DPSGD --check DPSGD/thresholds.json
//
// 1. Whole steps: a DP-SGD step (noise multiplier 1, clipping norm 1, flat clipping,
//    fixed-size batches) against the non-private step of the same model, timed alternately,
//    for logistic regression, `mlp` (784-1000-10) and `cnn-tanh` at batch 64, 256, 1024.
// 2. Per layer, batch 256: the fast phases (`addPerSampleGradientSquaredNorms`, clip factors,
//    `accumulateGradients(exampleWeights:)`) against the materialising reference
//    (`perSampleGradients()`, then norms and the weighted sum by hand, with BLAS), for
//    Linear 784->1000 and the tanh CNN's two Conv2d layers. `Conv2d`'s rule override is
//    internal, so the reference is `perSampleGradients()`, not the layer's own `.materialize`.
//
// The thresholds (DPSGD/thresholds.json) guard ratios only, which carry across machines and
// load: "step throughput private/non-private" (= non-private time / private time, higher is
// better) and "speed-up fast/materialising" (= materialising time / fast time).
//
// OpenBLAS runs one thread unless OPENBLAS_NUM_THREADS says otherwise, as in Kernels.
// `--quick` skips the CNN at batch 1024 (the longest case).

@main enum DPSGDBenchmarks {
    static func main() {
        if case .slow(_, let advice) = BLASRuntime.ensureFastKernel() { print("warning: \(advice)") }
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { BLASRuntime.setThreadCount(1) }
        let suite = Suite(name: "DPSGD")
        let quick = CommandLine.arguments.contains("--quick")
        print("DPSGD suite; \(BLASRuntime.summary); CPU \(cpuModel()); load average \(loadAverage())")

        var summary: [StepSummary] = []
        do {
            // MARK: - Whole steps
            print("\nWhole steps (samples/s; ratio = non-private time / private time, paired):")
            for workload in StepBenchmark.Workload.allCases {
                for batch in [64, 256, 1024] {
                    if quick && workload == .cnnTanh && batch == 1024 { continue }
                    if let s = try stepPair(suite, workload: workload, batchSize: batch) { summary.append(s) }
                }
            }

            // MARK: - Per layer
            print("\nPer layer, batch 256 (fast norms + clipped sum vs perSampleGradients()):")
            try perLayer(suite)
        } catch {
            print("error: \(error)")
            exit(2)
        }

        if !summary.isEmpty {
            print("\nSummary: whole steps")
            print("  workload   batch   private samples/s   non-private samples/s   private/non-private time")
            for s in summary {
                print("  " + s.workload.padding(toLength: 9, withPad: " ", startingAt: 0)
                      + String(format: "  %5d   %17.0f   %21.0f   %24.2f", s.batch, s.privateRate, s.nonPrivateRate, s.timeRatio))
            }
        }
        print("\n\(BLASRuntime.summary); load average \(loadAverage())")
        exit(suite.finish())
    }

    // MARK: - Whole steps

    struct StepSummary {
        var workload: String
        var batch: Int
        var privateRate: Double
        var nonPrivateRate: Double
        /// Private time / non-private time (median of paired ratios).
        var timeRatio: Double
    }

    /// A trainer for `workload` on synthetic data of its shape, as `StepBenchmark.run` builds it.
    static func trainer(_ workload: StepBenchmark.Workload, batchSize: Int, private isPrivate: Bool,
                        seed: UInt64 = 1) throws -> DPSGDTrainer {
        let n = max(batchSize * 4, 1024)
        var rng = PhiloxRandom(seed: seed, stream: 99)
        let x = Tensor<Float>(uniform: workload.exampleShape.prepending(n), in: 0...1, using: &rng)
        let labels = (0..<n).map { _ in Int(rng.next32() % 10) }
        let data = Dataset(name: "bench-\(workload.rawValue)", features: x, labels: labels, classCount: 10)
        let model = try ModelBuilder.build(model: workload.modelName, inputShape: workload.exampleShape, seed: seed)
        let privacy = isPrivate ? PrivacySettings(noiseMultiplier: 1.0, clippingNorm: 1.0, clipping: .flat, delta: 1e-5) : nil
        return try DPSGDTrainer(
            model: model, optimizer: SGD(learningRate: 0.01), data: data,
            configuration: TrainerConfiguration(sampling: .fixedSize, expectedBatchSize: batchSize,
                                                maxPhysicalBatchSize: batchSize, privacy: privacy, seed: seed))
    }

    static func stepPair(_ suite: Suite, workload: StepBenchmark.Workload, batchSize: Int) throws -> StepSummary? {
        let label = "\(workload.rawValue) b\(batchSize)"
        let ratioName = "step throughput private/non-private \(label)"
        guard selected(suite, "step private \(label)", "step non-private \(label)", ratioName) else { return nil }
        let priv = try trainer(workload, batchSize: batchSize, private: true)
        let plain = try trainer(workload, batchSize: batchSize, private: false)
        // Fewer pairs where one step is long (CNN at large batches); at least 7 for a median.
        let estimate = Suite.seconds { _ = try? priv.trainStep() }
        let reps = max(7, min(21, Int(2.0 / max(estimate, 1e-4))))
        var failure: Error?
        let ratio = suite.compare("step private \(label)", "step non-private \(label)", ratioName: ratioName,
                                  work: Double(batchSize), unit: "samples/s", repetitions: reps, {
            do { try priv.trainStep() } catch { failure = error }
        }, {
            do { try plain.trainStep() } catch { failure = error }
        })
        if let failure { throw failure }
        let results = suite.results.suffix(3)
        let rates = results.prefix(2).map(\.value)
        return StepSummary(workload: workload.rawValue, batch: batchSize, privateRate: rates[0],
                           nonPrivateRate: rates[1], timeRatio: 1 / ratio)
    }

    // MARK: - Per layer

    static func perLayer(_ suite: Suite) throws {
        let batch = 256
        var rng = PhiloxRandom(seed: 2026, stream: 5)

        // Linear 784->1000, one vector per example (Goodfellow's ghost norm).
        do {
            let name = "Linear 784->1000 b256"
            let layer = Linear(inputs: 784, outputs: 1000, rng: &rng)
            var ctx = ForwardContext(training: true)
            let x = Tensor<Float>(uniform: [batch, 784], in: 0...1, using: &rng)
            _ = layer.forward(x, context: &ctx)
            _ = layer.backward(Tensor<Float>(uniform: [batch, 1000], in: -0.1...0.1, using: &rng))
            comparePaths(suite, layer: layer, name: name, batch: batch, repetitions: 7)
        }

        // The tanh CNN's Conv2d layers, caches filled by one forward/backward of the whole model.
        let model = try ModelBuilder.build(model: "cnn-tanh", inputShape: [1, 28, 28], seed: 1)
        let x = Tensor<Float>(uniform: [batch, 1, 28, 28], in: 0...1, using: &rng)
        let labels = (0..<batch).map { _ in Int(rng.next32() % 10) }
        var ctx = ForwardContext(training: true)
        let logits = model.forward(x, context: &ctx)
        _ = model.backward(SoftmaxCrossEntropy()(logits: logits, labels: labels).logitGradient)
        var shape: Shape = [1, 28, 28]
        var convIndex = 0
        for layer in model.layers {
            defer { shape = layer.outputShape(forExampleShape: shape) }
            guard let conv = layer as? Conv2d else { continue }
            convIndex += 1
            let name = "conv\(convIndex) \(conv.inChannels)->\(conv.outChannels) k\(conv.kernel) b256"
            print("  (\(conv.description) on \(shape): the cost model picks \(conv.normRule(forExampleShape: shape).rawValue))")
            comparePaths(suite, layer: conv, name: name, batch: batch, repetitions: 41)
        }
    }

    /// Times the fast phases against the materialising reference on `layer`'s cached batch,
    /// after checking that both give the same norms and clipped sum.
    static func comparePaths(_ suite: Suite, layer: any Layer, name: String, batch: Int, repetitions: Int) {
        guard selected(suite, "fast norms + clipped sum \(name)", "materialising \(name)", "speed-up fast/materialising \(name)")
        else { return }
        let clippingNorm: Float = 1
        // Fast: norms, clip factors, one weighted accumulation (into the parameters' gradients).
        var fastNorms = Tensor<Float>(zeros: [batch])
        var fastWeights = Tensor<Float>(zeros: [batch])
        let fast = {
            for p in layer.parameters { p.gradient.fill(0) }
            fastNorms.fill(0)
            layer.addPerSampleGradientSquaredNorms(into: &fastNorms)
            clipFactors(fastNorms, clippingNorm: clippingNorm, into: &fastWeights)
            layer.accumulateGradients(exampleWeights: fastWeights)
        }
        // Materialising: per-example gradients [B] + shape, their norms, then sum_i w_i g_i.
        var refNorms = Tensor<Float>(zeros: [batch])
        var refWeights = Tensor<Float>(zeros: [batch])
        var refSums = layer.parameters.map { Tensor<Float>(zeros: [$0.scalarCount]) }
        let materialising = {
            let perSample = layer.perSampleGradients()
            refNorms.fill(0)
            for g in perSample {
                let rows = g.reshaped([batch, g.scalarCount / batch])
                refNorms.addScaled(rows.rowSquaredNorms(), by: 1)
            }
            clipFactors(refNorms, clippingNorm: clippingNorm, into: &refWeights)
            for (k, g) in perSample.enumerated() {
                gemv(g.reshaped([batch, g.scalarCount / batch]), transposed: true, refWeights, into: &refSums[k])
            }
        }

        // Same answer first: a benchmark of a wrong fast path would be worthless.
        fast()
        materialising()
        let normError = maxRelativeError(fastNorms, refNorms)
        let sumError = zip(layer.parameters, refSums).map { maxRelativeError($0.gradient.reshaped([$0.scalarCount]), $1) }.max() ?? 0
        print(String(format: "  (%@: fast vs materialising, max relative difference: norms %.1e, clipped sum %.1e)",
                     name, normError, sumError))
        if !(normError < 1e-3 && sumError < 1e-3) {
            print("error: \(name): the fast path disagrees with the materialising reference")
            exit(2)
        }

        suite.compare("fast norms + clipped sum \(name)", "materialising \(name)",
                      ratioName: "speed-up fast/materialising \(name)", work: Double(batch), unit: "samples/s",
                      repetitions: repetitions, fast, materialising)
        blackHole(refSums)
    }

    /// True if `--filter` (if any) matches one of `names`, as `Suite.compare` decides.
    static func selected(_ suite: Suite, _ names: String...) -> Bool {
        guard let f = suite.filter else { return true }
        return names.contains { $0.contains(f) }
    }

    /// Flat clipping factors `min(1, C / ||g_i||)` (the trainer's own are internal).
    static func clipFactors(_ squaredNorms: Tensor<Float>, clippingNorm c: Float, into weights: inout Tensor<Float>) {
        squaredNorms.withUnsafeBufferPointer { n in
            weights.withUnsafeMutableBufferPointer { w in
                for i in 0..<n.count { w[i] = n[i] > c * c ? c / n[i].squareRoot() : 1 }
            }
        }
    }

    /// `max_i |a_i - b_i| / max(|b|_inf, tiny)`.
    static func maxRelativeError(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Double {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                var diff: Float = 0, scale: Float = .leastNormalMagnitude
                for i in 0..<pb.count {
                    diff = max(diff, abs(pa[i] - pb[i]))
                    scale = max(scale, abs(pb[i]))
                }
                return Double(diff / scale)
            }
        }
    }

    // MARK: - Environment

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "?" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }

    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
