import DPTensor

/// Shamir secret sharing (Shamir 1979) of byte strings over the prime field `GF(2^61 - 1)`.
///
/// A secret is cut into 7-byte chunks (each below the prime); chunk `c` is the constant term of
/// a random polynomial `f_c` of degree `threshold - 1` whose other coefficients are uniform in
/// the field, drawn from the OS generator. Share `i` (for `x = i + 1`) holds `f_c(x)` for every
/// chunk. Any `threshold` shares determine the secret by Lagrange interpolation at 0; fewer
/// reveal nothing (every secret is equally consistent with them). This is arithmetic, not a
/// cryptographic primitive; the randomness comes from `getrandom`.
public enum Shamir {
    /// `2^61 - 1`.
    public static let prime: UInt64 = (1 << 61) - 1
    static let chunkBytes = 7

    public struct Share: Hashable, Sendable {
        /// The evaluation point, `1...n`.
        public let x: UInt64
        public let values: [UInt64]
        /// The secret's length in bytes.
        public let secretLength: Int

        public init(x: UInt64, values: [UInt64], secretLength: Int) {
            self.x = x
            self.values = values
            self.secretLength = secretLength
        }

        /// Little-endian: `x`, the secret length and the value count (UInt32 each), the values (UInt64).
        public var bytes: [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(12 + 8 * values.count)
            func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
            append(UInt32(truncatingIfNeeded: x))
            append(UInt32(truncatingIfNeeded: secretLength))
            append(UInt32(truncatingIfNeeded: values.count))
            for v in values { append(v) }
            return out
        }

        /// Reads a share written by ``bytes`` from the front of `data`.
        /// - Throws: ``FederatedError`` for truncated or inconsistent bytes.
        public init(consuming data: inout ArraySlice<UInt8>) throws {
            func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
                let n = MemoryLayout<T>.size
                guard data.count >= n else { throw FederatedError("a Shamir share is truncated") }
                var v: T = 0
                for (i, b) in data.prefix(n).enumerated() { v |= T(b) << (8 * i) }
                data = data.dropFirst(n)
                return v
            }
            let x = UInt64(try read(UInt32.self))
            let length = Int(try read(UInt32.self))
            let count = Int(try read(UInt32.self))
            guard count == (length + chunkBytes - 1) / chunkBytes, data.count >= 8 * count else {
                throw FederatedError("a Shamir share of \(count) values for a \(length)-byte secret is malformed")
            }
            self.init(x: x, values: try (0..<count).map { _ in try read(UInt64.self) }, secretLength: length)
        }
    }

    /// `count` shares of `secret`, any `threshold` of which reconstruct it.
    /// - Precondition: `1 <= threshold <= count`.
    public static func split(_ secret: [UInt8], threshold: Int, count: Int) -> [Share] {
        precondition(
            threshold >= 1 && threshold <= count, "Shamir.split: threshold \(threshold) must be in 1...\(count)")
        var rng = SystemRandom()
        let chunks = stride(from: 0, to: secret.count, by: chunkBytes).map { start -> UInt64 in
            var v: UInt64 = 0
            for (k, b) in secret[start..<min(secret.count, start + chunkBytes)].enumerated() {
                v |= UInt64(b) << (8 * k)
            }
            return v
        }
        // coefficients[c][k]: chunk c's coefficient of x^k (k = 0: the secret chunk).
        let coefficients = chunks.map { s -> [UInt64] in
            [s] + (1..<threshold).map { _ in uniform(&rng) }
        }
        return (1...count).map { i in
            let x = UInt64(i)
            let values = coefficients.map { co -> UInt64 in
                var acc: UInt64 = 0
                for c in co.reversed() { acc = add(mul(acc, x), c) }
                return acc
            }
            return Share(x: x, values: values, secretLength: secret.count)
        }
    }

    /// The secret from at least `threshold` distinct shares (exactly the first `threshold` used
    /// are needed; more are ignored).
    /// - Throws: ``FederatedError`` for fewer than `threshold` shares or repeated points.
    public static func reconstruct(_ shares: [Share], threshold: Int) throws -> [UInt8] {
        guard shares.count >= threshold, threshold >= 1 else {
            throw FederatedError(
                "Shamir reconstruction needs \(threshold) shares, got \(shares.count): the secret cannot be recovered (too many dropouts)"
            )
        }
        let used = Array(shares.prefix(threshold))
        guard Set(used.map(\.x)).count == used.count else {
            throw FederatedError("Shamir reconstruction got repeated shares")
        }
        let chunkCount = used[0].values.count
        var secret: [UInt8] = []
        for c in 0..<chunkCount {
            var s: UInt64 = 0
            for (i, si) in used.enumerated() {
                var num: UInt64 = 1, den: UInt64 = 1
                for (j, sj) in used.enumerated() where j != i {
                    num = mul(num, sj.x)
                    den = mul(den, sub(sj.x, si.x))
                }
                s = add(s, mul(si.values[c], mul(num, inverse(den))))
            }
            for k in 0..<chunkBytes { secret.append(UInt8(truncatingIfNeeded: s >> (8 * k))) }
        }
        return Array(secret.prefix(used[0].secretLength))
    }

    // MARK: - Field arithmetic

    static func uniform(_ rng: inout SystemRandom) -> UInt64 {
        while true {
            let v = rng.next() & prime // 61 bits; reject the one value equal to p
            if v < prime { return v }
        }
    }

    static func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let s = a + b
        return s >= prime ? s - prime : s
    }
    static func sub(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : a + prime - b }
    static func mul(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        return prime.dividingFullWidth((hi, lo)).remainder
    }
    static func inverse(_ a: UInt64) -> UInt64 {
        precondition(a != 0, "Shamir: inverse of zero")
        var result: UInt64 = 1, base = a, e = prime - 2
        while e > 0 {
            if e & 1 == 1 { result = mul(result, base) }
            base = mul(base, base)
            e >>= 1
        }
        return result
    }
}
