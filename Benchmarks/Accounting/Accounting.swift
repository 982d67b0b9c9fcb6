import Benchmark
import DPTensor

// The Accounting suite (filled by its issue).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(2)
    Benchmark("Accounting placeholder: 64x64 sgemm") { benchmark in
        let a = Tensor<Float>(repeating: 1, shape: [64, 64])
        var c = Tensor<Float>(zeros: [64, 64])
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { gemm(a, a, into: &c) }
        benchmark.stopMeasurement()
        blackHole(c)
    }
}
