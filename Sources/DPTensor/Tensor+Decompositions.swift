import CLAPACKE

// MARK: - LAPACK decompositions: symmetric eigendecomposition, SVD, Cholesky

@inlinable func lapackChar(_ c: Unicode.Scalar) -> CChar { CChar(UInt8(ascii: c)) }

/// A LAPACK routine reported failure (its `info` argument), turned into a Swift error at the
/// boundary. The description names the routine and what the code means.
public struct LinearAlgebraError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// `info = -i`: argument `i` had an illegal value (a DPKit bug).
        case illegalArgument(Int)
        /// `potrf`, `info = k > 0`: the leading minor of order `k` is not positive.
        case notPositiveDefinite(leadingMinor: Int)
        /// `syevd`/`gesdd`, `info > 0`: the iteration did not converge.
        case didNotConverge(info: Int)
        /// LAPACKE could not allocate its work space (`-1010`) or a transposed copy (`-1011`).
        case outOfMemory
        /// The input holds NaN or infinity.
        case nonFiniteInput
    }

    /// The routine, for example "LAPACKE_dpotrf".
    public var routine: String
    public var reason: Reason

    public init(routine: String, reason: Reason) {
        self.routine = routine
        self.reason = reason
    }

    /// The error for a nonzero `info` from `routine`.
    public init(routine: String, info: Int32) {
        self.routine = routine
        let i = Int(info)
        if i == -1010 || i == -1011 {
            reason = .outOfMemory
        } else if i < 0 {
            reason = .illegalArgument(-i)
        } else if routine.hasSuffix("potrf") {
            reason = .notPositiveDefinite(leadingMinor: i)
        } else {
            reason = .didNotConverge(info: i)
        }
    }

    public var description: String {
        switch reason {
        case .illegalArgument(let i): return "\(routine): argument \(i) had an illegal value"
        case .notPositiveDefinite(let k):
            return "\(routine): matrix is not positive definite: the leading minor of order \(k) is not positive"
        case .didNotConverge(let info): return "\(routine): the algorithm did not converge (info \(info))"
        case .outOfMemory: return "\(routine): LAPACKE could not allocate its work space"
        case .nonFiniteInput: return "\(routine): the input holds NaN or infinity"
        }
    }
}

@usableFromInline func lapackRoutine<S: TensorScalar>(_ name: String, _: S.Type) -> String {
    "LAPACKE_" + (S.self == Float.self ? "s" : "d") + name
}

@usableFromInline func squareSize<S: TensorScalar>(_ a: Tensor<S>, _ function: String) -> Int {
    precondition(a.rank == 2 && a.shape[0] == a.shape[1], "\(function): expected a square matrix, got shape \(a.shape)")
    return a.shape[0]
}

func checkFinite<S: TensorScalar>(_ a: Tensor<S>, routine: String) throws {
    let ok = a.withUnsafeBufferPointer { p in p.allSatisfy { $0.isFinite } }
    if !ok { throw LinearAlgebraError(routine: routine, reason: .nonFiniteInput) }
}

/// The eigendecomposition `A = V diag(λ) Vᵀ` of a symmetric matrix.
public struct SymmetricEigendecomposition<Scalar: TensorScalar>: Sendable {
    /// The eigenvalues `λ`, ascending, `[n]`.
    public var eigenvalues: Tensor<Scalar>
    /// The orthonormal eigenvectors in the columns, `[n, n]`: column `j` belongs to `eigenvalues[j]`.
    public var eigenvectors: Tensor<Scalar>
}

/// The eigenvalues (ascending) and orthonormal eigenvectors of the symmetric matrix `a`
/// (LAPACK `?syevd`, divide and conquer; only the lower triangle is read).
///
/// - Throws: ``LinearAlgebraError`` if `a` holds NaN or infinity or the iteration fails.
/// - Precondition: `a` is square.
public func symmetricEigendecomposition<S: TensorScalar>(_ a: Tensor<S>) throws -> SymmetricEigendecomposition<S> {
    let n = squareSize(a, "symmetricEigendecomposition")
    let routine = lapackRoutine("syevd", S.self)
    try checkFinite(a, routine: routine)
    var v = a
    var w = Tensor<S>(zeros: [n])
    if n > 0 {
        let info = v.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                _ = BLASRuntime.pinToOneThread
                return S.lapackeSyevd(
                    LAPACK_ROW_MAJOR, lapackChar("V"), lapackChar("L"), Int32(n), pa.baseAddress, Int32(n),
                    pw.baseAddress)
            }
        }
        if info != 0 { throw LinearAlgebraError(routine: routine, info: info) }
    }
    return SymmetricEigendecomposition(eigenvalues: w, eigenvectors: v)
}

/// The thin singular value decomposition `A = U diag(s) Vᵀ` of an `m x n` matrix.
public struct SingularValueDecomposition<Scalar: TensorScalar>: Sendable {
    /// `[m, k]` with orthonormal columns, `k = min(m, n)`.
    public var u: Tensor<Scalar>
    /// The singular values, descending, `[k]`.
    public var singularValues: Tensor<Scalar>
    /// `Vᵀ`, `[k, n]` with orthonormal rows.
    public var vt: Tensor<Scalar>
}

