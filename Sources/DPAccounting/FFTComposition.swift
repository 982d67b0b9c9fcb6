// Composition of discrete privacy loss distributions by FFT (FFTW).
import CFFTW
import Foundation

/// Convolution powers of discrete PLDs through FFTW's real-to-complex transforms.
enum FFTComposition {
    /// FFTW's planner is not thread-safe; plan creation and destruction are serialised.
    private static let plannerLock = NSLock()
    /// `FFTW_ESTIMATE` (`1U << 6` in fftw3.h): plan without measuring.
    private static let estimate = UInt32(1 << 6)

    /// The distribution of the sum of `count` independent draws from each PLD.
    ///
    /// The window of the result is chosen by a Chernoff bound: with `M(t) = sum_k p_k e^{tk}`,
    /// `P(S >= u) <= exp(sum_c T_c log M_c(t) - t u)` for `t > 0` (and symmetrically below), so
    /// at most `tailMass` of the composed mass lies outside `[kMin, kMax]`. The cyclic
    /// convolution of an FFT of that length aliases only that mass into the window.
    static func compose(
        _ parts: [(DiscretePLD, Int)], interval h: Double, tailMass: Double,
        pessimistic: Bool
    ) -> ComposedPLD {
        let parts = parts.filter { $0.1 > 0 }
        var logNoInfinity = 0.0
        var baseOffset = 0
        var shift = 0.0
        for (d, t) in parts {
            logNoInfinity += Double(t) * log1p(-Swift.min(d.infinityMass, 1))
            baseOffset += t * d.offset
            shift += Double(t) * d.shift
        }
        let infinityMass = -expm1(logNoInfinity)
        if parts.isEmpty {
            return ComposedPLD(
                offset: 0, pmf: [1], infinityMass: 0, interval: h, slack: 0,
                pessimistic: pessimistic)
        }
        let (kMin, kMax) = window(parts, tailMass: tailMass)
        let length = kMax - kMin + 1
        let n = fastSize(atLeast: length)
        let bins = n / 2 + 1

        var acc = [(Double, Double)](repeating: (1, 0), count: bins)
        var real = [Double](repeating: 0, count: n)
        var spectrum = [(Double, Double)](repeating: (0, 0), count: bins)
        for (d, t) in parts {
            for i in real.indices { real[i] = 0 }
            for (k, p) in d.pmf.enumerated() where p != 0 { real[k % n] += p }
            transform(&real, &spectrum, n: n)
            let power = Double(t)
            for i in 0..<bins {
                let (re, im) = spectrum[i]
                let (ar, ai) = acc[i]
                if ar == 0 && ai == 0 { continue }
                let r2 = re * re + im * im
                // |z|^T underflows for most bins of a long composition: skip those.
                if !(0.5 * power * log(r2) > -745) {
                    acc[i] = (0, 0)
                    continue
                }
                let (cr, ci) = complexPower(re, im, t)
                acc[i] = (ar * cr - ai * ci, ar * ci + ai * cr)
            }
        }
        inverse(&acc, &real, n: n)
        var pmf = [Double](repeating: 0, count: length)
        let scale = 1 / Double(n)
        for j in 0..<length {
            pmf[j] = Swift.max(0, real[(kMin + j) % n] * scale)
        }
        return ComposedPLD(
            offset: baseOffset + kMin, pmf: pmf, infinityMass: infinityMass,
            interval: h, slack: tailMass, pessimistic: pessimistic, shift: shift)
    }

    /// `(re + i im)^n` by binary exponentiation (about 2 log2(n) complex products; the
    /// relative error grows like log2(n) ulps). Callers skip bases whose power underflows.
    @inline(__always)
    static func complexPower(_ re: Double, _ im: Double, _ n: Int) -> (Double, Double) {
        var (br, bi) = (re, im)
        var (rr, ri) = (1.0, 0.0)
        var e = n
        while e > 0 {
            if e & 1 == 1 { (rr, ri) = (rr * br - ri * bi, rr * bi + ri * br) }
            e >>= 1
            if e > 0 { (br, bi) = (br * br - bi * bi, 2 * br * bi) }
        }
        return (rr, ri)
    }

