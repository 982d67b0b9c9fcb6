// MARK: - Vectorised normal sampling (Float)
//
// Box-Muller on eight Philox4x32-10 blocks at once. Each block (counter = stream, block)
// gives four 32-bit words (x0, x1, x2, x3); (x0, x1) and (x2, x3) each make one Box-Muller
// pair:
//
//     u1 = (x >> 1) * 2^-31 + 2^-32 in (0, 1]      r = sqrt(-2 log u1)
//     q  = y & 3 (quadrant),  f = (y >> 8) * 2^-24 - 1/2,  theta = (q + f) * pi/2
//     z1 = r cos(theta),  z2 = r sin(theta)
//
// `log` is evaluated as e*ln2 + 2 atanh((m-1)/(m+1)) with m in [sqrt(1/2), sqrt(2)) (series to
// t^9, relative error below 1e-8 before rounding), sin and cos by the Cephes minimax
// polynomials on [-pi/4, pi/4]; both are within a few Float ulps. The smallest u1 is 2^-32, so
// |z| <= sqrt(64 ln 2) = 6.66: the tail beyond 6.66 sigma (probability 3e-11) is cut off. Use
// the `Double` path (53-bit uniforms, |z| <= 8.6) where that matters.

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

    /// Writes (or adds, if `accumulate`) `mean + standardDeviation * z` to `count` Floats at `p`.
    @inlinable
    mutating func fillNormalFloat(_ p: UnsafeMutablePointer<Float>?, count n: Int, mean: Float,
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
@inlinable @inline(__always)
func boxMullerSIMD(_ wr: SIMD8<UInt32>, _ wt: SIMD8<UInt32>) -> (SIMD8<Float>, SIMD8<Float>) {
    let u1 = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: wr &>> 1)) * (1.0 / 2_147_483_648.0)
        + (1.0 / 4_294_967_296.0)
    let r = (-2 * logPositiveSIMD(u1)).squareRoot()
    let q = wt & 3
    let f = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: wt &>> 8)) * (1.0 / 16_777_216.0) - 0.5
    let (s, c) = sinCosQuarterPi(f * (Float.pi / 2))
    let swap = (q & 1) .!= 0
    let a = c.replacing(with: s, where: swap)
    let b = s.replacing(with: c, where: swap)
    let cosSign = ((q &+ 1) & 2) &<< 30, sinSign = (q & 2) &<< 30
    let cosTheta = unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt32>.self) ^ cosSign, to: SIMD8<Float>.self)
    let sinTheta = unsafeBitCast(unsafeBitCast(b, to: SIMD8<UInt32>.self) ^ sinSign, to: SIMD8<Float>.self)
    return (r * cosTheta, r * sinTheta)
}

/// `log(x)` for positive normal `x`: `e ln 2 + 2 atanh(t)`, `t = (m - 1)/(m + 1)`,
/// `m` in [sqrt(1/2), sqrt(2)), `|t| <= 0.1716`; atanh series to t^9.
@inlinable @inline(__always)
func logPositiveSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let ix = unsafeBitCast(x, to: SIMD8<UInt32>.self) &+ (0x3F80_0000 &- 0x3F35_04F3)
    let e = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: ix &>> 23) &- 127)
    let m = unsafeBitCast((ix & 0x007F_FFFF) &+ 0x3F35_04F3, to: SIMD8<Float>.self)
    let f = m - 1
    let t = f / (f + 2)
    let t2 = t * t
    var poly: SIMD8<Float> = t2 * (1.0 / 9.0)
    poly = t2 * (poly + (1.0 / 7.0))
    poly = t2 * (poly + (1.0 / 5.0))
    poly = poly + (1.0 / 3.0)
    let twoT: SIMD8<Float> = 2 * t
    let logm: SIMD8<Float> = twoT + (twoT * t2) * poly
    let low: SIMD8<Float> = e * -2.121_944_4e-4 + logm
    return e * 0.693_359_375 + low
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
