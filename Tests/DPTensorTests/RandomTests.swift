import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

/// Sample moments: mean, variance, kurtosis (3 for a normal).
func moments(_ x: [Double]) -> (mean: Double, variance: Double, kurtosis: Double) {
    let n = Double(x.count)
    let m = x.reduce(0, +) / n
    var m2 = 0.0, m4 = 0.0
    for v in x {
        let d = (v - m) * (v - m)
        m2 += d
        m4 += d * d
    }
    m2 /= n
    m4 /= n
    return (m, m2, m4 / (m2 * m2))
}

/// The Kolmogorov-Smirnov statistic of `x` against the standard normal CDF.
func ksStatistic(_ x: [Double]) -> Double {
    let s = x.sorted()
    let n = Double(s.count)
    var d = 0.0
    for (i, v) in s.enumerated() {
        let f = normalCDF(v)
        d = max(d, f - Double(i) / n, Double(i + 1) / n - f)
    }
    return d
}

func normalSamples<S: TensorScalar>(_: S.Type, count: Int, seed: UInt64, stream: UInt64 = 0) -> [Double] {
    var rng = PhiloxRandom(seed: seed, stream: stream)
    return doubles(Tensor<S>(normal: [count], using: &rng))
}

func checkGaussian<S: TensorScalar>(_: S.Type, seed: UInt64) {
    let n = 100_000
    let x = normalSamples(S.self, count: n, seed: seed)
    let (m, v, k) = moments(x)
    // Five standard errors: mean 1/sqrt(n), variance sqrt(2/n), kurtosis sqrt(24/n).
    #expect(abs(m) < 5 / Double(n).squareRoot(), "mean \(m) (\(S.self))")
    #expect(abs(v - 1) < 5 * (2 / Double(n)).squareRoot(), "variance \(v) (\(S.self))")
    #expect(abs(k - 3) < 5 * (24 / Double(n)).squareRoot(), "kurtosis \(k) (\(S.self))")
    // KS at the 0.1% level: 1.95 / sqrt(n).
    let d = ksStatistic(x)
    #expect(d < 1.95 / Double(n).squareRoot(), "KS statistic \(d) (\(S.self))")
    // Tails: P(|z| > 3) = 2.6998e-3, within five standard errors.
    let p3 = 2.699_796e-3
    let beyond3 = Double(x.filter { abs($0) > 3 }.count)
    #expect(abs(beyond3 - p3 * Double(n)) < 5 * (p3 * Double(n)).squareRoot(), "beyond 3 sigma: \(beyond3) (\(S.self))")
    #expect(x.allSatisfy { $0.isFinite })
}

@Test("normal samples: mean, variance, kurtosis, KS test, 3-sigma tail", arguments: [UInt64(1), 2026])
func normalDistribution(seed: UInt64) {
    checkGaussian(Float.self, seed: seed)
    checkGaussian(Double.self, seed: seed)
}

@Test("the 4-sigma tail of the Float sampler has the normal frequency")
func fourSigmaTail() {
    let n = 400_000
    let x = normalSamples(Float.self, count: n, seed: 44)
    let p4 = 6.334e-5 // P(|z| > 4)
    let beyond4 = Double(x.filter { abs($0) > 4 }.count)
    #expect(abs(beyond4 - p4 * Double(n)) < 5 * (p4 * Double(n)).squareRoot(), "beyond 4 sigma: \(beyond4)")
    #expect(x.allSatisfy { abs($0) <= 9.5 })
}

