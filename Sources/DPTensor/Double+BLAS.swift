import CBLAS

#if canImport(Glibc)
import Glibc
#endif

extension Double: TensorScalar {
    @inlinable public static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        // Large products in blocks that depend on the shapes only, across DPKit's threads.
        ParallelBatch.forEachGemmBlock(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc
        ) { rows, columns, ab, bb, cb in
            cblas_dgemm(
                CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB), Int32(rows), Int32(columns),
                Int32(k), alpha, ab, Int32(lda), bb, Int32(ldb), beta, cb, Int32(ldc))
        }
    }
    @inlinable public static func blasGemv(
        trans: Bool, m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incx: Int, beta: Double, y: UnsafeMutablePointer<Double>, incy: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        cblas_dgemv(
            CblasRowMajor, cblasTranspose(trans), Int32(m), Int32(n), alpha, a, Int32(lda),
            x, Int32(incx), beta, y, Int32(incy))
    }
    @inlinable public static func blasAxpy(
        n: Int, alpha: Double, x: UnsafePointer<Double>, incx: Int, y: UnsafeMutablePointer<Double>, incy: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        cblas_daxpy(Int32(n), alpha, x, Int32(incx), y, Int32(incy))
    }
    @inlinable public static func blasScal(n: Int, alpha: Double, x: UnsafeMutablePointer<Double>, incx: Int) {
        _ = BLASRuntime.pinToOneThread
        cblas_dscal(Int32(n), alpha, x, Int32(incx))
    }
    @inlinable public static func blasDot(
        n: Int, x: UnsafePointer<Double>, incx: Int, y: UnsafePointer<Double>, incy: Int
    ) -> Double {
        _ = BLASRuntime.pinToOneThread
        return cblas_ddot(Int32(n), x, Int32(incx), y, Int32(incy))
    }
    @inlinable public static func blasNrm2(n: Int, x: UnsafePointer<Double>, incx: Int) -> Double {
        _ = BLASRuntime.pinToOneThread
        return cblas_dnrm2(Int32(n), x, Int32(incx))
    }
    @inlinable public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    @inlinable public static func log(_ x: Double) -> Double { Glibc.log(x) }
    @inlinable public static func tanh(_ x: Double) -> Double { Glibc.tanh(x) }
    @inlinable public static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
    @inlinable public static func expm1(_ x: Double) -> Double { Glibc.expm1(x) }
}
