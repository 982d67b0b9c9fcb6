import CBLAS

/// A scalar type the tensor kernel computes in. One generic code path serves `Float` and
/// `Double`; the BLAS calls forward to `s*` or `d*` routines in `Float+BLAS.swift` and
/// `Double+BLAS.swift`.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, CustomStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// `C = alpha * op(A) * op(B) + beta * C`, row-major, with leading dimensions.
    static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// `y = alpha * op(A) * x + beta * y`, row-major A of `m` rows and `n` columns.
    static func blasGemv(
        trans: Bool, m: Int, n: Int, alpha: Self, a: UnsafePointer<Self>, lda: Int,
        x: UnsafePointer<Self>, incx: Int, beta: Self, y: UnsafeMutablePointer<Self>, incy: Int)
    /// `y += alpha * x`.
    static func blasAxpy(
        n: Int, alpha: Self, x: UnsafePointer<Self>, incx: Int, y: UnsafeMutablePointer<Self>, incy: Int)
    /// `x *= alpha`.
    static func blasScal(n: Int, alpha: Self, x: UnsafeMutablePointer<Self>, incx: Int)
    /// `x . y`.
    static func blasDot(n: Int, x: UnsafePointer<Self>, incx: Int, y: UnsafePointer<Self>, incy: Int) -> Self
    /// Euclidean norm of `x`, computed by BLAS without overflow.
    static func blasNrm2(n: Int, x: UnsafePointer<Self>, incx: Int) -> Self

    // LAPACK: the `LAPACKE_s*` or `LAPACKE_d*` routine itself (`Float+LAPACK.swift`,
    // `Double+LAPACK.swift`), called row-major by the one generic code path in
    // `Tensor+Decompositions.swift`. Each returns LAPACK's `info`; ``LinearAlgebraError``
    // explains it.

    /// Symmetric eigendecomposition (`?syevd`, divide and conquer): on return `a` (`n x n`,
    /// lower triangle read) holds the eigenvectors in its columns if `jobz` is `V`, and `w` the
    /// eigenvalues in ascending order.
    static var lapackeSyevd: LAPACKESyevd<Self> { get }
    /// Singular value decomposition (`?gesdd`); thin with `jobz = 'S'`: `a` (`m x n`,
    /// destroyed), `s` (`min(m, n)`, descending), `u` (`m x min(m, n)`), `vt` (`min(m, n) x n`).
    static var lapackeGesdd: LAPACKEGesdd<Self> { get }
    /// Cholesky factorisation (`?potrf`) of the lower triangle (`uplo = 'L'`): `A = L Lᵀ`, `L`
    /// written over it.
    static var lapackePotrf: LAPACKEPotrf<Self> { get }

    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
    static func expm1(_ x: Self) -> Self
}

/// `LAPACKE_?syevd(layout, jobz, uplo, n, a, lda, w)`; `lapack_int` is `Int32`.
public typealias LAPACKESyevd<S> = (
    Int32, CChar, CChar, Int32, UnsafeMutablePointer<S>?, Int32, UnsafeMutablePointer<S>?
)
    -> Int32
/// `LAPACKE_?gesdd(layout, jobz, m, n, a, lda, s, u, ldu, vt, ldvt)`.
public typealias LAPACKEGesdd<S> = (
    Int32, CChar, Int32, Int32, UnsafeMutablePointer<S>?, Int32, UnsafeMutablePointer<S>?, UnsafeMutablePointer<S>?,
    Int32, UnsafeMutablePointer<S>?, Int32
) -> Int32
/// `LAPACKE_?potrf(layout, uplo, n, a, lda)`.
public typealias LAPACKEPotrf<S> = (Int32, CChar, Int32, UnsafeMutablePointer<S>?, Int32) -> Int32

@inlinable func cblasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }
