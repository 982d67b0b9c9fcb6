import Foundation
import Testing

@testable import DPFeatures

/// The scattering transform against a slow, obviously correct twin: every filter turned back
/// into a spatial kernel by a direct inverse DFT, every convolution a direct circular one at
/// the path's resolution, every subsampling a pick of every k-th pixel, in Double. The fast
/// path (FFTW, products and periodisation in the Fourier domain, batched plans, threads) must
/// agree to 1e-5 of the largest coefficient. Kymatio itself is compared in
/// Benchmarks/peers/scattering_kymatio.py (the filters are built as Kymatio builds them).
@Suite("Scattering2D")
struct ScatteringTests {
    /// A complex image, row-major.
    struct Plane {
        var rows: Int, columns: Int
        var re: [Double], im: [Double]
        init(rows: Int, columns: Int) {
            self.rows = rows
            self.columns = columns
            re = [Double](repeating: 0, count: rows * columns)
            im = re
        }
    }

    /// `h(u) = 1/(mn) sum_K F(K) e^{+2 pi i K.u / (m, n)}` for a real spectrum `F` (direct).
    static func spatialKernel(_ fourier: [Double], rows m: Int, columns n: Int) -> Plane {
        var h = Plane(rows: m, columns: n)
        for a in 0..<m {
            for b in 0..<n {
                var re = 0.0, im = 0.0
                for p in 0..<m {
                    for q in 0..<n {
                        let angle = 2 * Double.pi * (Double(p * a) / Double(m) + Double(q * b) / Double(n))
                        re += fourier[p * n + q] * cos(angle)
                        im += fourier[p * n + q] * sin(angle)
                    }
                }
                h.re[a * n + b] = re / Double(m * n)
                h.im[a * n + b] = im / Double(m * n)
            }
        }
        return h
    }

    /// `y(u) = sum_v x(v) h(u - v mod size)`, then `y(k u)`.
    static func convolveSubsample(_ x: Plane, _ h: Plane, factor k: Int) -> Plane {
        let m = x.rows, n = x.columns
        var y = Plane(rows: m / k, columns: n / k)
        for a in 0..<(m / k) {
            for b in 0..<(n / k) {
                var re = 0.0, im = 0.0
                for va in 0..<m {
                    for vb in 0..<n {
                        let ha = ((k * a - va) % m + m) % m, hb = ((k * b - vb) % n + n) % n
                        let xr = x.re[va * n + vb], xi = x.im[va * n + vb]
                        let hr = h.re[ha * n + hb], hi = h.im[ha * n + hb]
                        re += xr * hr - xi * hi
                        im += xr * hi + xi * hr
                    }
                }
                y.re[a * (n / k) + b] = re
                y.im[a * (n / k) + b] = im
            }
        }
        return y
    }

    static func modulus(_ x: Plane) -> Plane {
        var y = Plane(rows: x.rows, columns: x.columns)
        for i in 0..<x.re.count { y.re[i] = (x.re[i] * x.re[i] + x.im[i] * x.im[i]).squareRoot() }
        return y
    }

    /// The transform by the definition, channel by channel in Kymatio's order.
    static func reference(_ image: [Float], height: Int, width: Int, bank: MorletFilterBank) -> [Double] {
        let M = bank.rows, N = bank.columns, J = bank.scales
        let top = (M - height) / 2, left = (N - width) / 2
        func reflect(_ i: Int, _ count: Int) -> Int {
            var i = i
            while i < 0 || i >= count { i = i < 0 ? -i : 2 * (count - 1) - i }
            return i
        }
        var x = Plane(rows: M, columns: N)
        for a in 0..<M {
            for b in 0..<N {
                x.re[a * N + b] = Double(image[reflect(a - top, height) * width + reflect(b - left, width)])
            }
        }
        let phi = (0..<J).map { spatialKernel(bank.lowPass[$0], rows: M >> $0, columns: N >> $0) }
        func psi(_ n: Int, _ res: Int) -> Plane {
            spatialKernel(bank.wavelets[n].levels[res], rows: M >> res, columns: N >> res)
        }
        var outputs = [convolveSubsample(x, phi[0], factor: 1 << J)]
        var firstOrder: [Plane] = []
        for (n1, w1) in bank.wavelets.enumerated() {
            let u1 = modulus(convolveSubsample(x, psi(n1, 0), factor: 1 << w1.j))
            firstOrder.append(u1)
            outputs.append(convolveSubsample(u1, phi[w1.j], factor: 1 << (J - w1.j)))
        }
        for (n1, w1) in bank.wavelets.enumerated() {
            for (n2, w2) in bank.wavelets.enumerated() where w2.j > w1.j {
                let u2 = modulus(convolveSubsample(firstOrder[n1], psi(n2, w1.j), factor: 1 << (w2.j - w1.j)))
                outputs.append(convolveSubsample(u2, phi[w2.j], factor: 1 << (J - w2.j)))
            }
        }
        // Unpad: drop one pixel of border.
        var result: [Double] = []
        for s in outputs {
            for a in 1..<(s.rows - 1) {
                for b in 1..<(s.columns - 1) { result.append(s.re[a * s.columns + b]) }
            }
        }
        return result
    }

