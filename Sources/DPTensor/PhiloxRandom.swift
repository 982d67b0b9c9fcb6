#if canImport(Glibc)
import Glibc
#endif

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011):
/// a counter-based generator. The 64-bit key is the seed; the 128-bit counter is
/// (stream: 64 bits, block: 64 bits). Independent streams, for sampling, noise and
/// initialisation, come from ``split(stream:)``; a run is reproducible from one seed, and any
/// position can be reached without generating what comes before (``state``/``init(state:)``).
public struct PhiloxRandom: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The key (the seed).
    public let key: UInt64
    /// The stream: the high 64 bits of the counter.
    public let stream: UInt64
    /// The number of 128-bit blocks generated so far: the low 64 bits of the counter.
    public var block: UInt64 { _block }
    @usableFromInline var _block: UInt64
    @usableFromInline var buffer: SIMD4<UInt32> = .zero
    @usableFromInline var used: Int = 4

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.key = seed
        self.stream = stream
        self._block = 0
    }

    /// Two generators are equal if they produce the same words from here on: same key, stream,
    /// block and position in the current block (a fully used block's stale words do not count).
    public static func == (a: PhiloxRandom, b: PhiloxRandom) -> Bool {
        a.key == b.key && a.stream == b.stream && a._block == b._block && a.used == b.used
            && (a.used == 4 || a.buffer == b.buffer)
    }

    /// A generator for another stream under the same key: independent of this one.
    public func split(stream s: UInt64) -> PhiloxRandom { PhiloxRandom(seed: key, stream: s) }

    /// The position to save in a checkpoint: key, stream, blocks consumed, words used in the last block.
    public struct State: Codable, Sendable, Equatable {
        public var key: UInt64, stream: UInt64, block: UInt64, used: Int
    }

    public var state: State { State(key: key, stream: stream, block: block, used: used) }

    public init(state: State) {
        self.init(seed: state.key, stream: state.stream)
        if state.used < 4 && state.block > 0 {
            buffer = PhiloxRandom.bijection(counter: (stream, state.block - 1), key: key)
            _block = state.block
            used = state.used
        } else {
            _block = state.block
        }
    }

    /// The Philox4x32 bijection, 10 rounds.
    @inlinable static func bijection(counter: (UInt64, UInt64), key: UInt64) -> SIMD4<UInt32> {
        var c0 = UInt32(truncatingIfNeeded: counter.1), c1 = UInt32(truncatingIfNeeded: counter.1 >> 32)
        var c2 = UInt32(truncatingIfNeeded: counter.0), c3 = UInt32(truncatingIfNeeded: counter.0 >> 32)
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
        for _ in 0..<10 {
            let p0 = UInt64(m0) &* UInt64(c0)
            let p1 = UInt64(m1) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return SIMD4(c0, c1, c2, c3)
    }

    @inlinable public mutating func next32() -> UInt32 {
        if used == 4 {
            buffer = PhiloxRandom.bijection(counter: (stream, _block), key: key)
            _block &+= 1
            used = 0
        }
        let v = buffer[used]
        used += 1
        return v
    }

    @inlinable public mutating func next() -> UInt64 {
        UInt64(next32()) << 32 | UInt64(next32())
    }

    /// A uniform `Float` in the open interval (0, 1): never 0, so `log` of it is finite.
    @inlinable public mutating func nextOpenUnitFloat() -> Float {
        (Float(next32() >> 8) + 0.5) * (1.0 / 16_777_216.0)
    }

    /// A uniform `Double` in (0, 1).
    @inlinable public mutating func nextOpenUnitDouble() -> Double {
        (Double(next() >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// The radius uniform of a `Double` Box-Muller pair from one 64-bit word: `(w + 1/2) / 2^64`,
    /// exact for `w < 2^53` and rounded once above, in (0, 1]: the smallest is 2^-65, so a pair's
    /// radius sqrt(-2 log u1) reaches sqrt(130 ln 2) = 9.49 (the `Float` sampler's cut), where
    /// 53-bit uniforms stop at 8.65. Used by ``fillNormal(_:mean:standardDeviation:)`` for
    /// `Double` and by ``SystemRandom``.
    @inlinable public static func radiusUniform(_ w: UInt64) -> Double {
        Swift.min(1, (Double(w) + 0.5) * 0x1p-64)
    }

    /// Fills `buffer` with independent `N(mean, standardDeviation^2)` samples.
    ///
    /// `Float` output takes the vectorised Box-Muller path (``nextNormals8x8()``, run by the C
    /// kernel `dpk_philox_normal_f32` with AVX-512 or AVX2 where present): 64 normals per 24
    /// Philox blocks (three 32-bit words per pair: a 64-bit radius word, so |z| <= 9.49, and an
    /// angle word), starting at the next block boundary and consuming whole groups of 24 blocks,
    /// so the values depend only on the key, the stream and the block counter. `Double` output
    /// uses Box-Muller in `Double`, one pair of normals from two 64-bit words: the radius from
    /// ``radiusUniform(_:)`` (smallest u1 2^-65, so |z| <= 9.49), the angle from 53 bits.
    /// Neither is exactly Gaussian: see the notes in
    /// `PhiloxRandom+Normal.swift` and docs/accounting.md.
    public mutating func fillNormal<S: TensorScalar>(
        _ buffer: UnsafeMutableBufferPointer<S>,
        mean: S = 0, standardDeviation: S = 1
    ) {
        if S.self == Float.self {
            let p = UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: Float.self)
            fillNormalFloat(
                p, count: buffer.count, mean: Float(mean), standardDeviation: Float(standardDeviation),
                accumulate: false)
            return
        }
        var i = 0
        let n = buffer.count
        while i < n {
            let u1 = PhiloxRandom.radiusUniform(next()), u2 = nextOpenUnitDouble()
            let r = (-2 * Glibc.log(u1)).squareRoot()
            let t = 2 * Double.pi * u2
            buffer[i] = mean + standardDeviation * S(r * Glibc.cos(t))
            if i + 1 < n { buffer[i + 1] = mean + standardDeviation * S(r * Glibc.sin(t)) }
            i += 2
        }
    }

    /// Adds independent `N(0, standardDeviation^2)` samples to `buffer` in place, allocating
    /// nothing. Adds exactly the samples ``fillNormal(_:mean:standardDeviation:)`` would write.
    public mutating func addNormal<S: TensorScalar>(to buffer: UnsafeMutableBufferPointer<S>, standardDeviation: S) {
        if S.self == Float.self {
            let p = UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: Float.self)
            fillNormalFloat(
                p, count: buffer.count, mean: 0, standardDeviation: Float(standardDeviation), accumulate: true)
            return
        }
        // Double: chunks through a small stack buffer, so no second full tensor is allocated.
        let chunk = 256
        withUnsafeTemporaryAllocation(of: S.self, capacity: chunk) { tmp in
            var start = 0
            while start < buffer.count {
                let m = Swift.min(chunk, buffer.count - start)
                let t = UnsafeMutableBufferPointer(rebasing: tmp[0..<m])
                fillNormal(t, mean: 0, standardDeviation: standardDeviation)
                for j in 0..<m { buffer[start + j] += t[j] }
                start += m
            }
        }
    }

    /// Fills `buffer` with independent uniform samples in `[lower, upper)`, 24 (Float) or
    /// 53 (Double) random bits each.
    public mutating func fillUniform<S: TensorScalar>(
        _ buffer: UnsafeMutableBufferPointer<S>, in lower: S = 0, _ upper: S = 1
    ) {
        let width = upper - lower
        if S.self == Float.self {
            for i in 0..<buffer.count {
                buffer[i] = lower + width * S(Float(next32() >> 8) * (1.0 / 16_777_216.0))
            }
        } else {
            for i in 0..<buffer.count {
                buffer[i] = lower + width * S(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0))
            }
        }
    }
}

