import DPTensor
import Foundation
import Harness

// The Kernels suite: sgemm through the tensor API against the raw `cblas_sgemm` call on the
// shapes of a DP-SGD step, im2col for the tanh CNN's first layer, reductions, and noise.
//
//     cd Benchmarks && swift run -c release Kernels --check Kernels/thresholds.json
//
// OpenBLAS runs one thread unless OPENBLAS_NUM_THREADS says otherwise (steadier figures on a
// shared machine; the ratio tensor-API/raw is what the thresholds guard).

/// `cblas_sgemm` itself, looked up in the loaded OpenBLAS (the nested package cannot import
/// the root package's `CBLAS` module, which is not a product).
typealias RawSgemm = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                     UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                     Float, UnsafeMutablePointer<Float>?, Int32) -> Void

@main enum KernelsBenchmarks {
    static func main() {
        if case .slow(_, let advice) = BLASRuntime.ensureFastKernel() { print("warning: \(advice)") }
        if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { BLASRuntime.setThreadCount(1) }
        let suite = Suite(name: "Kernels")
        print("Kernels suite; \(BLASRuntime.summary); CPU \(cpuModel())")
        guard let sym = dlsym(nil, "cblas_sgemm") else { fatalError("cblas_sgemm not found in the process") }
        let rawSgemm = unsafeBitCast(sym, to: RawSgemm.self)
        var rng = PhiloxRandom(seed: 2026)

        // MARK: sgemm
        let shapes = [(256, 784, 1000), (256, 1000, 10), (1000, 256, 784), (1024, 1024, 1024)]
        for (m, k, n) in shapes {
            let a = Tensor<Float>(uniform: [m, k], in: -1...1, using: &rng)
            let b = Tensor<Float>(uniform: [k, n], in: -1...1, using: &rng)
            var c = Tensor<Float>(zeros: [m, n])
            var craw = Tensor<Float>(zeros: [m, n]) // same 64-byte aligned storage as the tensor path
            let gflop = 2 * Double(m) * Double(k) * Double(n) / 1e9
            let reps = m * k * n >= 1 << 28 ? 11 : 31
            let label = "\(m)x\(k)x\(n)"
            // Alternate the two so that load from other processes affects both alike.
            suite.compare("sgemm tensor API \(label)", "sgemm raw cblas \(label)", ratioName: "sgemm ratio tensor/raw \(label)",
                          work: gflop, unit: "GFLOP/s", repetitions: reps, {
                gemm(a, b, into: &c)
            }, {
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        craw.withUnsafeMutableBufferPointer { pc in
                            rawSgemm(101, 111, 111, Int32(m), Int32(n), Int32(k), 1, pa.baseAddress, Int32(k),
                                     pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                        }
                    }
                }
            })
            blackHole(c); blackHole(craw)
        }

        // MARK: im2col, tanh CNN first layer: batch 256, 1x28x28, kernel 8, stride 2, padding 3
        let g = ConvGeometry(channels: 1, height: 28, width: 28, kernel: 8, stride: 2, padding: 3)
        let x = Tensor<Float>(uniform: [256, 1, 28, 28], in: -1...1, using: &rng)
        var cols = Tensor<Float>(zeros: g.columnShape(batch: 256))
        let colBytes = Double(cols.scalarCount * 4) / 1e9
        suite.measure("im2col 256x1x28x28 k8 s2 p3 (written)", work: colBytes, unit: "GB/s") {
            im2col(x, kernel: 8, stride: 2, padding: 3, into: &cols)
        }
        var back = Tensor<Float>(zeros: [256, 1, 28, 28])
        suite.measure("col2im 256x1x28x28 k8 s2 p3 (read)", work: colBytes, unit: "GB/s") {
            col2im(cols, kernel: 8, stride: 2, padding: 3, into: &back)
        }
        blackHole(back)

        // MARK: reductions
        let act = Tensor<Float>(uniform: [256, 1000], in: -1...1, using: &rng)
        let actGB = Double(act.scalarCount * 4) / 1e9
        suite.measure("sum() 256x1000", work: actGB, unit: "GB/s") { blackHole(act.sum()) }
        suite.measure("sum(alongAxis: 0) 256x1000", work: actGB, unit: "GB/s") { blackHole(act.sum(alongAxis: 0)) }
        var norms = Tensor<Float>(zeros: [256])
        suite.measure("rowSquaredNorms 256x1000", work: actGB, unit: "GB/s") { act.rowSquaredNorms(into: &norms) }
        var probs = Tensor<Float>(zeros: [256, 1000])
        suite.measure("logSoftmax 256x1000", work: actGB, unit: "GB/s") { logSoftmax(act, into: &probs) }

        // MARK: noise: one DP-SGD step of an MLP 784-1000-10 draws 795,010 normals
        let noiseCount = 784 * 1000 + 1000 + 1000 * 10 + 10
        var noise = Tensor<Float>(zeros: [noiseCount])
        var noiseRng = PhiloxRandom(seed: 7)
        let mNormals = Double(noiseCount) / 1e6
        suite.measure("fillNormal Float (795,010 per step)", work: mNormals, unit: "M normals/s") {
            noise.fillNormal(standardDeviation: 1, using: &noiseRng)
        }
        suite.measure("addGaussianNoise Float (795,010 per step)", work: mNormals, unit: "M normals/s") {
            noise.addGaussianNoise(standardDeviation: 0.01, using: &noiseRng)
        }
        // Noise must not dominate a step: its time against the step's largest GEMM (the first
        // layer's forward pass, 256x784x1000), timed alternately.
        do {
            let x = Tensor<Float>(uniform: [256, 784], in: -1...1, using: &rng)
            let w = Tensor<Float>(uniform: [784, 1000], in: -1...1, using: &rng)
            var h = Tensor<Float>(zeros: [256, 1000])
            suite.compare("noise per step (795,010 normals, paired)", "forward GEMM 256x784x1000 (paired)",
                          ratioName: "GEMM 256x784x1000 time / noise-per-step time", work: 1, unit: "1/s", {
                noise.addGaussianNoise(standardDeviation: 0.01, using: &noiseRng)
            }, {
                gemm(x, w, into: &h)
            })
            blackHole(h)
        }
        var noiseD = Tensor<Double>(zeros: [noiseCount])
        suite.measure("fillNormal Double (795,010 per step)", work: mNormals, unit: "M normals/s", repetitions: 5) {
            noiseD.fillNormal(standardDeviation: 1, using: &noiseRng)
        }
        var sys = SystemRandom()
        var small = Tensor<Float>(zeros: [1 << 16])
        suite.measure("addGaussianNoise Float, SystemRandom (secure)", work: Double(1 << 16) / 1e6, unit: "M normals/s",
                      repetitions: 5) {
            small.addGaussianNoise(standardDeviation: 1, using: &sys)
        }
        blackHole(noise); blackHole(noiseD); blackHole(small)

        print("\(BLASRuntime.summary)")
        exit(suite.finish())
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "?" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }
}
