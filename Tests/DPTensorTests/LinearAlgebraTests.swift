import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

/// The naive triple loop: `alpha * op(a) * op(b) + beta * c0` in `Double`.
func naiveGemm(
    _ a: [Double], _ aShape: Shape, _ ta: Bool, _ b: [Double], _ bShape: Shape, _ tb: Bool,
    alpha: Double, beta: Double, c0: [Double]
) -> [Double] {
    let m = ta ? aShape[1] : aShape[0], k = ta ? aShape[0] : aShape[1]
    let n = tb ? bShape[0] : bShape[1]
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = ta ? a[p * aShape[1] + i] : a[i * aShape[1] + p]
                let bv = tb ? b[j * bShape[1] + p] : b[p * bShape[1] + j]
                s += av * bv
            }
            c[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * c0[i * n + j])
        }
    }
    return c
}

/// Shapes `[m, k, n]`: 1x1, a zero-size batch, zero inner dimension, non-square, larger.
let gemmSizes: [[Int]] = [[1, 1, 1], [0, 3, 4], [3, 0, 4], [5, 7, 3], [17, 9, 33], [64, 31, 2]]

func checkGemm<S: TensorScalar>(_: S.Type, size: [Int], transposes: Int, alpha: S, beta: S) {
    let (m, k, n) = (size[0], size[1], size[2])
    let ta = transposes & 1 != 0, tb = transposes & 2 != 0
    let aShape: Shape = ta ? [k, m] : [m, k], bShape: Shape = tb ? [n, k] : [k, n]
    let a: Tensor<S> = randomTensor(aShape, seed: 1), b: Tensor<S> = randomTensor(bShape, seed: 2)
    var c: Tensor<S> = randomTensor([m, n], seed: 3)
    let c0 = doubles(c)
    gemm(a, transposed: ta, b, transposed: tb, alpha: alpha, beta: beta, into: &c)
    let ref = naiveGemm(
        doubles(a), aShape, ta, doubles(b), bShape, tb, alpha: Double(alpha), beta: Double(beta), c0: c0)
    expectClose(
        doubles(c), ref, tol: tolerance(S.self) * Double(max(k, 1)), "gemm \(size) transposes \(transposes) \(S.self)")
    if alpha == 1 && beta == 0 {
        let d = matmul(a, transposed: ta, b, transposed: tb)
        #expect(d.shape == [m, n])
        expectClose(doubles(d), ref, tol: tolerance(S.self) * Double(max(k, 1)), "matmul \(S.self)")
    }
}

@Test("gemm against the naive triple loop, all four transpose combinations", arguments: gemmSizes, 0..<4)
func gemmMatchesNaive(size: [Int], transposes: Int) {
    checkGemm(Float.self, size: size, transposes: transposes, alpha: 1, beta: 0)
    checkGemm(Double.self, size: size, transposes: transposes, alpha: 1, beta: 0)
}

@Test(
    "gemm with alpha and beta accumulates into the output", arguments: [[4, 5, 6], [3, 0, 2], [1, 1, 1]],
    [(Float(0.5), Float(1)), (-2, 0.25), (1, 1)])
func gemmAccumulates(size: [Int], coefficients: (Float, Float)) {
    for t in 0..<4 {
        checkGemm(Float.self, size: size, transposes: t, alpha: coefficients.0, beta: coefficients.1)
        checkGemm(Double.self, size: size, transposes: t, alpha: Double(coefficients.0), beta: Double(coefficients.1))
    }
}

func checkGemv<S: TensorScalar>(_: S.Type, m: Int, n: Int, transposed: Bool) {
    let a: Tensor<S> = randomTensor([m, n], seed: 4)
    let x: Tensor<S> = randomTensor([transposed ? m : n], seed: 5)
    var y: Tensor<S> = randomTensor([transposed ? n : m], seed: 6)
    let y0 = doubles(y)
    gemv(a, transposed: transposed, x, alpha: 2, beta: 0.5, into: &y)
    // gemv is gemm with a one-column b.
    let ref = naiveGemm(
        doubles(a), [m, n], transposed, doubles(x), [x.scalarCount, 1], false,
        alpha: 2, beta: 0.5, c0: y0)
    expectClose(doubles(y), ref, tol: tolerance(S.self) * Double(max(m, n)), "gemv \(m)x\(n) \(transposed) \(S.self)")
}

