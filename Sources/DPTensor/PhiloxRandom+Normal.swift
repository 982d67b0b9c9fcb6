import CDPKernels

// MARK: - Vectorised normal sampling (Float)
//
// Box-Muller on 24 Philox4x32-10 blocks at once, in three groups of eight (one block per lane).
// The twelve word vectors A0...A3, B0...B3, C0...C3 (Ak: word k of blocks 0-7, Bk: of blocks
// 8-15, Ck: of blocks 16-23) make four groups of eight Box-Muller pairs, three words each:
// (A0, A1, A2), (A3, B0, B1), (B2, B3, C0), (C1, C2, C3), read as (radius high word h, radius
// low word l, angle word y):
//
//     u1 = (h 2^32 + l + 1/2) / 2^64 in (0, 1)       r = sqrt(-2 log u1)
//     q  = y & 3 (quadrant),  f = (y >> 9) * 2^-23 - 1/2,  theta = (q + f) * pi/2
//     z1 = r cos(theta),  z2 = r sin(theta)
//
// so 64 normals per 24 blocks.
//
// Why a 64-bit radius word. With the noise cut at radius c, an output that one neighbour's noise
// can reach and the other's cannot has unbounded privacy loss; the accountants' delta must pay for
// the Gaussian mass beyond c. From a 32-bit uniform the smallest u1 is 2^-33 and |z| <=
// sqrt(66 ln 2) = 6.76: a Gaussian pair leaves that disc with probability 2^-33 = 1.2e-10, far too
// much for a million coordinates per step. From 64 bits the smallest u1 is 2^-65, so r <=
// sqrt(130 ln 2) = 9.49 and a Gaussian pair leaves the disc with probability exp(-r^2/2) = 2^-65 =
// 2.7e-20; near 0, u1 moves in steps of 2^-64, so the tail is sampled finely out to about 9 sigma
// (u1 at 8.5 sigma is about 3,800 steps, at 9 sigma about 48). What the cut costs:
// docs/accounting.md, "The noise the accountants assume".
//
// Why three words per pair rather than four: the angle uses 25 bits (quadrant and 23-bit position)
// and needs no more, and three words cost 1.5 times the Philox work per normal of the 32-bit
// layout rather than twice; Box-Muller itself costs the same per pair.
//
// u1 as a Float, with one rounding and no int-to-float conversion. Let v = h 2^32 + l and k = 8 *
// (the number of significant bytes of h), so that n = v >> k < 2^32. If h = 0, then k = 0 and
// n + 1/2 = l + 1/2 is u1 2^64 itself: exact for l < 2^23, so the far tail (u1 < 2^-41) is
// represented exactly. Otherwise n >= 2^24, and v + 1/2 and n 2^k + 2^(k-1) both lie strictly
// between n 2^k and (n + 1) 2^k, an interval with no Float and no rounding boundary of a Float
// inside (at n >= 2^24 both are integers), so rounding n + 1/2 rounds (v + 1/2) / 2^k. n + 1/2
// is converted by the 2^23 trick on its 16-bit halves (exact) and one addition (the one rounding);
// the scaling by 2^(k-64) is exact. So u1 is the correctly rounded value, at least 2^-65 (a normal
// Float) and never 0; at most 1, reached when h >= 2^32 - 2^7 (r = 0).
//
// -2 log u1 is computed as 0 - 2 log(u1) from the Float u1, not as 128 ln 2 - 2 log(u1 2^64): no
// cancellation near u1 = 1. `log` is at most 0 on every Float in [2^-126, 1] (checked for each of
// them, with the C twin of `logPositiveSIMD`), so -2 log u1 >= 0, and `0 -` makes log 1 = 0 give
// +0 rather than -0.
//
// `log` is Cephes `logf` (about 1 ulp), sin and cos the Cephes minimax polynomials on
// [-pi/4, pi/4], sqrt a Newton-refined reciprocal square root: all within a few Float ulps.
//
// Floating point. The cut above is the only truncation; these samples are still not exactly
// Gaussian: u1 takes 2^64 values and the angle 2^25, sin, cos and log are polynomials, and every
// result is rounded to the Float grid, so the support of `mean + sd * z` is a finite set that
// moves with `mean` (Mironov, "On significance of the least significant bits for differential
// privacy", CCS 2012; Jin et al., "Are we there yet? Timing and floating-point attacks on
// differential privacy systems", IEEE S&P 2022). The accountants do not model that; see
// docs/accounting.md. The `Double` path (``PhiloxRandom/fillNormal(_:mean:standardDeviation:)``
// on `Double`, and `SystemRandom`) takes its radius from a whole 64-bit word as well
// (``PhiloxRandom/radiusUniform(_:)``): the same cut at 9.49.