@Test("the vector log, sqrt and sin/cos are accurate to a few Float ulps")
func vectorMathAccuracy() {
    var worstLog = 0.0, worstSqrt = 0.0, worstTrig = 0.0
    // From below the smallest u1 (2^-65: log's domain) to above 2^32.
    var x = Float(0x1p-66)
    while x < 4.3e9 {
        let v = SIMD8<Float>((0..<8).map { x * (1 + Float($0) * 0.013) })
        let l = logPositiveSIMD(v), r = squareRootSIMD(v)
        for i in 0..<8 {
            let ref = Glibc.log(Double(v[i]))
            worstLog = max(worstLog, abs(Double(l[i]) - ref) / Double(max(abs(Float(ref)), 1).ulp))
            let sref = Double(v[i]).squareRoot()
            worstSqrt = max(worstSqrt, abs(Double(r[i]) - sref) / Double(Float(sref).ulp))
        }
        x *= 1.37
    }
    for k in 0...200 {
        let t = Float(k - 100) / 100 * (Float.pi / 4)
        let (s, c) = sinCosQuarterPi(SIMD8<Float>(repeating: t))
        worstTrig = max(
            worstTrig, abs(Double(s[0]) - Glibc.sin(Double(t))) / Double(Float.ulpOfOne),
            abs(Double(c[0]) - Glibc.cos(Double(t))) / Double(Float.ulpOfOne))
    }
    #expect(worstLog < 4, "log: \(worstLog) ulp")
    #expect(worstSqrt < 4, "sqrt: \(worstSqrt) ulp")
    #expect(worstTrig < 4, "sin/cos: \(worstTrig) ulp of 1")
    #expect(squareRootSIMD(.zero) == .zero)
}

@Test("the vector Box-Muller covers all four quadrants with the right signs")
func boxMullerQuadrants() {
    for q in UInt32(0)..<4 {
        // Middle of quadrant q: theta = q pi/2 (f = 0: bits 9-31 equal to 2^22).
        let (c, s) = boxMullerSIMD(SIMD8(repeating: 0x8000_0000), .zero, SIMD8(repeating: (1 << 31) | q))
        let r = (2 * Glibc.log(2.0)).squareRoot() // u1 = (2^63 + 1/2) / 2^64, 1/2 as a Float
        let theta = Double(q) * .pi / 2
        #expect(abs(Double(c[0]) - r * Glibc.cos(theta)) < 1e-5, "cos, quadrant \(q)")
        #expect(abs(Double(s[0]) - r * Glibc.sin(theta)) < 1e-5, "sin, quadrant \(q)")
    }
}

// MARK: - The tail: the 64-bit radius word

/// u1 = (high 2^32 + low + 1/2) / 2^64 correctly rounded to Float, by the hardware conversion:
/// exact in `Double` when high = 0; otherwise the 1/2 only breaks ties, as `| 1` does.
func referenceOpenUnit(high: UInt32, low: UInt32) -> Float {
    let u = high == 0 ? Float(Double(low) + 0.5) : Float((UInt64(high) << 32 | UInt64(low)) | 1)
    return u * 0x1p-64
}

/// Radius words at every place where the conversion changes case (the significant bytes of the
/// high word) and at the ends of the low word.
let edgeRadiusWords: [(UInt32, UInt32)] = {
    let highs: [UInt32] = [
        0, 1, 2, 0xFF, 0x100, 0x101, 0xFFFF, 0x1_0000, 0xFF_FFFF, 0x100_0000, 0x7FFF_FFFF,
        0x8000_0000, 0xFFFF_FF7F, 0xFFFF_FF80, 0xFFFF_FFFF,
    ]
    let lows: [UInt32] = [0, 1, 2, 0x7F_FFFF, 0x80_0000, 0x80_0001, 0xFFFF_FF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
    return highs.flatMap { h in lows.map { (h, $0) } }
}()

@Test(
    "the Float sampler reaches beyond 8.5 sigma: radius words (0, 0) give r = sqrt(130 ln 2) = 9.49, in Swift and in the C kernel"
)
func farTailReachable() {
    let largest = (130 * Glibc.log(2.0)).squareRoot() // u1 = 2^-65
    let next = (-2 * Glibc.log(1.5 * 0x1p-64)).squareRoot() // radius words (0, 1): 9.376
    for (low, expected) in [(UInt32(0), largest), (1, next)] {
        // Angle word with theta = 0 (quadrant 0, middle bits 2^22), then any angle: r is the same.
        for angle: UInt32 in [1 << 31, 0x1234_5677, 0xFFFF_FFFF] {
            let (c, s) = boxMullerSIMD(.zero, SIMD8(repeating: low), SIMD8(repeating: angle))
            let r = (Double(c[0]) * Double(c[0]) + Double(s[0]) * Double(s[0])).squareRoot()
            #expect(r.isFinite && r > 8.5, "Swift: largest radius \(r)")
            #expect(abs(r - expected) < 1e-5 * expected, "Swift: radius \(r), expected \(expected) (low word \(low))")
            let (kc, ks) = PhiloxRandom.kernelBoxMuller(radiusHigh: 0, radiusLow: low, angle: angle)
            let kr = (Double(kc) * Double(kc) + Double(ks) * Double(ks)).squareRoot()
            #expect(kr.isFinite && kr > 8.5, "C kernel: largest radius \(kr)")
            #expect(
                abs(kr - expected) < 1e-5 * expected, "C kernel: radius \(kr), expected \(expected) (low word \(low))")
        }
    }
}