extension Tensor {
    /// Independent uniform samples in `range`.
    /// Inlinable so that it is specialised for the caller's scalar and generator (unspecialised,
    /// the generic `random(in:using:)` dominated the set-up of benchmarks).
    @inlinable
    public init<G: RandomNumberGenerator>(uniform shape: Shape, in range: ClosedRange<Scalar>, using rng: inout G)
    where Scalar.RawSignificand: FixedWidthInteger {
        self.init(zeros: shape)
        withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = Scalar.random(in: range, using: &rng) }
        }
    }

    /// Independent normal samples.
    public init(normal shape: Shape, mean: Scalar = 0, standardDeviation: Scalar = 1, using rng: inout PhiloxRandom) {
        self.init(zeros: shape)
        withUnsafeMutableBufferPointer { rng.fillNormal($0, mean: mean, standardDeviation: standardDeviation) }
    }

    /// Adds independent `N(0, standardDeviation^2)` samples to every scalar, in place, without
    /// allocating a second tensor. Adds exactly the samples `Tensor(normal:...)` would hold for the
    /// same generator state.
    public mutating func addGaussianNoise(standardDeviation: Scalar, using rng: inout PhiloxRandom) {
        withUnsafeMutableBufferPointer { rng.addNormal(to: $0, standardDeviation: standardDeviation) }
    }

    /// Fills the tensor with independent uniform samples in `[lower, upper)`.
    public mutating func fillUniform(in lower: Scalar = 0, _ upper: Scalar = 1, using rng: inout PhiloxRandom) {
        withUnsafeMutableBufferPointer { rng.fillUniform($0, in: lower, upper) }
    }

    /// Fills the tensor with independent `N(mean, standardDeviation^2)` samples.
    public mutating func fillNormal(mean: Scalar = 0, standardDeviation: Scalar = 1, using rng: inout PhiloxRandom) {
        withUnsafeMutableBufferPointer { rng.fillNormal($0, mean: mean, standardDeviation: standardDeviation) }
    }
}

extension PhiloxRandom {
    /// One standard normal `Double`: the first value ``fillNormal(_:mean:standardDeviation:)``
    /// would write into a one-element `Double` buffer (|z| <= 9.49).
    public mutating func nextNormalDouble() -> Double {
        var z = 0.0
        withUnsafeMutablePointer(to: &z) { fillNormal(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return z
    }
}
