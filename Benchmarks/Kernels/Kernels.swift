import Benchmark
import DPTensor
import Foundation
import Paired

// The Kernels suite: sgemm through the tensor API against the raw `cblas_sgemm` call on the
// shapes of a DP-SGD step, im2col for the tanh CNN's first layer, reductions, and noise.
//
//     cd Benchmarks && swift package benchmark --target Kernels
//
// OpenBLAS runs one thread unless OPENBLAS_NUM_THREADS says otherwise (steadier figures on a
// shared machine; the ratio tensor-API/raw is what the thresholds chiefly guard).

/// `cblas_sgemm` itself, looked up in the loaded OpenBLAS (the nested package cannot import
/// the root package's `CBLAS` module, which is not a product).
typealias RawSgemm =
    @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float,
        UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
        Float, UnsafeMutablePointer<Float>?, Int32
    ) -> Void

/// One DP-SGD step of an MLP 784-1000-10 draws 795,010 normals.
let noiseCount = 784 * 1000 + 1000 + 1000 * 10 + 10

/// A benchmark reporting one rate, `work / median seconds` of `body` (run `slowdown` times).
func rateBenchmark(
    _ name: String, unit: String, work: Double, repetitions: Int = 11,
    _ makeBody: @escaping () -> () -> Void
) {
    let metric = Figures.rate(name, unit: unit)
    Benchmark(name, configuration: Figures.configuration([metric])) { benchmark in
        let body = makeBody()
        let t = Figures.medianSeconds(repetitions: repetitions, Figures.measured(body))
        Figures.record(benchmark, metric, milli: work / t)
    }
}

