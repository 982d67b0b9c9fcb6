import Foundation

/// The Morlet wavelets and the Gaussian low-pass filter of the 2-D scattering transform, in
/// the Fourier domain, built exactly as Kymatio's `filter_bank(M, N, J, L)` builds them
/// (kymatio/scattering2d/filter_bank.py, Andreux et al. 2020, "Kymatio: Scattering Transforms
/// in Python", JMLR 21(60)).
///
/// For `j` in `0..<J` and `theta` in `0..<L`, the wavelet `psi_{j,theta}` is the Morlet
/// filter of width `sigma = 0.8 * 2^j`, angle `(floor(L - L/2 - 1) - theta) * pi / L`,
/// centre frequency `xi = 3 pi / 4 / 2^j` and slant `4 / L`:
///
///     gabor(u) = sum over 5x5 periods of exp(-u^T R D R^-1 u / (2 sigma^2) + i xi (u_1 cos t + u_2 sin t)) / (2 * 3.1415 * sigma^2 / slant)
///     psi(u)   = gabor_xi(u) - K gabor_0(u),   K = sum gabor_xi / sum gabor_0   (zero mean)
///
/// with `D = diag(1, slant^2)`, stored as the real part of its 2-D DFT (the imaginary part is
/// zero up to rounding). The low-pass `phi` is the Gabor filter of width `0.8 * 2^(J-1)`,
/// frequency 0, slant 1. Both are kept at the resolutions the transform uses: level `res` is
/// the filter cropped to `(M / 2^res) x (N / 2^res)` frequencies (``periodize(_:rows:columns:resolution:)``).
/// The constant 3.1415 is Kymatio's.
public struct MorletFilterBank: Sendable {
    /// One band-pass filter: its scale `j`, angle index `theta` and its Fourier levels.
    public struct Wavelet: Sendable {
        public var j: Int
        public var theta: Int
        /// `levels[res]`: `(M >> res) x (N >> res)`, row-major; `res < min(j + 1, max(J - 1, 1))`.
        public var levels: [[Double]]
    }

    public let rows: Int
    public let columns: Int
    public let scales: Int
    public let angles: Int
    /// In Kymatio's order: `j` major, then `theta`.
    public let wavelets: [Wavelet]
    /// `lowPass[res]` for `res` in `0..<J`.
    public let lowPass: [[Double]]

    /// The filters for padded images of `rows x columns` (both multiples of `2^scales`).
    public init(rows: Int, columns: Int, scales J: Int, angles L: Int) {
        precondition(
            J >= 1 && L >= 1 && rows % (1 << J) == 0 && columns % (1 << J) == 0,
            "MorletFilterBank: \(rows)x\(columns) is not a multiple of 2^\(J), or J, L < 1")
        self.rows = rows
        self.columns = columns
        scales = J
        angles = L
        var wavelets: [Wavelet] = []
        for j in 0..<J {
            for theta in 0..<L {
                let angle = Double(Int(Double(L) - Double(L) / 2 - 1) - theta) * Double.pi / Double(L)
                let spatial = Self.morlet(
                    rows: rows, columns: columns, sigma: 0.8 * pow(2, Double(j)), theta: angle,
                    xi: 3.0 / 4.0 * Double.pi / pow(2, Double(j)), slant: 4.0 / Double(L))
                let fourier = Self.realPartOfDFT(spatial, rows: rows, columns: columns)
                let levels = (0..<min(j + 1, max(J - 1, 1))).map {
                    Self.periodize(fourier, rows: rows, columns: columns, resolution: $0)
                }
                wavelets.append(Wavelet(j: j, theta: theta, levels: levels))
            }
        }
        self.wavelets = wavelets
        let phi = Self.gabor(
            rows: rows, columns: columns, sigma: 0.8 * pow(2, Double(J - 1)), theta: 0, xi: 0, slant: 1)
        let phiFourier = Self.realPartOfDFT(phi, rows: rows, columns: columns)
        lowPass = (0..<J).map { Self.periodize(phiFourier, rows: rows, columns: columns, resolution: $0) }
    }

    // MARK: - Filters in space