extension PhiloxRandom {
    /// Philox4x32-10 on the eight counters (stream, block + 0...7): the four output words of
    /// each block, one block per lane.
    @inlinable @inline(__always)
    static func bijection8(
        firstBlock: UInt64, stream: UInt64, key: UInt64
    )
        -> (SIMD8<UInt32>, SIMD8<UInt32>, SIMD8<UInt32>, SIMD8<UInt32>)
    {
        let blocks = SIMD8<UInt64>(repeating: firstBlock) &+ SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7)
        var c0 = SIMD8<UInt32>(truncatingIfNeeded: blocks)
        var c1 = SIMD8<UInt32>(truncatingIfNeeded: blocks &>> 32)
        var c2 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: stream))
        var c3 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: stream >> 32))
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        let m0 = SIMD8<UInt64>(repeating: 0xD251_1F53), m1 = SIMD8<UInt64>(repeating: 0xCD9E_8D57)
        for _ in 0..<10 {
            let p0 = SIMD8<UInt64>(truncatingIfNeeded: c0) &* m0
            let p1 = SIMD8<UInt64>(truncatingIfNeeded: c2) &* m1
            let hi0 = SIMD8<UInt32>(truncatingIfNeeded: p0 &>> 32), lo0 = SIMD8<UInt32>(truncatingIfNeeded: p0)
            let hi1 = SIMD8<UInt32>(truncatingIfNeeded: p1 &>> 32), lo1 = SIMD8<UInt32>(truncatingIfNeeded: p1)
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// The next 64 standard normal `Float`s from the next 24 blocks, as eight vectors: for each of
    /// the four pair groups (A0, A1, A2), (A3, B0, B1), (B2, B3, C0), (C1, C2, C3) described above,
    /// `r cos theta` then `r sin theta`. Discards what is left of a partly used block.
    @inlinable
    public mutating func nextNormals8x8() -> (
        SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>,
        SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>
    ) {
        let (a0, a1, a2, a3) = PhiloxRandom.bijection8(firstBlock: _block, stream: stream, key: key)
        let (b0, b1, b2, b3) = PhiloxRandom.bijection8(firstBlock: _block &+ 8, stream: stream, key: key)
        let (c0, c1, c2, c3) = PhiloxRandom.bijection8(firstBlock: _block &+ 16, stream: stream, key: key)
        _block &+= 24
        used = 4
        let (z0, z1) = boxMullerSIMD(a0, a1, a2)
        let (z2, z3) = boxMullerSIMD(a3, b0, b1)
        let (z4, z5) = boxMullerSIMD(b2, b3, c0)
        let (z6, z7) = boxMullerSIMD(c1, c2, c3)
        return (z0, z1, z2, z3, z4, z5, z6, z7)
    }

    /// Writes (or adds, if `accumulate`) `mean + standardDeviation * z` to `count` Floats at `p`:
    /// the values of ``fillNormalFloatReference(_:count:mean:standardDeviation:accumulate:)``,
    /// computed by the C kernel `dpk_philox_normal_f32` (vectorised for AVX-512 or AVX2 where the
    /// CPU has them, baseline x86-64 otherwise). The kernel computes the same operations in the
    /// same order without fused multiply-adds, so the values match the Swift path; the tests allow
    /// 4 ulps. Consumes `24 * ceil(count / 64)` blocks, as the reference does.
    ///
    /// Large buffers are split across ``ParallelBatch`` threads in slices of whole groups of
    /// ``normalsPerSliceGroup`` outputs: output `i` comes from blocks `block + 24 (i / 64)`
    /// whoever computes it, so each slice starts its kernel call at `block + 24 (start / 64)`
    /// and writes the values the single call would have written there, bit for bit, whatever
    /// the thread count.
    mutating func fillNormalFloat(
        _ p: UnsafeMutablePointer<Float>?, count n: Int, mean: Float,
        standardDeviation sd: Float, accumulate: Bool
    ) {
        guard n > 0, let p else { return }
        let (key, stream, first) = (key, stream, _block)
        let add: Int32 = accumulate ? 1 : 0
        let group = PhiloxRandom.normalsPerSliceGroup
        let groups = (n + group - 1) / group
        ParallelBatch.forEachSlice(of: groups, minimumSlice: PhiloxRandom.parallelNormalsMinimumGroups) { _, r in
            let start = r.lowerBound * group, end = Swift.min(n, r.upperBound * group)
            let firstBlock = first &+ UInt64(start / 64) &* 24
            dpk_philox_normal_f32(key, stream, firstBlock, p + start, Int64(end - start), mean, sd, add)
        }
        _block &+= 24 &* UInt64((n + 63) / 64)
        used = 4
    }

    /// The outputs of one iteration of the C kernel (two groups of 24 blocks, 64 normals each):
    /// the unit a slice of a parallel fill starts on.
    static let normalsPerSliceGroup = 128

    /// The fewest groups of ``normalsPerSliceGroup`` outputs per thread (16,384 normals, about
    /// 20-40 microseconds of work) before a fill is split across threads.
    static let parallelNormalsMinimumGroups = 128

    /// One Box-Muller pair computed by the C kernel's code (`dpk_box_muller_f32`) from chosen
    /// words, `(r cos theta, r sin theta)`: for tests, which cannot steer Philox to given words.
    static func kernelBoxMuller(radiusHigh: UInt32, radiusLow: UInt32, angle: UInt32) -> (Float, Float) {
        var c: Float = 0, s: Float = 0
        dpk_box_muller_f32(radiusHigh, radiusLow, angle, &c, &s)
        return (c, s)
    }

    /// The Swift implementation of ``fillNormalFloat(_:count:mean:standardDeviation:accumulate:)``,
    /// 64 normals per ``nextNormals8x8()``: the reference the C kernel is tested against.
    @inlinable
    mutating func fillNormalFloatReference(
        _ p: UnsafeMutablePointer<Float>?, count n: Int, mean: Float,
        standardDeviation sd: Float, accumulate: Bool
    ) {
        guard n > 0, let p else { return }
        let raw = UnsafeMutableRawPointer(p)
        var i = 0
        @inline(__always) func put(_ z: SIMD8<Float>, _ at: Int) {
            let off = at * MemoryLayout<Float>.stride
            if accumulate {
                let old = raw.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
                raw.storeBytes(of: old + sd * z, toByteOffset: off, as: SIMD8<Float>.self)
            } else {
                raw.storeBytes(of: mean + sd * z, toByteOffset: off, as: SIMD8<Float>.self)
            }
        }
        while i + 64 <= n {
            let (z0, z1, z2, z3, z4, z5, z6, z7) = nextNormals8x8()
            put(z0, i)
            put(z1, i + 8)
            put(z2, i + 16)
            put(z3, i + 24)
            put(z4, i + 32)
            put(z5, i + 40)
            put(z6, i + 48)
            put(z7, i + 56)
            i += 64
        }
        if i < n {
            var z = nextNormals8x8()
            withUnsafeBytes(of: &z) { zb in
                let f = zb.bindMemory(to: Float.self)
                for j in 0..<(n - i) { p[i + j] = accumulate ? p[i + j] + sd * f[j] : mean + sd * f[j] }
            }
        }
    }
}

