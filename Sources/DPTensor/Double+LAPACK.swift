import CLAPACKE

extension Double {
    public static var lapackeSyevd: LAPACKESyevd<Double> { LAPACKE_dsyevd }
    public static var lapackeGesdd: LAPACKEGesdd<Double> { LAPACKE_dgesdd }
    public static var lapackePotrf: LAPACKEPotrf<Double> { LAPACKE_dpotrf }
}
