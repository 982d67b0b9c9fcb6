import CDPKernels

// MARK: - Vectorisable tanh for Float

extension Float {
    /// `tanh(x)` without a libm call, branch-free so that loops over it vectorise; within
    /// 2 ulp of correctly rounded `tanh` (tested against libm's `tanhf` over a dense sweep).
    ///
    /// With `a = min(|x|, 9.5)` (beyond 9.5, `tanh` rounds to 1 in Float):
    /// - `a < 0.625`: `tanh(a) = a + a^3 Q(a^2)`, `Q` a degree-5 polynomial fitted for minimal
    ///   relative error on `[0, 0.625]` (about `1.6e-10` in exact arithmetic);
    /// - otherwise `tanh(a) = 1 - 2 / (e^{2a} + 1)`, with `e^{2a} = 2^n e^r`,
    ///   `n = round(2a / ln 2)`, `r = 2a - n ln 2` (Cody-Waite split of `ln 2`) and `e^r` by
    ///   its degree-7 Taylor polynomial (`|r| <= ln(2) / 2`, error below `6e-9`). The result
    ///   is at least 0.55, so the subtraction loses nothing.
    ///
    /// The sign of `x` is copied onto the result, so `tanh(-0) = -0`; NaN stays NaN and
    /// `±infinity` gives `±1`.
    @inlinable @inline(__always)
    public static func vectorizableTanh(_ x: Float) -> Float {
        let a = Swift.min(x.magnitude, 9.5) // NaN stays NaN (the comparison is false)
        // Small arguments.
        let s = a * a
        var q: Float = 0.0021429609041661024
        q = q * s + -0.008177397772669792
        q = q * s + 0.021700702607631683
        q = q * s + -0.05394676327705383
        q = q * s + 0.1333320587873459
        q = q * s + -0.3333333134651184
        let small = a + (a * s) * q
        // Large arguments: e^{2a}.
        let y = a + a
        let shifted = y * 1.442695040888963 + 12_582_912 // 1.5 * 2^23: rounds to an integer
        let n = shifted - 12_582_912
        let r = (y - n * 0.693145751953125) - n * 1.428606765330187e-06
        var p: Float = 1.0 / 5040
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // 2^n from the low bits of `shifted` (n + 127 lies in [127, 155]).
        let scale = Float(bitPattern: (shifted.bitPattern &+ 127) << 23)
        let large = 1 - 2 / (p * scale + 1)
        let t = a < 0.625 ? small : large
        return Float(bitPattern: t.bitPattern | (x.bitPattern & 0x8000_0000))
    }

    /// `dst[i] = tanh(src[i])` for `count` scalars: the operations of ``vectorizableTanh(_:)``
    /// in the same order, in C (CDPKernels, vectorised for the CPU's widest vectors, so the
    /// same bits) and split across ``ParallelBatch/threadCount`` threads; `dst` may equal `src`.
    public static func vectorizableTanh(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int)
    {
        ParallelBatch.forEachSlice(of: count, minimumSlice: 16_384) { _, r in
            dpk_tanh_f32(src + r.lowerBound, dst + r.lowerBound, Int64(r.count))
        }
    }
}
