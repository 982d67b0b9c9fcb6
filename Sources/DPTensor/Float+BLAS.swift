import CBLAS

#if canImport(Glibc)
import Glibc
#endif

extension Float: TensorScalar {
    @inlinable public static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        // Large products in blocks that depend on the shapes only, across DPKit's threads.
        ParallelBatch.forEachGemmBlock(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc
        ) { rows, columns, ab, bb, cb in
            cblas_sgemm(
                CblasRowMajor, cblasTranspose(transA), cblasTranspose(transB), Int32(rows), Int32(columns),
                Int32(k), alpha, ab, Int32(lda), bb, Int32(ldb), beta, cb, Int32(ldc))
        }
    }
    @inlinable public static func blasGemv(
        trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incx: Int, beta: Float, y: UnsafeMutablePointer<Float>, incy: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        cblas_sgemv(
            CblasRowMajor, cblasTranspose(trans), Int32(m), Int32(n), alpha, a, Int32(lda),
            x, Int32(incx), beta, y, Int32(incy))
    }
    @inlinable public static func blasAxpy(
        n: Int, alpha: Float, x: UnsafePointer<Float>, incx: Int, y: UnsafeMutablePointer<Float>, incy: Int
    ) {
        _ = BLASRuntime.pinToOneThread
        cblas_saxpy(Int32(n), alpha, x, Int32(incx), y, Int32(incy))
    }
    @inlinable public static func blasScal(n: Int, alpha: Float, x: UnsafeMutablePointer<Float>, incx: Int) {
        _ = BLASRuntime.pinToOneThread
        cblas_sscal(Int32(n), alpha, x, Int32(incx))
    }
    @inlinable public static func blasDot(
        n: Int, x: UnsafePointer<Float>, incx: Int, y: UnsafePointer<Float>, incy: Int
    ) -> Float {
        _ = BLASRuntime.pinToOneThread
        return cblas_sdot(Int32(n), x, Int32(incx), y, Int32(incy))
    }
    @inlinable public static func blasNrm2(n: Int, x: UnsafePointer<Float>, incx: Int) -> Float {
        _ = BLASRuntime.pinToOneThread
        return cblas_snrm2(Int32(n), x, Int32(incx))
    }
    @inlinable public static func exp(_ x: Float) -> Float { expf(x) }
    @inlinable public static func log(_ x: Float) -> Float { logf(x) }
    @inlinable public static func tanh(_ x: Float) -> Float { tanhf(x) }
    @inlinable public static func log1p(_ x: Float) -> Float { log1pf(x) }
    @inlinable public static func expm1(_ x: Float) -> Float { expm1f(x) }
}