@Test("u1 from the 64-bit radius word is the correctly rounded Float, never 0, at most 1")
func radiusUniformRounding() {
    var words = edgeRadiusWords
    var rng = PhiloxRandom(seed: 77)
    // High words of every length (and 0), so that each of the five conversion cases is exercised.
    while words.count < 20_000 {
        let high = rng.next32() >> (rng.next32() % 32)
        words.append((rng.next32() % 5 == 0 ? 0 : high, rng.next32()))
    }
    for chunk in stride(from: 0, to: words.count, by: 8) {
        let w = Array(words[chunk..<(chunk + 8)])
        let u = openUnitFloatSIMD(high: SIMD8(w.map { $0.0 }), low: SIMD8(w.map { $0.1 }))
        for i in 0..<8 {
            let ref = referenceOpenUnit(high: w[i].0, low: w[i].1)
            #expect(u[i] == ref, "u1(\(w[i].0), \(w[i].1)) = \(u[i]), correctly rounded \(ref)")
            #expect(u[i] > 0 && u[i] <= 1)
        }
    }
    // Exact in the far tail: high = 0 and low < 2^23.
    let exact = openUnitFloatSIMD(high: .zero, low: SIMD8(0, 1, 2, 3, 1000, 0x40_0000, 0x7F_FFFE, 0x7F_FFFF))
    for (i, low) in [0, 1, 2, 3, 1000, 0x40_0000, 0x7F_FFFE, 0x7F_FFFF].enumerated() {
        #expect(Double(exact[i]) == (Double(low) + 0.5) * 0x1p-64)
    }
}

@Test("-2 log u1 is never negative; u1 = 1 gives r = +0")
func radiusNeverNegative() {
    // log is at most 0 below 1: every Float in [1 - 2^-10, 1] (the cancellation-prone end; the
    // whole of [2^-126, 1] was checked once offline), and a sample of the rest down to 2^-65.
    var x = Float(1)
    while x >= 1 - 0x1p-10 {
        let l = logPositiveSIMD(SIMD8(repeating: x))
        #expect(l[0] <= 0, "log(\(x)) = \(l[0])")
        x = x.nextDown
    }
    var y = Float(0x1p-65)
    while y < 1 {
        #expect(logPositiveSIMD(SIMD8(repeating: y))[0] < 0, "log(\(y))")
        y *= 1.000_7
    }
    // The largest radius words round u1 up to 1: r = +0 in both implementations.
    let (c, s) = boxMullerSIMD(SIMD8(repeating: 0xFFFF_FFFF), SIMD8(repeating: 0xFFFF_FFFF), SIMD8(repeating: 1 << 31))
    #expect(c[0] == 0 && c[0].sign == .plus && s[0] == 0, "r cos theta \(c[0]), r sin theta \(s[0])")
    let (kc, ks) = PhiloxRandom.kernelBoxMuller(radiusHigh: 0xFFFF_FFFF, radiusLow: 0xFFFF_FFFF, angle: 1 << 31)
    #expect(kc == 0 && kc.sign == .plus && ks == 0)
}