    /// `[kMin, kMax]` in offset units holding all but `tailMass` of the composed mass.
    static func window(_ parts: [(DiscretePLD, Int)], tailMass: Double) -> (Int, Int) {
        var maxIndex = 0
        var variance = 0.0
        for (d, t) in parts {
            maxIndex += t * (d.pmf.count - 1)
            var w = 0.0, m1 = 0.0, m2 = 0.0
            for (k, p) in d.pmf.enumerated() {
                let x = Double(k)
                w += p
                m1 += p * x
                m2 += p * x * x
            }
            if w > 0 { variance += Double(t) * Swift.max(0, m2 / w - (m1 / w) * (m1 / w)) }
        }
        let scale = Swift.max(1, variance.squareRoot())
        let logTail = log(2 / tailMass)
        var upper = Double(maxIndex), lower = 0.0
        for j in stride(from: -8, through: 12, by: 2) {
            let t = pow(10, Double(j) / 4) / scale
            for sign in [1.0, -1.0] {
                let lambda = sign * t
                var total = 0.0
                for (d, count) in parts { total += Double(count) * logMGF(d.pmf, lambda) }
                guard total.isFinite else { continue }
                let bound = (total + logTail) / lambda
                if sign > 0 { upper = Swift.min(upper, bound) } else { lower = Swift.max(lower, bound) }
            }
        }
        let kMax = Swift.min(maxIndex, Int(upper.rounded(.up)))
        let kMin = Swift.max(0, Swift.min(kMax, Int(lower.rounded(.down))))
        return (kMin, kMax)
    }

    /// `log sum_k p_k e^{lambda k}` without overflow (powers built by multiplication).
    static func logMGF(_ p: [Double], _ lambda: Double) -> Double {
        let n = p.count
        var s = 0.0, w = 1.0
        if lambda > 0 {
            let f = exp(-lambda)
            for k in stride(from: n - 1, through: 0, by: -1) {
                s += p[k] * w
                w *= f
            }
            return lambda * Double(n - 1) + log(s)
        } else {
            let f = exp(lambda)
            for k in 0..<n {
                s += p[k] * w
                w *= f
            }
            return log(s)
        }
    }

    /// The smallest `2^a 3^b 5^c >= n`.
    static func fastSize(atLeast n: Int) -> Int {
        var best = Int.max
        var p2 = 1
        while p2 < 2 * Swift.max(n, 1) {
            var p3 = p2
            while p3 < 2 * Swift.max(n, 1) {
                var p5 = p3
                while p5 < n { p5 *= 5 }
                best = Swift.min(best, p5)
                p3 *= 3
            }
            p2 *= 2
        }
        return Swift.max(best, 2)
    }

    private static func transform(_ real: inout [Double], _ out: inout [(Double, Double)], n: Int) {
        real.withUnsafeMutableBufferPointer { r in
            out.withUnsafeMutableBufferPointer { o in
                o.baseAddress!.withMemoryRebound(to: fftw_complex.self, capacity: o.count) { c in
                    plannerLock.lock()
                    let plan = fftw_plan_dft_r2c_1d(Int32(n), r.baseAddress, c, estimate)
                    plannerLock.unlock()
                    fftw_execute(plan)
                    plannerLock.lock()
                    fftw_destroy_plan(plan)
                    plannerLock.unlock()
                }
            }
        }
    }

    private static func inverse(_ spectrum: inout [(Double, Double)], _ real: inout [Double], n: Int) {
        real.withUnsafeMutableBufferPointer { r in
            spectrum.withUnsafeMutableBufferPointer { o in
                o.baseAddress!.withMemoryRebound(to: fftw_complex.self, capacity: o.count) { c in
                    plannerLock.lock()
                    let plan = fftw_plan_dft_c2r_1d(Int32(n), c, r.baseAddress, estimate)
                    plannerLock.unlock()
                    fftw_execute(plan)
                    plannerLock.lock()
                    fftw_destroy_plan(plan)
                    plannerLock.unlock()
                }
            }
        }
    }
}
