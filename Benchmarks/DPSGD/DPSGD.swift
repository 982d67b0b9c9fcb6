import DPTensor
import Foundation
import Harness

// The DPSGD suite (filled by its issue). Run: cd Benchmarks && swift run -c release DPSGD
@main enum DPSGDBenchmarks {
    static func main() {
        if case .slow(_, let advice) = BLASRuntime.ensureFastKernel() { print("warning: \(advice)") }
        let suite = Suite(name: "DPSGD")
        print("DPSGD suite; \(BLASRuntime.summary)")
        let a = Tensor<Float>(repeating: 1, shape: [64, 64])
        var c = Tensor<Float>(zeros: [64, 64])
        suite.measure("DPSGD placeholder: 64x64 sgemm", work: 2 * 64 * 64 * 64 / 1e9, unit: "GFLOP/s") {
            gemm(a, a, into: &c)
        }
        blackHole(c)
        exit(suite.finish())
    }
}
