import Testing

@testable import DPTensor

// DPKit splits large GEMMs into blocks that depend on the shapes only (OpenBLAS runs on one
// thread): the product matches a naive triple loop, and has the same bits at 1, 2 and 3 threads.

@Test(
    "blocked GEMMs match the naive product and give the same bits at 1, 2 and 3 threads",
    arguments: [
        (45, 16, 784, false, true), // one block; OpenBLAS's own threads rounded it differently
        (300, 40, 50, false, false), // 3 row blocks (the last of 44 rows)
        (40, 1100, 30, true, false), // 3 column blocks
        (260, 1030, 20, true, true), // both possible: the cheaper repack wins
        (16, 6272, 64, false, false), // the tanh CNN's conv1 on a chunk of 32
    ])
func blockedGemmMatchesTheNaiveProduct(_ s: (Int, Int, Int, Bool, Bool)) {
    let (m, n, k, ta, tb) = s
    var rng = PhiloxRandom(seed: 11)
    let a = Tensor<Float>(uniform: ta ? [k, m] : [m, k], in: -1...1, using: &rng)
    let b = Tensor<Float>(uniform: tb ? [n, k] : [k, n], in: -1...1, using: &rng)
    let c0 = Tensor<Float>(uniform: [m, n], in: -1...1, using: &rng)
    let av = a.scalars, bv = b.scalars, cv = c0.scalars
    var reference = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for l in 0..<k {
                let x = ta ? av[l * m + i] : av[i * k + l]
                let y = tb ? bv[j * k + l] : bv[l * n + j]
                sum += Double(x) * Double(y)
            }
            reference[i * n + j] = 0.5 * sum + Double(cv[i * n + j])
        }
    }
    var results: [[Float]] = []
    for threads in [1, 2, 3] {
        var c = c0
        BLASRuntime.withThreadCount(threads) {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        Float.blasGemm(
                            transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: pa.baseAddress!,
                            lda: ta ? m : k, b: pb.baseAddress!, ldb: tb ? k : n, beta: 1, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        }
        results.append(c.scalars)
    }
    let worst = zip(results[0], reference).map { abs(Double($0) - $1) / (1e-5 * (1 + Double(k).squareRoot())) }.max()!
    #expect(worst <= 1, "m \(m) n \(n) k \(k): largest error / tolerance \(worst)")
    for t in 1...2 {
        let differing = zip(results[0], results[t]).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "m \(m) n \(n) k \(k): \(differing) outputs differ between 1 and \(t + 1) threads")
    }
}