/// Box-Muller on eight triples of 32-bit words (radius high word, radius low word, angle word):
/// `(r cos theta, r sin theta)` as described above. Written with integer bit operations and float
/// arithmetic only (no int-to-float conversion, division or `sqrt` instruction), which the
/// compiler keeps in vector registers even at the baseline x86-64 target.
@inlinable @inline(__always)
func boxMullerSIMD(
    _ radiusHigh: SIMD8<UInt32>, _ radiusLow: SIMD8<UInt32>, _ wt: SIMD8<UInt32>
)
    -> (SIMD8<Float>, SIMD8<Float>)
{
    let u1 = openUnitFloatSIMD(high: radiusHigh, low: radiusLow)
    let minusTwoLogU: SIMD8<Float> = 0 - 2 * logPositiveSIMD(u1)
    let r = squareRootSIMD(minusTwoLogU)
    // Angle: quadrant from bits 0-1, position in the quadrant from bits 9-31.
    let q = wt & 3
    let f = unsafeBitCast((wt &>> 9) | 0x3F80_0000, to: SIMD8<Float>.self) - 1.5
    let (s, c) = sinCosQuarterPi(f * (Float.pi / 2))
    let sb = unsafeBitCast(s, to: SIMD8<UInt32>.self), cb = unsafeBitCast(c, to: SIMD8<UInt32>.self)
    let swap = SIMD8<UInt32>.zero &- (q & 1)
    let a = (cb & ~swap) | (sb & swap)
    let b = (sb & ~swap) | (cb & swap)
    let cosSign = ((q &+ 1) & 2) &<< 30, sinSign = (q & 2) &<< 30
    let cosTheta = unsafeBitCast(a ^ cosSign, to: SIMD8<Float>.self)
    let sinTheta = unsafeBitCast(b ^ sinSign, to: SIMD8<Float>.self)
    return (r * cosTheta, r * sinTheta)
}

