import Foundation

/// DPKit's version string.
public enum DPKitVersion {
    public static let string = "0.1.0"
}

/// A quick check that BLAS computes what a naive loop computes, and how fast.
public enum KernelSelfCheck {
    public struct Result: Sendable {
        public var passed: Bool
        public var maxRelativeError: Double
        public var gflops: Double
    }

    public static func run() -> Result {
        var rng = PhiloxRandom(seed: 1)
        let (m, k, n) = (37, 53, 29)
        let a = Tensor<Float>(uniform: [m, k], in: -1...1, using: &rng)
        let b = Tensor<Float>(uniform: [k, n], in: -1...1, using: &rng)
        let c = matmul(a, b)
        var maxErr = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i, p]) * Double(b[p, j]) }
                maxErr = Swift.max(maxErr, abs(Double(c[i, j]) - s) / Swift.max(1, abs(s)))
            }
        }
        let gflops = sgemmGFLOPS(size: 512)
        return Result(passed: maxErr < 1e-5, maxRelativeError: maxErr, gflops: gflops)
    }

    /// sgemm GFLOP/s on a `size`-cubed product through the tensor API: best of `repetitions`
    /// after one warm-up, at the current BLAS thread count.
    public static func sgemmGFLOPS(size s: Int, repetitions: Int = 5) -> Double {
        var rng = PhiloxRandom(seed: 7)
        let x = Tensor<Float>(uniform: [s, s], in: -1...1, using: &rng)
        var y = Tensor<Float>(zeros: [s, s])
        gemm(x, x, into: &y)
        var best = Double.infinity
        for _ in 0..<repetitions {
            let t0 = DispatchTime.now().uptimeNanoseconds
            gemm(x, x, into: &y)
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return 2 * Double(s * s * s) / best
    }
}