@Test("the C kernel's Box-Muller equals the Swift one on the edge radius words, within 4 ulps")
func kernelBoxMullerMatchesSwift() {
    for (k, (high, low)) in edgeRadiusWords.enumerated() {
        let angle = UInt32(truncatingIfNeeded: k &* 0x9E37_79B9)
        let (c, s) = boxMullerSIMD(SIMD8(repeating: high), SIMD8(repeating: low), SIMD8(repeating: angle))
        let (kc, ks) = PhiloxRandom.kernelBoxMuller(radiusHigh: high, radiusLow: low, angle: angle)
        #expect(ulps(c[0], kc) <= 4 || abs(c[0] - kc) <= 1e-6, "cos: (\(high), \(low), \(angle)): \(c[0]) vs \(kc)")
        #expect(ulps(s[0], ks) <= 4 || abs(s[0] - ks) <= 1e-6, "sin: (\(high), \(low), \(angle)): \(s[0]) vs \(ks)")
    }
}

func checkReproducible<S: TensorScalar>(_: S.Type) {
    #expect(normalSamples(S.self, count: 1001, seed: 9) == normalSamples(S.self, count: 1001, seed: 9))
    #expect(normalSamples(S.self, count: 64, seed: 9) != normalSamples(S.self, count: 64, seed: 10))
    // addGaussianNoise adds exactly the samples Tensor(normal:) would hold, without a second tensor.
    for count in [0, 1, 31, 33, 1000, 4099] {
        var a = PhiloxRandom(seed: 5), b = PhiloxRandom(seed: 5)
        let base: Tensor<S> = randomTensor([count], seed: 6)
        var noisy = base
        noisy.addGaussianNoise(standardDeviation: 0.5, using: &a)
        let noise = Tensor<S>(normal: [count], standardDeviation: 0.5, using: &b)
        expectClose(
            doubles(noisy), zip(doubles(base), doubles(noise)).map(+), tol: tolerance(S.self),
            "addGaussianNoise \(count)")
        #expect(a == b, "generators advance alike")
    }
    // mean and standard deviation are applied.
    var rng = PhiloxRandom(seed: 12)
    let (m, v, _) = moments(doubles(Tensor<S>(normal: [20_000], mean: 3, standardDeviation: 2, using: &rng)))
    #expect(abs(m - 3) < 0.05 && abs(v - 4) < 0.2)
}

@Test("normals are reproducible from the seed; addGaussianNoise equals adding Tensor(normal:)")
func normalReproducible() {
    checkReproducible(Float.self)
    checkReproducible(Double.self)
}

@Test("split streams are uncorrelated", arguments: [UInt64(1), 7, 1 << 40])
func splitStreamsIndependent(stream: UInt64) {
    let n = 50_000
    let root = PhiloxRandom(seed: 3)
    var a = root.split(stream: 0), b = root.split(stream: stream)
    let x = doubles(Tensor<Float>(normal: [n], using: &a)), y = doubles(Tensor<Float>(normal: [n], using: &b))
    let corr = zip(x, y).map(*).reduce(0, +) / Double(n)
    #expect(abs(corr) < 5 / Double(n).squareRoot(), "correlation \(corr)")
    // Lag-1 correlation within one stream.
    let lag = zip(x, x.dropFirst()).map(*).reduce(0, +) / Double(n - 1)
    #expect(abs(lag) < 5 / Double(n).squareRoot(), "lag-1 correlation \(lag)")
}

@Test("a saved state resumes the same stream")
func stateRoundTrip() {
    var rng = PhiloxRandom(seed: 8, stream: 2)
    _ = rng.next32()
    _ = rng.next32()
    _ = rng.next32()
    var resumed = PhiloxRandom(state: rng.state)
    #expect((0..<10).map { _ in rng.next32() } == (0..<10).map { _ in resumed.next32() })
    var r1 = PhiloxRandom(seed: 8)
    _ = Tensor<Float>(normal: [100], using: &r1)
    var r2 = PhiloxRandom(state: r1.state)
    #expect(Tensor<Float>(normal: [50], using: &r1) == Tensor<Float>(normal: [50], using: &r2))
}

func checkUniform<S: TensorScalar>(_: S.Type) {
    var rng = PhiloxRandom(seed: 13)
    var t = Tensor<S>(zeros: [20_000])
    t.fillUniform(in: -2, 3, using: &rng)
    let x = doubles(t)
    #expect(x.allSatisfy { $0 >= -2 && $0 < 3 })
    let (m, v, _) = moments(x)
    #expect(abs(m - 0.5) < 0.05 && abs(v - 25.0 / 12) < 0.1)
}