let benchmarks: @Sendable () -> Void = {
    if case .slow(_, let advice) = BLASRuntime.ensureFastKernel() { print("warning: \(advice)") }
    if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { BLASRuntime.setThreadCount(1) }
    print("Kernels suite; \(BLASRuntime.summary); CPU \(Figures.cpuModel()); slowdown x\(Figures.slowdown)")
    guard let sym = dlsym(nil, "cblas_sgemm") else { fatalError("cblas_sgemm not found in the process") }
    let rawSgemm = unsafeBitCast(sym, to: RawSgemm.self)

    // MARK: sgemm, tensor API (measured) against raw cblas_sgemm (reference), paired
    for (m, k, n) in [(256, 784, 1000), (256, 1000, 10), (1000, 256, 784), (1024, 1024, 1024)] {
        let label = "\(m)x\(k)x\(n)"
        let ratio = Figures.ratio("tensor/raw")
        let tensorRate = Figures.rate("tensor API", unit: "GFLOP/s")
        let rawRate = Figures.rate("raw cblas", unit: "GFLOP/s")
        Benchmark("sgemm \(label)", configuration: Figures.configuration([ratio, tensorRate, rawRate])) { benchmark in
            var rng = PhiloxRandom(seed: 2026)
            let a = Tensor<Float>(uniform: [m, k], in: -1...1, using: &rng)
            let b = Tensor<Float>(uniform: [k, n], in: -1...1, using: &rng)
            var c = Tensor<Float>(zeros: [m, n])
            var craw = Tensor<Float>(zeros: [m, n]) // same 64-byte aligned storage as the tensor path
            let gflop = 2 * Double(m) * Double(k) * Double(n) / 1e9
            let r = Figures.paired(
                repetitions: m * k * n >= 1 << 28 ? 11 : 31,
                measured: {
                    gemm(a, b, into: &c)
                },
                reference: {
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            craw.withUnsafeMutableBufferPointer { pc in
                                rawSgemm(
                                    101, 111, 111, Int32(m), Int32(n), Int32(k), 1, pa.baseAddress, Int32(k),
                                    pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                            }
                        }
                    }
                })
            Figures.record(benchmark, ratio, milli: r.ratio)
            Figures.record(benchmark, tensorRate, milli: gflop / r.measured)
            Figures.record(benchmark, rawRate, milli: gflop / r.reference)
            blackHole(c)
            blackHole(craw)
        }
    }

    // MARK: im2col, tanh CNN first layer: batch 256, 1x28x28, kernel 8, stride 2, padding 3
    let g = ConvGeometry(channels: 1, height: 28, width: 28, kernel: 8, stride: 2, padding: 3)
    let colBytes = Double(g.columnShape(batch: 256).scalarCount * 4) / 1e9
    rateBenchmark("im2col 256x1x28x28 k8 s2 p3", unit: "GB/s written", work: colBytes) {
        var rng = PhiloxRandom(seed: 1)
        let x = Tensor<Float>(uniform: [256, 1, 28, 28], in: -1...1, using: &rng)
        var cols = Tensor<Float>(zeros: g.columnShape(batch: 256))
        return { im2col(x, kernel: 8, stride: 2, padding: 3, into: &cols) }
    }
    rateBenchmark("col2im 256x1x28x28 k8 s2 p3", unit: "GB/s read", work: colBytes) {
        var rng = PhiloxRandom(seed: 1)
        let cols = Tensor<Float>(uniform: g.columnShape(batch: 256), in: -1...1, using: &rng)
        var back = Tensor<Float>(zeros: [256, 1, 28, 28])
        return { col2im(cols, kernel: 8, stride: 2, padding: 3, into: &back) }
    }

    // MARK: reductions
    let actGB = Double(256 * 1000 * 4) / 1e9
    func activations() -> Tensor<Float> {
        var rng = PhiloxRandom(seed: 3)
        return Tensor<Float>(uniform: [256, 1000], in: -1...1, using: &rng)
    }
    rateBenchmark("sum() 256x1000", unit: "GB/s", work: actGB) {
        let act = activations()
        return { blackHole(act.sum()) }
    }
    rateBenchmark("sum(alongAxis 0) 256x1000", unit: "GB/s", work: actGB) {
        let act = activations()
        return { blackHole(act.sum(alongAxis: 0)) }
    }
    rateBenchmark("rowSquaredNorms 256x1000", unit: "GB/s", work: actGB) {
        let act = activations()
        var norms = Tensor<Float>(zeros: [256])
        return { act.rowSquaredNorms(into: &norms) }
    }
    rateBenchmark("logSoftmax 256x1000", unit: "GB/s", work: actGB) {
        let act = activations()
        var probs = Tensor<Float>(zeros: [256, 1000])
        return { logSoftmax(act, into: &probs) }
    }

    // MARK: noise
    let mNormals = Double(noiseCount) / 1e6
    rateBenchmark("fillNormal Float (795,010 per step)", unit: "M normals/s", work: mNormals) {
        var noise = Tensor<Float>(zeros: [noiseCount])
        var rng = PhiloxRandom(seed: 7)
        return { noise.fillNormal(standardDeviation: 1, using: &rng) }
    }
    rateBenchmark("addGaussianNoise Float (795,010 per step)", unit: "M normals/s", work: mNormals) {
        var noise = Tensor<Float>(zeros: [noiseCount])
        var rng = PhiloxRandom(seed: 7)
        return { noise.addGaussianNoise(standardDeviation: 0.01, using: &rng) }
    }
    rateBenchmark("fillNormal Double (795,010 per step)", unit: "M normals/s", work: mNormals, repetitions: 5) {
        var noise = Tensor<Double>(zeros: [noiseCount])
        var rng = PhiloxRandom(seed: 7)
        return { noise.fillNormal(standardDeviation: 1, using: &rng) }
    }
    rateBenchmark(
        "addGaussianNoise Float, SystemRandom (secure)", unit: "M normals/s", work: Double(1 << 16) / 1e6,
        repetitions: 5
    ) {
        var small = Tensor<Float>(zeros: [1 << 16])
        var sys = SystemRandom()
        return { small.addGaussianNoise(standardDeviation: 1, using: &sys) }
    }

    // Noise must not dominate a step: its time (measured) against the step's largest GEMM (the
    // first layer's forward pass, 256x784x1000, reference), paired.
    let noiseRatio = Figures.ratio("GEMM time/noise time")
    Benchmark("noise per step vs forward GEMM 256x784x1000", configuration: Figures.configuration([noiseRatio])) {
        benchmark in
        var rng = PhiloxRandom(seed: 11)
        let x = Tensor<Float>(uniform: [256, 784], in: -1...1, using: &rng)
        let w = Tensor<Float>(uniform: [784, 1000], in: -1...1, using: &rng)
        var h = Tensor<Float>(zeros: [256, 1000])
        var noise = Tensor<Float>(zeros: [noiseCount])
        var noiseRng = PhiloxRandom(seed: 7)
        let r = Figures.paired(
            measured: {
                noise.addGaussianNoise(standardDeviation: 0.01, using: &noiseRng)
            },
            reference: {
                gemm(x, w, into: &h)
            })
        Figures.record(benchmark, noiseRatio, milli: r.ratio)
        blackHole(h)
        blackHole(noise)
    }
}