@Test("gemv both ways against the naive loop", arguments: [(1, 1), (0, 3), (3, 0), (7, 4), (4, 19)], [false, true])
func gemvMatchesNaive(size: (Int, Int), transposed: Bool) {
    checkGemv(Float.self, m: size.0, n: size.1, transposed: transposed)
    checkGemv(Double.self, m: size.0, n: size.1, transposed: transposed)
}

func checkLevel1<S: TensorScalar>(_: S.Type, count: Int) {
    let x: Tensor<S> = randomTensor([count], seed: 7), y0: Tensor<S> = randomTensor([count], seed: 8)
    let (dx, dy) = (doubles(x), doubles(y0))
    let tol = tolerance(S.self) * Double(max(count, 1))
    var y = y0
    y.addScaled(x, by: -1.5)
    expectClose(doubles(y), zip(dx, dy).map { $1 - 1.5 * $0 }, tol: tol, "axpy \(S.self)")
    var z = x
    z.scale(by: 3)
    expectClose(doubles(z), dx.map { 3 * $0 }, tol: tol, "scal \(S.self)")
    expectClose([Double(x.dot(y0))], [zip(dx, dy).map(*).reduce(0, +)], tol: tol, "dot \(S.self)")
    expectClose([Double(x.norm)], [dx.map { $0 * $0 }.reduce(0, +).squareRoot()], tol: tol, "nrm2 \(S.self)")
    var f = x
    f.fill(4)
    #expect(f.scalars.allSatisfy { $0 == 4 })
    f.assign(y0)
    #expect(f == y0)
}

@Test("axpy, scal, dot, nrm2, fill, assign against plain loops", arguments: [0, 1, 7, 1000])
func level1MatchesNaive(count: Int) {
    checkLevel1(Float.self, count: count)
    checkLevel1(Double.self, count: count)
}

@Test("nrm2 does not overflow where the squares would")
func normWithoutOverflow() {
    let x = Tensor<Float>([3e30, 4e30])
    #expect(abs(x.norm / 5e30 - 1) < 1e-6)
}

func checkRowNorms<S: TensorScalar>(_: S.Type, shape: Shape) {
    let x: Tensor<S> = randomTensor(shape, seed: 9)
    let cols = shape.trailingCount
    let d = doubles(x)
    let ref = (0..<shape[0]).map { r in (0..<cols).map { d[r * cols + $0] * d[r * cols + $0] }.reduce(0, +) }
    expectClose(
        doubles(x.rowSquaredNorms()), ref, tol: tolerance(S.self) * Double(max(cols, 1)), "rowSquaredNorms \(shape)")
}

@Test("rowSquaredNorms against a loop", arguments: [[1, 1], [0, 5], [3, 0], [4, 2, 3], [9, 17]] as [Shape])
func rowSquaredNormsMatchNaive(shape: Shape) {
    checkRowNorms(Float.self, shape: shape)
    checkRowNorms(Double.self, shape: shape)
}

@Test("transposed() is the transpose")
func transposeCopy() {
    let a: Tensor<Double> = randomTensor([3, 5], seed: 10)
    let t = a.transposed()
    #expect(t.shape == [5, 3])
    for i in 0..<3 { for j in 0..<5 { #expect(t[j, i] == a[i, j]) } }
}

@Test("a gemm shape mismatch names both shapes")
func gemmMismatchMessage() {
    let inner = gemmShapeMessage(a: [2, 3], transposed: false, b: [4, 5], transposed: true, output: nil)
    #expect(inner.contains("[2, 3]") && inner.contains("[4, 5]ᵀ"))
    let out = gemmShapeMessage(a: [2, 3], transposed: false, b: [3, 5], transposed: false, output: [2, 4])
    #expect(out.contains("[2, 4]") && out.contains("[2, 5]") && out.contains("[2, 3]") && out.contains("[3, 5]"))
    let elementwise = Tensor<Float>.shapeMismatchMessage("+", [2, 3], [3, 2])
    #expect(elementwise == "Tensor +: shapes [2, 3] and [3, 2] differ")
}

@Test("matmul with mismatched inner dimensions stops the process")
func gemmMismatchTraps() async {
    await #expect(processExitsWith: .failure) {
        let a = Tensor<Float>(zeros: [2, 3]), b = Tensor<Float>(zeros: [4, 5])
        _ = matmul(a, b)
    }
}