@Test("fillUniform covers [lower, upper) with the uniform mean and variance")
func uniformFill() {
    checkUniform(Float.self)
    checkUniform(Double.self)
}

@Test("SystemRandom gives varying words and normal samples")
func systemRandom() {
    var sys = SystemRandom()
    let words = (0..<16).map { _ in sys.next() }
    #expect(Set(words).count == 16)
    var t = Tensor<Double>(zeros: [20_000])
    t.addGaussianNoise(standardDeviation: 2, using: &sys)
    let (m, v, _) = moments(doubles(t))
    #expect(abs(m) < 0.1 && abs(v - 4) < 0.25)
    #expect(abs(sys.nextNormal()) < 10)
    #expect(Int.random(in: 0..<10, using: &sys) < 10)
}

@Test(
    "the eight-lane Philox equals the scalar Philox block by block, across a carry",
    arguments: [UInt64(0), 5, 0xFFFF_FFFD])
func philoxLanesMatchScalar(firstBlock: UInt64) {
    let key: UInt64 = 0x0123_4567_89AB_CDEF, stream: UInt64 = 0xDEAD_BEEF_0000_0042
    let (x0, x1, x2, x3) = PhiloxRandom.bijection8(firstBlock: firstBlock, stream: stream, key: key)
    for lane in 0..<8 {
        let ref = PhiloxRandom.bijection(counter: (stream, firstBlock &+ UInt64(lane)), key: key)
        #expect(SIMD4(x0[lane], x1[lane], x2[lane], x3[lane]) == ref, "lane \(lane)")
    }
    // Known-answer: Philox4x32-10 with zero key and counter (Random123 kat_vectors).
    #expect(
        PhiloxRandom.bijection(counter: (0, 0), key: 0) == SIMD4(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8))
}

@Test("a generator resumed from its state compares equal to the original")
func resumedEqualsOriginal() {
    var rng = PhiloxRandom(seed: 4)
    _ = Tensor<Float>(normal: [40], using: &rng)
    #expect(PhiloxRandom(state: rng.state) == rng)
    _ = rng.next32()
    #expect(PhiloxRandom(state: rng.state) == rng)
}

// MARK: - C kernel against the Swift reference

/// A generator at a given position: `words` 32-bit words drawn from (key, stream), so that
/// `words % 4 != 0` leaves a partly used block.
func philox(key: UInt64, stream: UInt64, words: Int) -> PhiloxRandom {
    var rng = PhiloxRandom(seed: key, stream: stream)
    for _ in 0..<words { _ = rng.next32() }
    return rng
}

/// The distance between two Floats in units in the last place of the larger.
func ulps(_ a: Float, _ b: Float) -> Float {
    a == b ? 0 : abs(a - b) / max(abs(a), abs(b)).ulp
}

/// The kernel does the reference's operations in the same order without fused multiply-adds, so
/// today the outputs are bitwise equal; the contract is a few ulps, as for any two CPU kernels.
@Test(
    "the C normal kernel equals the Swift reference within 4 ulps and advances the generator alike",
    arguments: [
        (UInt64(1), UInt64(0), 0), (2026, 3, 5), (0x0123_4567_89AB_CDEF, 1 << 40, 4099),
        (7, 0xDEAD_BEEF_0000_0042, 2),
    ])