/// `u1 = (high 2^32 + low + 1/2) / 2^64` correctly rounded to `Float`, in [2^-65, 1]: exact when
/// `high = 0` and `low < 2^23`. See "u1 as a Float" above for why the one rounding is the right one.
@inlinable @inline(__always)
func openUnitFloatSIMD(high h: SIMD8<UInt32>, low l: SIMD8<UInt32>) -> SIMD8<Float> {
    // 1 where x != 0, else 0.
    @inline(__always) func nonZero(_ x: SIMD8<UInt32>) -> SIMD8<UInt32> { (x | (SIMD8<UInt32>.zero &- x)) &>> 31 }
    @inline(__always) func select(_ m: SIMD8<UInt32>, _ yes: SIMD8<UInt32>, _ no: SIMD8<UInt32>) -> SIMD8<UInt32> {
        (yes & m) | (no & ~m)
    }
    // b(j+1) = 1 if h >= 2^(8 j), j = 0...3: their sum is the number of significant bytes of h.
    let b1 = nonZero(h), b2 = nonZero(h &>> 8), b3 = nonZero(h &>> 16), b4 = nonZero(h &>> 24)
    // n = v >> k with k = 8 (b1 + b2 + b3 + b4); the four cases nest, so later ones override.
    var n = l
    n = select(SIMD8.zero &- b1, (h &<< 24) | (l &>> 8), n)
    n = select(SIMD8.zero &- b2, (h &<< 16) | (l &>> 16), n)
    n = select(SIMD8.zero &- b3, (h &<< 8) | (l &>> 24), n)
    n = select(SIMD8.zero &- b4, h, n)
    // 2^(k - 64) as a Float: biased exponent 127 + k - 64.
    let scale = unsafeBitCast((63 &+ 8 &* (b1 &+ b2 &+ b3 &+ b4)) &<< 23, to: SIMD8<Float>.self)
    // n + 1/2 through the 2^23 trick on the 16-bit halves (exact), then one rounding.
    let nHigh = unsafeBitCast((n &>> 16) | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
    let nLow = unsafeBitCast((n & 0xFFFF) | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
    let w: SIMD8<Float> = nHigh * 65_536 + (nLow + 0.5)
    return w * scale
}

/// `sqrt(x)` for `x >= 0` (0 gives 0): `x / sqrt(x)` with `1 / sqrt(x)` from the bit-level
/// estimate and three Newton steps (relative error below 1e-9 before rounding).
@inlinable @inline(__always)
func squareRootSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var y = unsafeBitCast(
        SIMD8<UInt32>(repeating: 0x5F37_59DF) &- (unsafeBitCast(x, to: SIMD8<UInt32>.self) &>> 1),
        to: SIMD8<Float>.self)
    let halfX: SIMD8<Float> = 0.5 * x
    y = y * (1.5 - halfX * y * y)
    y = y * (1.5 - halfX * y * y)
    y = y * (1.5 - halfX * y * y)
    return x * y
}

/// `log(x)` for positive normal `x` (Cephes `logf`): `x = 2^e m`, `m` in [sqrt(1/2), sqrt(2)),
/// `log m` by a degree-9 polynomial in `m - 1`; about 1 ulp.
@inlinable @inline(__always)
func logPositiveSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let ix = unsafeBitCast(x, to: SIMD8<UInt32>.self) &+ (0x3F80_0000 &- 0x3F35_04F3)
    let e = unsafeBitCast((ix &>> 23) | 0x4B00_0000, to: SIMD8<Float>.self) - (8_388_608 + 127)
    let m = unsafeBitCast((ix & 0x007F_FFFF) &+ 0x3F35_04F3, to: SIMD8<Float>.self)
    let t: SIMD8<Float> = m - 1
    let z: SIMD8<Float> = t * t
    var p: SIMD8<Float> = t * 7.037_683_629_2e-2
    p = t * (p + -1.151_461_031_0e-1)
    p = t * (p + 1.167_699_874_0e-1)
    p = t * (p + -1.242_014_084_6e-1)
    p = t * (p + 1.424_932_278_7e-1)
    p = t * (p + -1.666_805_766_5e-1)
    p = t * (p + 2.000_071_476_5e-1)
    p = t * (p + -2.499_999_399_3e-1)
    p = p + 3.333_333_117_4e-1
    var y: SIMD8<Float> = (t * z) * p
    y = y + e * -2.121_944_4e-4
    y = y - 0.5 * z
    let tl: SIMD8<Float> = t + y
    return tl + e * 0.693_359_375
}

/// `(sin x, cos x)` for `|x| <= pi/4` (Cephes `sinf`/`cosf` polynomials).
@inlinable @inline(__always)
func sinCosQuarterPi(_ x: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
    let z = x * x
    var ps: SIMD8<Float> = z * -1.951_529_589_1e-4
    ps = z * (ps + 8.332_160_873_6e-3)
    ps = ps + -1.666_665_461_1e-1
    let s: SIMD8<Float> = x + (x * z) * ps
    var pc: SIMD8<Float> = z * 2.443_315_711_809_948e-5
    pc = z * (pc + -1.388_731_625_493_765e-3)
    pc = pc + 4.166_664_568_298_827e-2
    let c: SIMD8<Float> = (1 - 0.5 * z) + (z * z) * pc
    return (s, c)
}
