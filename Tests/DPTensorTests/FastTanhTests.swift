import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

/// The error of `y` against `tanh(x)` evaluated in Double, in units of the last place of the
/// correctly rounded Float result.
func tanhErrorInUlps(_ x: Float, _ y: Float) -> Double {
    let exact = Glibc.tanh(Double(x))
    return abs(Double(y) - exact) / Double(Float(exact).ulp)
}

@Test("Float.vectorizableTanh within 2 ulp of tanh over a dense sweep of [0, 12], and no worse than libm + 1.5 ulp")
func vectorizableTanhMatchesLibm() {
    var worst = 0.0, worstX: Float = 0, worstLibm = 0.0
    var bits: UInt32 = 0
    let end = Float(12).bitPattern
    while bits <= end {
        let x = Float(bitPattern: bits)
        for v in [x, -x] {
            let fast = Float.vectorizableTanh(v)
            #expect(fast.sign == v.sign || fast == 0, "tanh(\(v)) = \(fast) has the wrong sign")
            let e = tanhErrorInUlps(v, fast)
            if e > worst {
                worst = e
                worstX = v
            }
            worstLibm = max(worstLibm, tanhErrorInUlps(v, tanhf(v)))
        }
        bits += 997 // about 1.1 million points, every binade of [0, 12] sampled densely
    }
    #expect(worst <= 2, "worst error \(worst) ulp at x = \(worstX) (libm: \(worstLibm) ulp)")
    #expect(worst <= worstLibm + 1.5, "worst error \(worst) ulp at x = \(worstX) vs libm \(worstLibm)")
}

@Test("Float.vectorizableTanh special values: ±0, ±infinity, NaN, saturation, subnormals")
func vectorizableTanhSpecialValues() {
    #expect(Float.vectorizableTanh(0).bitPattern == Float(0).bitPattern)
    #expect(Float.vectorizableTanh(-0.0).bitPattern == Float(-0.0).bitPattern)
    #expect(Float.vectorizableTanh(.infinity) == 1 && Float.vectorizableTanh(-.infinity) == -1)
    #expect(Float.vectorizableTanh(.nan).isNaN)
    for x: Float in [9.5, 10, 20, 88, 1e30, .greatestFiniteMagnitude] {
        #expect(Float.vectorizableTanh(x) == 1 && Float.vectorizableTanh(-x) == -1, "saturation at \(x)")
    }
    for x: Float in [.leastNonzeroMagnitude, .leastNormalMagnitude, 1e-20, 1e-8] {
        #expect(Float.vectorizableTanh(x) == x && Float.vectorizableTanh(-x) == -x, "tanh(x) = x for tiny \(x)")
    }
}

@Test("tanh(Tensor<Float>) and applyTanh() agree with Float.vectorizableTanh element-wise")
func tensorTanhUsesVectorizableTanh() {
    let x = Tensor<Float>((0..<1000).map { Float($0 - 500) / 37 }, shape: [10, 100])
    let expected = x.scalars.map { Float.vectorizableTanh($0) }
    #expect(tanh(x).scalars == expected)
    var y = x
    y.applyTanh()
    #expect(y.scalars == expected)
}
