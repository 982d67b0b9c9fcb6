import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

/// A random symmetric matrix `(R + Rᵀ) / 2`, or positive definite `R Rᵀ + n I`.
func randomSymmetric<S: TensorScalar>(_ n: Int, positiveDefinite: Bool, seed: UInt64) -> Tensor<S> {
    let r: Tensor<S> = randomTensor([n, n], seed: seed)
    if positiveDefinite {
        var a = matmul(r, transposed: false, r, transposed: true)
        for i in 0..<n { a[i, i] += S(n) }
        return a
    }
    return (r + r.transposed()) * S(0.5)
}

/// `max |QᵀQ - I|` for the columns of `q`.
func orthogonalityError<S: TensorScalar>(_ q: Tensor<S>) -> Double {
    let qtq = matmul(q, transposed: true, q)
    var e = 0.0
    for i in 0..<qtq.shape[0] { for j in 0..<qtq.shape[1] { e = max(e, abs(Double(qtq[i, j]) - (i == j ? 1 : 0))) } }
    return e
}

func linalgTolerance<S: TensorScalar>(_: S.Type) -> Double { S.self == Float.self ? 1e-4 : 1e-10 }

func checkEigen<S: TensorScalar>(_: S.Type, n: Int) throws {
    let a: Tensor<S> = randomSymmetric(n, positiveDefinite: false, seed: 30)
    let eig = try symmetricEigendecomposition(a)
    let w = eig.eigenvalues.scalars, v = eig.eigenvectors
    #expect(zip(w, w.dropFirst()).allSatisfy { $0 <= $1 }, "eigenvalues ascending")
    #expect(orthogonalityError(v) < linalgTolerance(S.self) * Double(max(n, 1)))
    // A V = V diag(w)
    let av = matmul(a, v)
    var vw = v
    for i in 0..<n { for j in 0..<n { vw[i, j] = v[i, j] * w[j] } }
    expectClose(
        doubles(av), doubles(vw), tol: linalgTolerance(S.self) * Double(max(n, 1)), "A V = V Λ (\(S.self), n \(n))")
}

@Test("symmetric eigendecomposition: A V = V Λ, VᵀV = I, ascending", arguments: [0, 1, 2, 7, 20])
func eigendecomposition(n: Int) throws {
    try checkEigen(Float.self, n: n)
    try checkEigen(Double.self, n: n)
}

func checkSVD<S: TensorScalar>(_: S.Type, m: Int, n: Int) throws {
    let a: Tensor<S> = randomTensor([m, n], seed: 31)
    let svd = try singularValueDecomposition(a)
    let k = min(m, n)
    #expect(svd.u.shape == [m, k] && svd.singularValues.shape == [k] && svd.vt.shape == [k, n])
    let s = svd.singularValues.scalars
    #expect(zip(s, s.dropFirst()).allSatisfy { $0 >= $1 } && s.allSatisfy { $0 >= 0 })
    let tol = linalgTolerance(S.self) * Double(max(m, n, 1))
    #expect(orthogonalityError(svd.u) < tol)
    #expect(orthogonalityError(svd.vt.transposed()) < tol)
    var us = svd.u
    for i in 0..<m { for j in 0..<k { us[i, j] *= s[j] } }
    expectClose(doubles(matmul(us, svd.vt)), doubles(a), tol: tol, "U S Vᵀ = A (\(S.self) \(m)x\(n))")
}

@Test("SVD: U diag(s) Vᵀ = A with orthonormal factors", arguments: [(1, 1), (5, 3), (3, 5), (12, 12), (0, 3)])
func svdReconstructs(size: (Int, Int)) throws {
    try checkSVD(Float.self, m: size.0, n: size.1)
    try checkSVD(Double.self, m: size.0, n: size.1)
}

