import CFFTW
import Foundation

/// The 2-D scattering transform of Mallat (2012, "Group invariant scattering", CPAM 65(10)) with
/// Morlet wavelets, computed as Kymatio's `Scattering2D(J, shape, L, max_order=2)` computes it
/// (Andreux et al. 2020, JMLR 21(60); used for DP learning by Tramèr & Boneh 2021,
/// "Differentially private learning needs better features (or much more data)", ICLR).
///
/// For an image `x` of `H x W`:
///
///     S0 x         = x * phi_J
///     S1 x[l1]     = |x * psi_l1| * phi_J
///     S2 x[l1, l2] = ||x * psi_l1| * psi_l2| * phi_J        (j2 > j1)
///
/// each subsampled by `2^J`. As in Kymatio: the image is reflect-padded (NumPy's `reflect`, the
/// edge not repeated) to `Hp = (floor((H + 2^J) / 2^J) + 1) 2^J` (same for the width),
/// convolutions are products in the Fourier domain with the filters of ``MorletFilterBank``,
/// subsampling by `k` is periodisation of the spectrum (the mean of its `k x k` aliases), each
/// modulus is taken at the coarsest resolution its path allows (`2^j1`, then `2^j2`), and the
/// outputs lose one pixel of border on each side, giving `(Hp / 2^J - 2) x (Wp / 2^J - 2)`
/// (7x7 for 28x28 and J = 2).
///
/// Channels are in Kymatio's order: `S0`; then `S1` for `(j1, theta1)`, `j1` major; then `S2`
/// for `(j1, theta1, j2, theta2)` with `j2 > j1`, in that nesting. That is `1 + J L +
/// L^2 J (J - 1) / 2` channels (81 for J = 2, L = 8).
///
/// FFTW single precision, one set of plans shared by all threads (plans are executed with new
/// arrays, which FFTW allows concurrently); images are split over `threads` workers, each with
/// its own buffers.
public final class Scattering2D: @unchecked Sendable {
    public let height: Int
    public let width: Int
    /// `J`: the scale `2^J` of the low-pass filter and of the subsampling.
    public let scales: Int
    /// `L`: the number of wavelet angles.
    public let angles: Int
    public let filters: MorletFilterBank
    /// `Hp, Wp`: the padded size.
    public let paddedHeight: Int
    public let paddedWidth: Int

    /// Output channels: `1 + J L + L^2 J (J - 1) / 2`.
    public var channels: Int { 1 + scales * angles + angles * angles * scales * (scales - 1) / 2 }
    /// Output rows and columns: `Hp / 2^J - 2`, `Wp / 2^J - 2`.
    public var outputHeight: Int { (paddedHeight >> scales) - 2 }
    public var outputWidth: Int { (paddedWidth >> scales) - 2 }
    /// The shape of one example's features: `[channels, outputHeight, outputWidth]`.
    public var outputShape: [Int] { [channels, outputHeight, outputWidth] }

    /// `psiLevels[n][res]`, `phiLevels[res]`: Float, scaled by `1 / k^2` for the subsampling
    /// factor `k` they are always used with (``MorletFilterBank``'s level `res` of wavelet `n`
    /// is used with `k = 2^(j_n - res)`, the low-pass's with `k = 2^(J - res)`).
    private let psiLevels: [[[Float]]]
    private let phiLevels: [[Float]]
    private let plans: Plans