    /// Kymatio's `gabor_2d(M, N, sigma, theta, xi, slant)`, offset 0: interleaved complex,
    /// row-major `rows x columns`. `R` is rounded to `Float` as Kymatio stores it.
    static func gabor(
        rows M: Int, columns N: Int, sigma: Double, theta: Double, xi: Double, slant: Double
    )
        -> [Double]
    {
        let c = Double(Float(cos(theta))), s = Double(Float(sin(theta)))
        // curv = R diag(1, slant^2) R^-1 / (2 sigma^2), R = [[c, -s], [s, c]].
        let d = slant * slant, scale = 1 / (2 * sigma * sigma)
        let c00 = (c * c + d * s * s) * scale
        let c01 = (c * s - d * s * c) * scale
        let c10 = (s * c - d * c * s) * scale
        let c11 = (s * s + d * c * c) * scale
        let kx = xi * cos(theta), ky = xi * sin(theta)
        var out = [Double](repeating: 0, count: 2 * M * N)
        for ex in -2...2 {
            for ey in -2...2 {
                for a in 0..<M {
                    let x = Double(a + ex * M)
                    for b in 0..<N {
                        let y = Double(b + ey * N)
                        let magnitude = exp(-(c00 * x * x + (c01 + c10) * x * y + c11 * y * y))
                        let phase = x * kx + y * ky
                        out[2 * (a * N + b)] += magnitude * cos(phase)
                        out[2 * (a * N + b) + 1] += magnitude * sin(phase)
                    }
                }
            }
        }
        let norm = 2 * 3.1415 * sigma * sigma / slant
        // Kymatio accumulates in complex64.
        return out.map { Double(Float($0)) / norm }
    }

    /// Kymatio's `morlet_2d`: the Gabor filter minus `K` times its envelope, zero mean.
    static func morlet(
        rows M: Int, columns N: Int, sigma: Double, theta: Double, xi: Double, slant: Double
    )
        -> [Double]
    {
        let wave = gabor(rows: M, columns: N, sigma: sigma, theta: theta, xi: xi, slant: slant)
        let envelope = gabor(rows: M, columns: N, sigma: sigma, theta: theta, xi: 0, slant: slant)
        var sw = (re: 0.0, im: 0.0), se = (re: 0.0, im: 0.0)
        for k in 0..<(M * N) {
            sw.re += wave[2 * k]
            sw.im += wave[2 * k + 1]
            se.re += envelope[2 * k]
            se.im += envelope[2 * k + 1]
        }
        let denominator = se.re * se.re + se.im * se.im
        let kRe = (sw.re * se.re + sw.im * se.im) / denominator
        let kIm = (sw.im * se.re - sw.re * se.im) / denominator
        var out = wave
        for k in 0..<(M * N) {
            let er = envelope[2 * k], ei = envelope[2 * k + 1]
            out[2 * k] -= kRe * er - kIm * ei
            out[2 * k + 1] -= kRe * ei + kIm * er
        }
        return out
    }

    /// The real part of the 2-D DFT `sum_u f(u) e^{-2 pi i (k_1 u_1 / M + k_2 u_2 / N)}` of an
    /// interleaved complex `M x N` array, by two passes of direct 1-D DFTs (`O(MN(M + N))`).
    static func realPartOfDFT(_ f: [Double], rows M: Int, columns N: Int) -> [Double] {
        func dft(_ re: inout [Double], _ im: inout [Double], count n: Int, stride: Int, offset: Int) {
            var outRe = [Double](repeating: 0, count: n), outIm = [Double](repeating: 0, count: n)
            for k in 0..<n {
                for u in 0..<n {
                    let angle = -2 * Double.pi * Double((k * u) % n) / Double(n)
                    let xr = re[offset + u * stride], xi = im[offset + u * stride]
                    outRe[k] += xr * cos(angle) - xi * sin(angle)
                    outIm[k] += xr * sin(angle) + xi * cos(angle)
                }
            }
            for k in 0..<n {
                re[offset + k * stride] = outRe[k]
                im[offset + k * stride] = outIm[k]
            }
        }
        var re = (0..<(M * N)).map { f[2 * $0] }, im = (0..<(M * N)).map { f[2 * $0 + 1] }
        for a in 0..<M { dft(&re, &im, count: N, stride: 1, offset: a * N) }
        for b in 0..<N { dft(&re, &im, count: M, stride: N, offset: b) }
        return re
    }

    /// Kymatio's `periodize_filter_fft(x, res)`: the frequencies of the middle band (rows
    /// `M 2^-(res+1) ..< M 2^-(res+1) + M (1 - 2^-res)`, same for columns) are zeroed, and the
    /// rest is folded onto `(M / 2^res) x (N / 2^res)` by summing the aliases.
    public static func periodize(_ x: [Double], rows M: Int, columns N: Int, resolution res: Int) -> [Double] {
        let m = M >> res, n = N >> res, k = 1 << res
        let lengthX = Int(Double(M) * (1 - pow(2, Double(-res))))
        let startX = Int(Double(M) * pow(2, Double(-res - 1)))
        let lengthY = Int(Double(N) * (1 - pow(2, Double(-res))))
        let startY = Int(Double(N) * pow(2, Double(-res - 1)))
        var crop = [Double](repeating: 0, count: m * n)
        for a in 0..<m {
            for b in 0..<n {
                for i in 0..<k {
                    for j in 0..<k {
                        let r = a + i * m, c = b + j * n
                        if (startX..<(startX + lengthX)).contains(r) || (startY..<(startY + lengthY)).contains(c) {
                            continue
                        }
                        crop[a * n + b] += x[r * N + c]
                    }
                }
            }
        }
        return crop
    }
}
