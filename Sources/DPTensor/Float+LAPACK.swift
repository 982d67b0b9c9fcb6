import CLAPACKE

extension Float {
    public static var lapackeSyevd: LAPACKESyevd<Float> { LAPACKE_ssyevd }
    public static var lapackeGesdd: LAPACKEGesdd<Float> { LAPACKE_sgesdd }
    public static var lapackePotrf: LAPACKEPotrf<Float> { LAPACKE_spotrf }
}