func checkCholesky<S: TensorScalar>(_: S.Type, n: Int) throws {
    let a: Tensor<S> = randomSymmetric(n, positiveDefinite: true, seed: 32)
    let l = try choleskyFactor(a)
    for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { #expect(l[i, j] == 0) } }
    for i in 0..<n { #expect(l[i, i] > 0) }
    expectClose(
        doubles(matmul(l, transposed: false, l, transposed: true)), doubles(a),
        tol: linalgTolerance(S.self) * Double(max(n, 1)),
        "L Lᵀ = A (\(S.self), n \(n))")
}

@Test("Cholesky: L Lᵀ = A, L lower triangular", arguments: [0, 1, 4, 16])
func choleskyReconstructs(n: Int) throws {
    try checkCholesky(Float.self, n: n)
    try checkCholesky(Double.self, n: n)
}

@Test("Cholesky of a matrix that is not positive definite throws, naming the routine and the minor")
func choleskyRejectsIndefinite() {
    // Leading minors: 1, then 1*1 - 2*2 = -3 < 0.
    let a = Tensor<Double>([1, 2, 0, 2, 1, 0, 0, 0, 1], shape: [3, 3])
    #expect(throws: LinearAlgebraError(routine: "LAPACKE_dpotrf", reason: .notPositiveDefinite(leadingMinor: 2))) {
        try choleskyFactor(a)
    }
    do {
        _ = try choleskyFactor(Tensor<Float>([-1], shape: [1, 1]))
        Issue.record("no error")
    } catch let e as LinearAlgebraError {
        #expect(
            e.description
                == "LAPACKE_spotrf: matrix is not positive definite: the leading minor of order 1 is not positive")
    } catch { Issue.record("unexpected \(error)") }
}

@Test("LAPACK info codes become errors that say what they mean")
func lapackInfoMeaning() {
    #expect(LinearAlgebraError(routine: "LAPACKE_ssyevd", info: -4).reason == .illegalArgument(4))
    #expect(LinearAlgebraError(routine: "LAPACKE_dgesdd", info: 3).reason == .didNotConverge(info: 3))
    #expect(LinearAlgebraError(routine: "LAPACKE_dgesdd", info: -1010).reason == .outOfMemory)
    #expect(LinearAlgebraError(routine: "LAPACKE_dsyevd", info: -4).description.contains("argument 4"))
    #expect(throws: LinearAlgebraError.self) { try symmetricEigendecomposition(Tensor<Float>([.nan], shape: [1, 1])) }
}

func checkPCA<S: TensorScalar>(_: S.Type) throws {
    // Data with variance 9, 1, 0.01 along three orthonormal directions, plus a mean.
    var rng = PhiloxRandom(seed: 33)
    let n = 2000
    let z = Tensor<S>(normal: [n, 3], using: &rng)
    let q = try symmetricEigendecomposition(randomSymmetric(3, positiveDefinite: false, seed: 34) as Tensor<S>)
        .eigenvectors
    var scaled = z
    for i in 0..<n {
        scaled[i, 0] *= 3
        scaled[i, 2] *= 0.1
    }
    var x = matmul(scaled, transposed: false, q, transposed: true) // rows: sum_j s_j z_j q_j
    x.addRowVector(Tensor<S>([1, -2, 5]))
    let pca = try PrincipalComponents(fitting: x, components: 2)
    let v = pca.explainedVariance.scalars
    #expect(abs(Double(v[0]) - 9) < 0.7 && abs(Double(v[1]) - 1) < 0.1)
    expectClose(doubles(pca.mean), [1, -2, 5], tol: 0.2, "mean")
    // The first component is ±q[:, 0].
    var cosine = 0.0
    for i in 0..<3 { cosine += Double(pca.components[0, i]) * Double(q[i, 0]) }
    #expect(abs(abs(cosine) - 1) < 1e-2)
    #expect(orthogonalityError(pca.components.transposed()) < linalgTolerance(S.self) * 10)
    // Projection: variance of the scores is the explained variance; reconstruction error is the rest.
    let p = pca.project(x)
    #expect(p.shape == [n, 2])
    let col0 = (0..<n).map { Double(p[$0, 0]) }
    let var0 = col0.map { $0 * $0 }.reduce(0, +) / Double(n - 1)
    #expect(abs(var0 - Double(v[0])) < 1e-3 * var0)
    let r = pca.reconstruct(p)
    let residual = zip(doubles(r), doubles(x)).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(n - 1)
    #expect(abs(residual - 0.01) < 0.003)
}

@Test("PCA recovers the top directions and variances of synthetic data")
func pcaRecoversDirections() throws {
    try checkPCA(Float.self)
    try checkPCA(Double.self)
}
