#if canImport(Glibc)
import Glibc
#endif

/// Random bits from the operating system's CSPRNG (`getrandom(2)`): the source of DPKit's
/// `secure` mode, where the noise must not be predictable from a seed.
///
/// Unlike ``PhiloxRandom`` it is not reproducible and cannot be split or checkpointed. Each
/// call is a system call, so fill buffers with ``fill(_:)`` or
/// ``fillNormal(_:mean:standardDeviation:)`` rather than drawing one word at a time.
/// A failing `getrandom` stops the program: DPKit never falls back to a weaker source.
public struct SystemRandom: RandomNumberGenerator, Sendable {
    public init() {}

    typealias GetRandom = @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int

    /// glibc's `getrandom` (found at run time: Swift's Glibc module does not import
    /// `<sys/random.h>`), or nil on a libc without it.
    static let getrandomFunction: GetRandom? = {
        guard let sym = dlsym(nil, "getrandom") else { return nil }
        return unsafeBitCast(sym, to: GetRandom.self)
    }()

    /// One read from the kernel CSPRNG: `getrandom(2)`, or `/dev/urandom` where it is missing.
    static func readRandom(_ p: UnsafeMutableRawPointer, _ count: Int) -> Int {
        if let f = getrandomFunction { return f(p, count, 0) }
        let fd = open("/dev/urandom", O_RDONLY)
        if fd < 0 { return -1 }
        defer { close(fd) }
        return read(fd, p, count)
    }

    /// Fills `buffer` with random bytes, retrying on `EINTR` and partial reads.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard var p = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let got = SystemRandom.readRandom(p, remaining)
            if got < 0 {
                if errno == EINTR { continue }
                fatalError(
                    "SystemRandom: getrandom failed with errno \(errno); refusing to fall back to a weaker source")
            }
            p += got
            remaining -= got
        }
    }

    public mutating func next() -> UInt64 {
        var x: UInt64 = 0
        withUnsafeMutableBytes(of: &x) { fill($0) }
        return x
    }

    /// Fills `buffer` with independent `N(mean, standardDeviation^2)` samples: Box-Muller in
    /// `Double` from the OS CSPRNG (512 bytes per system call): the radius from a whole 64-bit
    /// word (``PhiloxRandom/radiusUniform(_:)``, |z| <= 9.49, the same cut as the `Float`
    /// sampler), the angle from 53 bits.
    public mutating func fillNormal<S: TensorScalar>(
        _ buffer: UnsafeMutableBufferPointer<S>,
        mean: S = 0, standardDeviation: S = 1
    ) {
        let wordsPerCall = 64
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: wordsPerCall) { words in
            var i = 0
            let n = buffer.count
            while i < n {
                fill(UnsafeMutableRawBufferPointer(words))
                var w = 0
                while w + 1 < wordsPerCall && i < n {
                    let u1 = PhiloxRandom.radiusUniform(words[w])
                    let u2 = Double(words[w + 1] >> 11) * (1.0 / 9_007_199_254_740_992.0)
                    let r = (-2 * Glibc.log(u1)).squareRoot()
                    let t = 2 * Double.pi * u2
                    buffer[i] = mean + standardDeviation * S(r * Glibc.cos(t))
                    if i + 1 < n { buffer[i + 1] = mean + standardDeviation * S(r * Glibc.sin(t)) }
                    i += 2
                    w += 2
                }
            }
        }
    }

    /// A uniform `Double` in the open interval (0, 1), 53 random bits.
    public mutating func nextOpenUnitDouble() -> Double {
        (Double(next() >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// One standard normal sample.
    public mutating func nextNormal() -> Double {
        var z = 0.0
        withUnsafeMutablePointer(to: &z) { fillNormal(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return z
    }
}

extension Tensor {
    /// Adds independent `N(0, standardDeviation^2)` samples from the OS CSPRNG (secure mode),
    /// in place, through a small stack buffer.
    public mutating func addGaussianNoise(standardDeviation: Scalar, using rng: inout SystemRandom) {
        let chunk = 256
        withUnsafeMutableBufferPointer { buffer in
            withUnsafeTemporaryAllocation(of: Scalar.self, capacity: chunk) { tmp in
                var start = 0
                while start < buffer.count {
                    let m = Swift.min(chunk, buffer.count - start)
                    let t = UnsafeMutableBufferPointer(rebasing: tmp[0..<m])
                    rng.fillNormal(t, mean: 0, standardDeviation: standardDeviation)
                    for j in 0..<m { buffer[start + j] += t[j] }
                    start += m
                }
            }
        }
    }
}
