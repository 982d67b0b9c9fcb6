import CLAPACKE

extension Float {
    @inlinable public static func lapackSyevd(
        vectors: Bool, n: Int, a: UnsafeMutablePointer<Float>, lda: Int,
        w: UnsafeMutablePointer<Float>
    ) -> Int32 {
        LAPACKE_ssyevd(LAPACK_ROW_MAJOR, lapackChar(vectors ? "V" : "N"), lapackChar("L"), Int32(n), a, Int32(lda), w)
    }
    @inlinable public static func lapackGesdd(
        m: Int, n: Int, a: UnsafeMutablePointer<Float>, lda: Int, s: UnsafeMutablePointer<Float>,
        u: UnsafeMutablePointer<Float>, ldu: Int, vt: UnsafeMutablePointer<Float>, ldvt: Int
    ) -> Int32 {
        LAPACKE_sgesdd(
            LAPACK_ROW_MAJOR, lapackChar("S"), Int32(m), Int32(n), a, Int32(lda), s, u, Int32(ldu), vt, Int32(ldvt))
    }
    @inlinable public static func lapackPotrf(n: Int, a: UnsafeMutablePointer<Float>, lda: Int) -> Int32 {
        LAPACKE_spotrf(LAPACK_ROW_MAJOR, lapackChar("L"), Int32(n), a, Int32(lda))
    }
}