func normalKernelMatchesReference(key: UInt64, stream: UInt64, words: Int) {
    // Counts around the kernel's 128 outputs per iteration and the 64 per group of 24 blocks.
    for (count, accumulate) in [
        (10_000, false), (10_007, false), (10_000, true), (1, false), (33, true), (97, false),
        (64, false), (128, true), (129, false), (193, true),
    ] {
        var fast = philox(key: key, stream: stream, words: words)
        var slow = fast
        let base = (0..<count).map { Float($0 % 17) * 0.25 - 2 }
        var a = base, b = base
        let (mean, sd): (Float, Float) = accumulate ? (0, 0.7) : (1.5, 0.7)
        a.withUnsafeMutableBufferPointer {
            fast.fillNormalFloat(
                $0.baseAddress, count: count, mean: mean, standardDeviation: sd, accumulate: accumulate)
        }
        b.withUnsafeMutableBufferPointer {
            slow.fillNormalFloatReference(
                $0.baseAddress, count: count, mean: mean, standardDeviation: sd, accumulate: accumulate)
        }
        let worst = zip(a, b).map { ulps($0, $1) }.max() ?? 0
        let worstAbs = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(
            worst <= 4 || worstAbs <= 1e-6, "\(count) (accumulate \(accumulate)): \(worst) ulp, \(worstAbs) absolute")
        #expect(fast == slow, "the generators advance alike (\(count), accumulate \(accumulate))")
        #expect(fast.state == slow.state)
    }
}

/// The noise of a large gradient is split across threads by block ranges: the same bits at 1, 2
/// and 3 threads, the reference's values, and the same generator position. (Checked by hand: a
/// slice that starts one group of 24 blocks late fails the bit-for-bit and the reference checks.)
@Test(
    "large Float normal fills give the same bits at 1, 2 and 3 threads, and the Swift reference's values",
    arguments: [false, true])
func normalKernelIsIndependentOfTheThreadCount(accumulate: Bool) {
    // Above three slices' minimum (so 3 threads split it in 3), not a multiple of 64 or 128, from
    // a partly used block.
    let count = 3 * PhiloxRandom.parallelNormalsMinimumGroups * PhiloxRandom.normalsPerSliceGroup + 1_000 + 37
    let start = philox(key: 2027, stream: 11, words: 6)
    let base = (0..<count).map { Float($0 % 13) * 0.5 - 3 }
    var reference = base
    var slow = start
    slow.fillNormalFloatReference(
        &reference, count: count, mean: 0.25, standardDeviation: 1.5, accumulate: accumulate)
    var one: [Float] = []
    for threads in [1, 2, 3] {
        var rng = start
        var out = base
        withThreads(threads) {
            if accumulate {
                out.withUnsafeMutableBufferPointer { rng.addNormal(to: $0, standardDeviation: 1.5) }
            } else {
                out.withUnsafeMutableBufferPointer { rng.fillNormal($0, mean: 0.25, standardDeviation: 1.5) }
            }
        }
        if threads == 1 { one = out }
        let differing = zip(out, one).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(threads) threads: \(differing) of \(count) normals differ from 1 thread")
        let worst = zip(out, reference).map { ulps($0, $1) }.max() ?? 0
        let worstAbs = zip(out, reference).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 4 || worstAbs <= 1e-6, "\(threads) threads: \(worst) ulp, \(worstAbs) from the reference")
        #expect(rng == slow, "\(threads) threads: the generator advances as the reference's")
    }
}

@Test("Float normals through the C kernel resume from a saved state mid-stream")
func normalKernelResumes() {
    var rng = PhiloxRandom(seed: 31, stream: 9)
    _ = Tensor<Float>(normal: [1_000], using: &rng)
    _ = rng.next32() // partly used block
    var resumed = PhiloxRandom(state: rng.state)
    #expect(Tensor<Float>(normal: [5_003], using: &rng) == Tensor<Float>(normal: [5_003], using: &resumed))
    #expect(rng == resumed)
}

@Test("the Double and secure-mode samplers reach the same far tail as the Float sampler (radius 9.49, never NaN)")
func doubleRadiusTail() {
    // The largest radius comes from word 0; 53-bit uniforms stopped at sqrt(108 ln 2) = 8.65.
    let r0 = (-2 * log(PhiloxRandom.radiusUniform(0))).squareRoot()
    #expect(r0 > 9.49 && r0 < 9.5)
    #expect((-2 * log(PhiloxRandom.radiusUniform(1))).squareRoot() > 9.3)
    // The top word rounds to u1 = 1: radius 0, not NaN.
    #expect(PhiloxRandom.radiusUniform(.max) == 1)
    #expect(PhiloxRandom.radiusUniform(1 << 60) == (Double(1 << 60) + 0.5) * 0x1p-64)
}
