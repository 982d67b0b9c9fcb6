import DPTensor
import Foundation
import Harness

// The Accounting suite (filled by its issue). Run: cd Benchmarks && swift run -c release Accounting
@main enum AccountingBenchmarks {
    static func main() {
        if case .slow(_, let advice) = BLASRuntime.ensureFastKernel() { print("warning: \(advice)") }
        let suite = Suite(name: "Accounting")
        print("Accounting suite; \(BLASRuntime.summary)")
        let a = Tensor<Float>(repeating: 1, shape: [64, 64])
        var c = Tensor<Float>(zeros: [64, 64])
        suite.measure("Accounting placeholder: 64x64 sgemm", work: 2 * 64 * 64 * 64 / 1e9, unit: "GFLOP/s") {
            gemm(a, a, into: &c)
        }
        blackHole(c)
        exit(suite.finish())
    }
}
