import CDPKernels

// MARK: - Vectorised normal sampling (Float)
//
// Box-Muller on eight Philox4x32-10 blocks at once. Each block (counter = stream, block)
// gives four 32-bit words (x0, x1, x2, x3); (x0, x1) and (x2, x3) each make one Box-Muller
// pair:
//
//     u1 = (x + 1/2) / 2^32 in (0, 1)                r = sqrt(-2 log u1)
//     q  = y & 3 (quadrant),  f = (y >> 9) * 2^-23 - 1/2,  theta = (q + f) * pi/2
//     z1 = r cos(theta),  z2 = r sin(theta)
//
// `log` is Cephes `logf` (about 1 ulp), sin and cos the Cephes minimax polynomials on
// [-pi/4, pi/4], sqrt a Newton-refined reciprocal square root: all within a few Float ulps.
// The smallest u1 is 2^-33, so |z| <= sqrt(66 ln 2) = 6.76: the tail beyond 6.76 sigma
// (probability 1.4e-11) is cut off. Use the `Double` path (53-bit uniforms, |z| <= 8.6) where
// that matters.

extension PhiloxRandom {
    /// Philox4x32-10 on the eight counters (stream, block + 0...7): the four output words of
    /// each block, one block per lane.
    @inlinable @inline(__always)
    static func bijection8(firstBlock: UInt64, stream: UInt64, key: UInt64)
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

    /// The next 32 standard normal `Float`s from the next eight blocks, as four vectors
    /// (`r_A cos`, `r_A sin`, `r_B cos`, `r_B sin`). Discards what is left of a partly used block.
    @inlinable
    public mutating func nextNormals8x4() -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (x0, x1, x2, x3) = PhiloxRandom.bijection8(firstBlock: _block, stream: stream, key: key)
        _block &+= 8
        used = 4
        let (ca, sa) = boxMullerSIMD(x0, x1)
        let (cb, sb) = boxMullerSIMD(x2, x3)
        return (ca, sa, cb, sb)
    }

    /// Writes (or adds, if `accumulate`) `mean + standardDeviation * z` to `count` Floats at `p`:
    /// the values of ``fillNormalFloatReference(_:count:mean:standardDeviation:accumulate:)``,
    /// computed by the C kernel `dpk_philox_normal_f32` (vectorised for AVX-512 or AVX2 where the
    /// CPU has them, baseline x86-64 otherwise). The kernel computes the same operations in the
    /// same order without fused multiply-adds, so the values match the Swift path; the tests allow
    /// 4 ulps. Consumes `8 * ceil(count / 32)` blocks, as the reference does.
    mutating func fillNormalFloat(_ p: UnsafeMutablePointer<Float>?, count n: Int, mean: Float,
                                  standardDeviation sd: Float, accumulate: Bool) {
        guard n > 0, let p else { return }
        dpk_philox_normal_f32(key, stream, _block, p, Int64(n), mean, sd, accumulate ? 1 : 0)
        _block &+= 8 &* UInt64((n + 31) / 32)
        used = 4
    }

    /// The Swift implementation of ``fillNormalFloat(_:count:mean:standardDeviation:accumulate:)``,
    /// 32 normals per ``nextNormals8x4()``: the reference the C kernel is tested against.
    @inlinable
    mutating func fillNormalFloatReference(_ p: UnsafeMutablePointer<Float>?, count n: Int, mean: Float,
                                  standardDeviation sd: Float, accumulate: Bool) {
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
        while i + 32 <= n {
            let (z0, z1, z2, z3) = nextNormals8x4()
            put(z0, i); put(z1, i + 8); put(z2, i + 16); put(z3, i + 24)
            i += 32
        }
        if i < n {
            var z = nextNormals8x4()
            withUnsafeBytes(of: &z) { zb in
                let f = zb.bindMemory(to: Float.self)
                for j in 0..<(n - i) { p[i + j] = accumulate ? p[i + j] + sd * f[j] : mean + sd * f[j] }
            }
        }
    }
}

/// Box-Muller on eight pairs of 32-bit words: `(r cos theta, r sin theta)` as described above.
/// Written with integer bit operations and float arithmetic only (no int-to-float conversion,
/// division or `sqrt` instruction), which the compiler keeps in vector registers even at the
/// baseline x86-64 target.
@inlinable @inline(__always)
func boxMullerSIMD(_ wr: SIMD8<UInt32>, _ wt: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>) {
    // w + 1/2 as a Float: the high and low 16 bits through the 2^23 trick (exact), then one rounding.
    let hi = unsafeBitCast((wr &>> 16) | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
    let lo = unsafeBitCast((wr & 0xFFFF) | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
    let w: SIMD8<Float> = hi * 65_536 + (lo + 0.5)
    // -2 log u1 with u1 = (w + 1/2) / 2^32 in (0, 1).
    let logw = logPositiveSIMD(w)
    let minusTwoLogU: SIMD8<Float> = (32 * 1.386_294_361_1) - 2 * logw
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

/// `sqrt(x)` for `x >= 0` (0 gives 0): `x / sqrt(x)` with `1 / sqrt(x)` from the bit-level
/// estimate and three Newton steps (relative error below 1e-9 before rounding).
@inlinable @inline(__always)
func squareRootSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var y = unsafeBitCast(SIMD8<UInt32>(repeating: 0x5F37_59DF) &- (unsafeBitCast(x, to: SIMD8<UInt32>.self) &>> 1),
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