    /// - Throws: ``FeatureError/inputTooSmall(height:width:scale:)`` when `2^J` exceeds a side;
    ///   ``FeatureError/invalidParameter(name:value:expected:)`` for `J < 1` or `L < 1`.
    public init(height: Int, width: Int, scales J: Int = 2, angles L: Int = 8) throws {
        guard J >= 1 && J <= 12 else {
            throw FeatureError.invalidParameter(name: "J", value: "\(J)", expected: "an integer in 1...12")
        }
        guard L >= 1 && L <= 64 else {
            throw FeatureError.invalidParameter(name: "L", value: "\(L)", expected: "an integer in 1...64")
        }
        guard height >= (1 << J) && width >= (1 << J) else {
            throw FeatureError.inputTooSmall(height: height, width: width, scale: 1 << J)
        }
        self.height = height
        self.width = width
        scales = J
        angles = L
        paddedHeight = ((height + (1 << J)) >> J + 1) << J
        paddedWidth = ((width + (1 << J)) >> J + 1) << J
        filters = MorletFilterBank(rows: paddedHeight, columns: paddedWidth, scales: J, angles: L)
        psiLevels = filters.wavelets.map { w in
            w.levels.enumerated().map { res, level in
                let k = Double(1 << (w.j - res))
                return level.map { Float($0 / (k * k)) }
            }
        }
        phiLevels = filters.lowPass.enumerated().map { res, level in
            let k = Double(1 << (J - res))
            return level.map { Float($0 / (k * k)) }
        }
        plans = Plans(rows: paddedHeight, columns: paddedWidth, scales: J, angles: L, channels: 0)
        plans.make(channels: 1 + J * L + L * L * J * (J - 1) / 2)
    }

    // MARK: - Transform