    /// Smooth structure plus pixel noise in [0, 1], reproducible.
    static func images(count: Int, height: Int, width: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        var x: [Float] = []
        for i in 0..<count {
            for a in 0..<height {
                for b in 0..<width {
                    let wave = 0.5 + 0.4 * sin(Float(a + 2 * i) * 0.7) * cos(Float(b) * 0.45)
                    x.append(min(1, max(0, wave + 0.2 * (uniform() - 0.5))))
                }
            }
        }
        return x
    }

    @Test(arguments: [(8, 8, 2, 8), (10, 14, 2, 8), (9, 11, 1, 4), (8, 8, 3, 3), (5, 7, 2, 2)])
    func matchesTheDirectConvolutionReference(_ c: (height: Int, width: Int, scales: Int, angles: Int)) throws {
        let s = try Scattering2D(height: c.height, width: c.width, scales: c.scales, angles: c.angles)
        let count = 3
        let x = Self.images(count: count, height: c.height, width: c.width, seed: UInt64(c.height * 31 + c.width))
        let fast = s.transform(x, count: count, threads: 2)
        let perImage = s.channels * s.outputHeight * s.outputWidth
        #expect(fast.count == count * perImage)
        for i in 0..<count {
            let image = Array(x[(i * c.height * c.width)..<((i + 1) * c.height * c.width)])
            let slow = Self.reference(image, height: c.height, width: c.width, bank: s.filters)
            #expect(slow.count == perImage)
            let scale = slow.map(abs).max()!
            var worst = 0.0
            for k in 0..<perImage { worst = max(worst, abs(Double(fast[i * perImage + k]) - slow[k])) }
            #expect(worst <= 1e-5 * scale, "image \(i): max error \(worst), largest coefficient \(scale)")
        }
    }

    @Test func fashionMNISTShapeIsKymatios() throws {
        let s = try Scattering2D(height: 28, width: 28, scales: 2, angles: 8)
        #expect(s.paddedHeight == 36 && s.paddedWidth == 36)
        #expect(s.outputShape == [81, 7, 7])
        #expect(s.filters.wavelets.map(\.j) == [Int](repeating: 0, count: 8) + [Int](repeating: 1, count: 8))
        #expect(s.filters.lowPass.map(\.count) == [36 * 36, 18 * 18])
        // A constant image: order 0 is the constant times phi's DC gain (2 pi / (2 * 3.1415),
        // Kymatio's rounded pi), the wavelets have zero mean so orders 1 and 2 vanish.
        let out = s.transform([Float](repeating: 0.5, count: 28 * 28), count: 1)
        let gain = 2 * Double.pi / (2 * 3.1415)
        for k in 0..<49 { #expect(abs(Double(out[k]) - 0.5 * gain) < 1e-5) }
        #expect(out[49...].allSatisfy { abs($0) < 1e-5 })
    }

    @Test func threadsDoNotChangeTheResult() throws {
        let s = try Scattering2D(height: 28, width: 28)
        let x = Self.images(count: 5, height: 28, width: 28, seed: 7)
        #expect(s.transform(x, count: 5, threads: 1) == s.transform(x, count: 5, threads: 3))
        // Each image on its own gives its row of the batch.
        let one = s.transform(Array(x[(2 * 784)..<(3 * 784)]), count: 1, threads: 1)
        #expect(Array(s.transform(x, count: 5, threads: 2)[(2 * 81 * 49)..<(3 * 81 * 49)]) == one)
    }

    @Test(arguments: [(3, 28, 2), (28, 2, 2), (7, 7, 3)])
    func refusesImagesSmallerThanTheScale(_ c: (height: Int, width: Int, scales: Int)) {
        #expect(throws: FeatureError.inputTooSmall(height: c.height, width: c.width, scale: 1 << c.scales)) {
            try Scattering2D(height: c.height, width: c.width, scales: c.scales)
        }
        let message = FeatureError.inputTooSmall(height: c.height, width: c.width, scale: 1 << c.scales).description
        #expect(message.contains("lower J"))
    }

    @Test func reflectIsNumPys() {
        // np.pad(np.arange(4), 6, mode="reflect")
        let expected = [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
        #expect((-6..<10).map { Scattering2D.reflect($0, count: 4) } == expected)
    }
}
