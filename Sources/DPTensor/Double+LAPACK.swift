import CLAPACKE

extension Double {
    @inlinable public static func lapackSyevd(
        vectors: Bool, n: Int, a: UnsafeMutablePointer<Double>, lda: Int,
        w: UnsafeMutablePointer<Double>
    ) -> Int32 {
        LAPACKE_dsyevd(LAPACK_ROW_MAJOR, lapackChar(vectors ? "V" : "N"), lapackChar("L"), Int32(n), a, Int32(lda), w)
    }
    @inlinable public static func lapackGesdd(
        m: Int, n: Int, a: UnsafeMutablePointer<Double>, lda: Int, s: UnsafeMutablePointer<Double>,
        u: UnsafeMutablePointer<Double>, ldu: Int, vt: UnsafeMutablePointer<Double>, ldvt: Int
    ) -> Int32 {
        LAPACKE_dgesdd(
            LAPACK_ROW_MAJOR, lapackChar("S"), Int32(m), Int32(n), a, Int32(lda), s, u, Int32(ldu), vt, Int32(ldvt))
    }
    @inlinable public static func lapackPotrf(n: Int, a: UnsafeMutablePointer<Double>, lda: Int) -> Int32 {
        LAPACKE_dpotrf(LAPACK_ROW_MAJOR, lapackChar("L"), Int32(n), a, Int32(lda))
    }
}