    /// The scattering coefficients of `count` images of `height x width` (row-major, one after
    /// the other in `images`), `[count, channels, outputHeight, outputWidth]` row-major.
    public func transform(
        _ images: [Float], count: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount
    )
        -> [Float]
    {
        precondition(
            images.count == count * height * width,
            "Scattering2D: \(images.count) values for \(count) images of \(height)x\(width)")
        let outSize = channels * outputHeight * outputWidth
        var out = [Float](repeating: 0, count: count * outSize)
        if count == 0 { return out }
        let workers = max(1, min(threads, count))
        images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let source = src.baseAddress!, target = dst.baseAddress!
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let workspace = Workspace(self)
                    let start = worker * count / workers, end = (worker + 1) * count / workers
                    for i in start..<end {
                        self.scatter(
                            source + i * self.height * self.width, into: target + i * outSize, workspace: workspace)
                    }
                }
            }
        }
        return out
    }

    /// One image: pad, transform, walk the paths, invert the outputs.
    private func scatter(_ image: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, workspace w: Workspace) {
        let J = scales, L = angles
        let M = paddedHeight, N = paddedWidth
        // Reflect-pad into the complex buffer (imaginary part zero).
        let top = (M - height) / 2, left = (N - width) / 2
        for a in 0..<M {
            let r = Self.reflect(a - top, count: height)
            for b in 0..<N {
                let c = Self.reflect(b - left, count: width)
                w.image[2 * (a * N + b)] = image[r * width + c]
                w.image[2 * (a * N + b) + 1] = 0
            }
        }
        plans.execute(plans.imageForward, w.image, w.scratch)
        w.image.update(from: w.scratch, count: 2 * M * N)
        let sliceJ = (M >> J) * (N >> J)
        func slot(_ s: Int) -> UnsafeMutablePointer<Float> { w.outputs + 2 * s * sliceJ }

        // Order 0.
        phiLevels[0].withUnsafeBufferPointer { phi in
            Self.multiplyPeriodize(
                w.image, rows: M, columns: N, filter: phi.baseAddress!, factor: 1 << J, into: slot(0))
        }
        // Order 1, grouped by j1: L wavelets at resolution j1, modulus, back to Fourier.
        for j1 in 0..<J {
            let m = M >> j1, n = N >> j1, group = w.firstOrder[j1]
            for theta in 0..<L {
                psiLevels[j1 * L + theta][0].withUnsafeBufferPointer { psi in
                    Self.multiplyPeriodize(
                        w.image, rows: M, columns: N, filter: psi.baseAddress!, factor: 1 << j1,
                        into: group + 2 * theta * m * n)
                }
            }
            modulusInFourier(group, resolution: j1, scratch: w.scratch)
            for theta in 0..<L {
                phiLevels[j1].withUnsafeBufferPointer { phi in
                    Self.multiplyPeriodize(
                        group + 2 * theta * m * n, rows: m, columns: n, filter: phi.baseAddress!,
                        factor: 1 << (J - j1), into: slot(1 + j1 * L + theta))
                }
            }
        }
        // Order 2: for each first-order path, the L wavelets of each coarser scale j2.
        var next = 1 + J * L
        for j1 in 0..<J {
            let m = M >> j1, n = N >> j1
            for theta1 in 0..<L {
                let u1 = w.firstOrder[j1] + 2 * theta1 * m * n
                for j2 in (j1 + 1)..<max(J, j1 + 1) {
                    let m2 = M >> j2, n2 = N >> j2
                    for theta2 in 0..<L {
                        psiLevels[j2 * L + theta2][j1].withUnsafeBufferPointer { psi in
                            Self.multiplyPeriodize(
                                u1, rows: m, columns: n, filter: psi.baseAddress!, factor: 1 << (j2 - j1),
                                into: w.secondOrder + 2 * theta2 * m2 * n2)
                        }
                    }
                    modulusInFourier(w.secondOrder, resolution: j2, scratch: w.scratch)
                    for theta2 in 0..<L {
                        phiLevels[j2].withUnsafeBufferPointer { phi in
                            Self.multiplyPeriodize(
                                w.secondOrder + 2 * theta2 * m2 * n2, rows: m2, columns: n2, filter: phi.baseAddress!,
                                factor: 1 << (J - j2), into: slot(next))
                        }
                        next += 1
                    }
                }
            }
        }
        // Back to space: the real part, without the border.
        plans.execute(plans.outputsInverse, w.outputs, w.scratch)
        let m = M >> J, n = N >> J, oh = m - 2, ow = n - 2
        let scale = 1 / Float(m * n)
        for c in 0..<channels {
            let s = w.scratch + 2 * c * sliceJ
            for a in 0..<oh {
                for b in 0..<ow { out[(c * oh + a) * ow + b] = s[2 * ((a + 1) * n + b + 1)] * scale }
            }
        }
    }

    /// `L` spectra at resolution `res` in place: inverse FFT, modulus (with FFTW's `1 / (m n)`),
    /// forward FFT.
    private func modulusInFourier(
        _ group: UnsafeMutablePointer<Float>, resolution res: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        plans.execute(plans.inverse[res], group, scratch)
        let size = angles * (paddedHeight >> res) * (paddedWidth >> res)
        let scale = 1 / Float((paddedHeight >> res) * (paddedWidth >> res))
        for k in 0..<size {
            let re = scratch[2 * k], im = scratch[2 * k + 1]
            scratch[2 * k] = (re * re + im * im).squareRoot() * scale
            scratch[2 * k + 1] = 0
        }
        plans.execute(plans.forward[res], scratch, group)
    }

    /// `out[a, b] = sum_{i, j} x[a + i m, b + j n] f[a + i m, b + j n]` for the `m x n =
    /// (M / k) x (N / k)` output: the product with a real filter, then the spectrum of the
    /// signal subsampled by `k` (the `1 / k^2` is in the filter).
    @inline(__always)
    static func multiplyPeriodize(
        _ x: UnsafePointer<Float>, rows M: Int, columns N: Int, filter f: UnsafePointer<Float>, factor k: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        let m = M / k, n = N / k
        out.update(repeating: 0, count: 2 * m * n)
        for r in 0..<M {
            let o = out + 2 * (r % m) * n
            for block in 0..<k {
                let xs = x + 2 * (r * N + block * n), fs = f + r * N + block * n
                for b in 0..<n {
                    o[2 * b] += xs[2 * b] * fs[b]
                    o[2 * b + 1] += xs[2 * b + 1] * fs[b]
                }
            }
        }
    }

    /// NumPy's `reflect` index: `-1 -> 1`, `count -> count - 2`, repeated for far indices.
    static func reflect(_ i: Int, count n: Int) -> Int {
        if n == 1 { return 0 }
        let period = 2 * (n - 1)
        var k = i % period
        if k < 0 { k += period }
        return k < n ? k : period - k
    }

    // MARK: - Buffers and plans

    /// One worker's buffers (FFTW-aligned).
    final class Workspace {
        let image: UnsafeMutablePointer<Float>
        /// `firstOrder[j1]`: the `L` first-order spectra at resolution `j1`.
        let firstOrder: [UnsafeMutablePointer<Float>]
        let secondOrder: UnsafeMutablePointer<Float>
        let outputs: UnsafeMutablePointer<Float>
        /// The destination of out-of-place transforms: as large as the largest batch.
        let scratch: UnsafeMutablePointer<Float>

        init(_ s: Scattering2D) {
            let M = s.paddedHeight, N = s.paddedWidth, J = s.scales, L = s.angles
            image = Plans.allocate(complex: M * N)
            firstOrder = (0..<J).map { Plans.allocate(complex: L * (M >> $0) * (N >> $0)) }
            secondOrder = Plans.allocate(complex: L * (M >> 1) * (N >> 1))
            outputs = Plans.allocate(complex: s.channels * (M >> J) * (N >> J))
            scratch = Plans.allocate(complex: max(L * M * N, s.channels * (M >> J) * (N >> J)))
        }

        deinit {
            fftwf_free(image)
            for p in firstOrder { fftwf_free(p) }
            fftwf_free(secondOrder)
            fftwf_free(outputs)
            fftwf_free(scratch)
        }
    }

    /// The out-of-place FFTW plans: the image's forward transform, `L` inverse and forward
    /// transforms at each resolution `0..<J`, and the inverse of all output spectra.
    final class Plans: @unchecked Sendable {
        /// FFTW's planner is not thread-safe; plan creation and destruction are serialised.
        static let plannerLock = NSLock()
        /// `FFTW_ESTIMATE` (`1U << 6` in fftw3.h): deterministic plans, no measuring.
        static let estimate = UInt32(1 << 6)

        let rows: Int, columns: Int, scales: Int, angles: Int
        private(set) var imageForward: OpaquePointer?
        private(set) var forward: [OpaquePointer?] = []
        private(set) var inverse: [OpaquePointer?] = []
        private(set) var outputsInverse: OpaquePointer?

        init(rows: Int, columns: Int, scales: Int, angles: Int, channels: Int) {
            self.rows = rows
            self.columns = columns
            self.scales = scales
            self.angles = angles
        }

        static func allocate(complex count: Int) -> UnsafeMutablePointer<Float> {
            let raw = fftwf_malloc(max(1, 2 * count) * MemoryLayout<Float>.stride)!
            let p = raw.bindMemory(to: Float.self, capacity: 2 * count)
            p.update(repeating: 0, count: 2 * count)
            return p
        }

        func make(channels: Int) {
            Self.plannerLock.lock()
            defer { Self.plannerLock.unlock() }
            imageForward = plan(rows: rows, columns: columns, count: 1, sign: -1)
            forward = (0..<scales).map { plan(rows: rows >> $0, columns: columns >> $0, count: angles, sign: -1) }
            inverse = (0..<scales).map { plan(rows: rows >> $0, columns: columns >> $0, count: angles, sign: 1) }
            outputsInverse = plan(rows: rows >> scales, columns: columns >> scales, count: channels, sign: 1)
        }

        private func plan(rows m: Int, columns n: Int, count: Int, sign: Int32) -> OpaquePointer? {
            let input = Self.allocate(complex: count * m * n), output = Self.allocate(complex: count * m * n)
            defer {
                fftwf_free(input)
                fftwf_free(output)
            }
            var dims: [Int32] = [Int32(m), Int32(n)]
            return input.withMemoryRebound(to: fftwf_complex.self, capacity: count * m * n) { i in
                output.withMemoryRebound(to: fftwf_complex.self, capacity: count * m * n) { o in
                    dims.withUnsafeMutableBufferPointer { d in
                        fftwf_plan_many_dft(
                            2, d.baseAddress, Int32(count), i, nil, 1, Int32(m * n), o, nil, 1, Int32(m * n), sign,
                            Self.estimate)
                    }
                }
            }
        }

        /// Runs `plan` from `input` to `output` (distinct FFTW-allocated buffers of the plan's
        /// size; FFTW knows the sizes from the plan).
        func execute(
            _ plan: OpaquePointer?, _ input: UnsafeMutablePointer<Float>, _ output: UnsafeMutablePointer<Float>
        ) {
            input.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { i in
                output.withMemoryRebound(to: fftwf_complex.self, capacity: 1) { o in fftwf_execute_dft(plan, i, o) }
            }
        }

        deinit {
            Self.plannerLock.lock()
            defer { Self.plannerLock.unlock() }
            for p in [imageForward, outputsInverse] + forward + inverse { if let p { fftwf_destroy_plan(p) } }
        }
    }
}