/// The thin SVD of `a` (LAPACK `?gesdd`, divide and conquer).
///
/// - Throws: ``LinearAlgebraError`` if `a` holds NaN or infinity or the iteration fails.
public func singularValueDecomposition<S: TensorScalar>(_ a: Tensor<S>) throws -> SingularValueDecomposition<S> {
    precondition(a.rank == 2, "singularValueDecomposition: expected a matrix, got shape \(a.shape)")
    let (m, n) = (a.shape[0], a.shape[1])
    let k = Swift.min(m, n)
    let routine = lapackRoutine("gesdd", S.self)
    try checkFinite(a, routine: routine)
    var work = a
    var u = Tensor<S>(zeros: [m, k]), s = Tensor<S>(zeros: [k]), vt = Tensor<S>(zeros: [k, n])
    if k > 0 {
        let info = work.withUnsafeMutableBufferPointer { pa in
            s.withUnsafeMutableBufferPointer { ps in
                u.withUnsafeMutableBufferPointer { pu in
                    vt.withUnsafeMutableBufferPointer { pv in
                        _ = BLASRuntime.pinToOneThread
                        return S.lapackeGesdd(
                            LAPACK_ROW_MAJOR, lapackChar("S"), Int32(m), Int32(n), pa.baseAddress, Int32(n),
                            ps.baseAddress, pu.baseAddress, Int32(k), pv.baseAddress, Int32(n))
                    }
                }
            }
        }
        if info != 0 { throw LinearAlgebraError(routine: routine, info: info) }
    }
    return SingularValueDecomposition(u: u, singularValues: s, vt: vt)
}

/// The lower-triangular Cholesky factor `L` of a symmetric positive definite matrix,
/// `A = L Lᵀ` (LAPACK `?potrf`; only the lower triangle of `a` is read; the upper triangle of
/// the result is zero).
///
/// - Throws: ``LinearAlgebraError`` with reason `.notPositiveDefinite(leadingMinor: k)` if the
///   leading minor of order `k` is not positive.
public func choleskyFactor<S: TensorScalar>(_ a: Tensor<S>) throws -> Tensor<S> {
    let n = squareSize(a, "choleskyFactor")
    let routine = lapackRoutine("potrf", S.self)
    try checkFinite(a, routine: routine)
    var l = a
    if n > 0 {
        let info = l.withUnsafeMutableBufferPointer { p in
            _ = BLASRuntime.pinToOneThread
            let info = S.lapackePotrf(LAPACK_ROW_MAJOR, lapackChar("L"), Int32(n), p.baseAddress, Int32(n))
            for i in 0..<n { for j in (i + 1)..<Swift.max(i + 1, n) { p[i * n + j] = 0 } }
            return info
        }
        if info != 0 { throw LinearAlgebraError(routine: routine, info: info) }
    }
    return l
}

// MARK: - Principal component analysis

/// The top-`k` principal components of a data matrix, from the eigendecomposition of its
/// covariance `Σ = (X - μ)ᵀ (X - μ) / (N - 1)`.
///
/// Each component (a row of ``components``) is a unit eigenvector of `Σ`, in descending order
/// of its eigenvalue (``explainedVariance``), with its sign fixed so that its largest-magnitude
/// entry is positive (the decomposition alone leaves the sign free).
public struct PrincipalComponents<Scalar: TensorScalar>: Sendable {
    /// The column means `μ`, `[D]`.
    public var mean: Tensor<Scalar>
    /// The components in rows, `[k, D]`.
    public var components: Tensor<Scalar>
    /// The variance along each component (eigenvalues of `Σ`, descending), `[k]`.
    public var explainedVariance: Tensor<Scalar>

    /// Fits `k` components to `data` (`[N, D]`, one example per row, `N >= 2`).
    ///
    /// - Throws: ``LinearAlgebraError`` from the eigendecomposition.
    /// - Precondition: `1 <= k <= D` and `N >= 2`.
    public init(fitting data: Tensor<Scalar>, components k: Int) throws {
        precondition(data.rank == 2, "PrincipalComponents: data must be [N, D], got \(data.shape)")
        let (count, d) = (data.shape[0], data.shape[1])
        precondition(k >= 1 && k <= d, "PrincipalComponents: \(k) components for \(d) dimensions; use 1...\(d)")
        precondition(count >= 2, "PrincipalComponents: \(count) examples; need at least 2")
        mean = data.mean(alongAxis: 0)
        var centred = data
        centred.addRowVector(-mean)
        var cov = Tensor<Scalar>(zeros: [d, d])
        gemm(centred, transposed: true, centred, alpha: 1 / Scalar(count - 1), into: &cov)
        let eig = try symmetricEigendecomposition(cov)
        var comps = Tensor<Scalar>(zeros: [k, d])
        var variance = Tensor<Scalar>(zeros: [k])
        for c in 0..<k {
            let col = d - 1 - c
            var best = 0
            for i in 0..<d where abs(eig.eigenvectors[i, col]) > abs(eig.eigenvectors[best, col]) { best = i }
            let sign: Scalar = eig.eigenvectors[best, col] < 0 ? -1 : 1
            for i in 0..<d { comps[c, i] = sign * eig.eigenvectors[i, col] }
            variance[c] = Swift.max(0, eig.eigenvalues[col])
        }
        components = comps
        explainedVariance = variance
    }

    /// Projects `x` (`[N, D]`) onto the components: `(x - μ) Cᵀ`, `[N, k]`.
    public func project(_ x: Tensor<Scalar>) -> Tensor<Scalar> {
        precondition(
            x.rank == 2 && x.shape[1] == mean.scalarCount,
            "PrincipalComponents.project: input \(x.shape) does not have \(mean.scalarCount) columns")
        var centred = x
        centred.addRowVector(-mean)
        return matmul(centred, transposed: false, components, transposed: true)
    }

    /// Maps projections (`[N, k]`) back to the data space: `z C + μ`, `[N, D]`.
    public func reconstruct(_ z: Tensor<Scalar>) -> Tensor<Scalar> {
        var out = matmul(z, components)
        out.addRowVector(mean)
        return out
    }
}
