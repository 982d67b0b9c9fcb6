import Crypto
import DPTensor
import Foundation
import Testing

@testable import DPFederated

// Secure aggregation: Shamir sharing, exact sums with and without dropouts, refusal below the
// threshold, and a masked update that looks uniform. Keys and masks come from the OS generator,
// so these tests are random at the rates stated.

private func randomInputs(clients n: Int, d: Int, seed: UInt64) throws -> ([[Float]], [[UInt32]], FixedPointEncoding) {
    let encoding = try FixedPointEncoding(scaleBits: 16)
    var rng = PhiloxRandom(seed: seed, stream: 1)
    let x = (0..<n).map { _ in (0..<d).map { _ in Float(rng.nextOpenUnitDouble() * 2 - 1) } }
    return (x, try x.map { try encoding.encode($0, bound: 1) }, encoding)
}

/// The plain fixed-point sum: signed integers, summed exactly.
private func plainSum(_ inputs: [[UInt32]], of clients: [Int]) -> [Int64] {
    (0..<inputs[0].count).map { j in clients.reduce(Int64(0)) { $0 + Int64(Int32(bitPattern: inputs[$1][j])) } }
}

@Test func shamirReconstructsFromAnyThresholdSubsetAndRefusesFewer() throws {
    var secret = [UInt8](repeating: 0, count: 32)
    var rng = SystemRandom()
    secret.withUnsafeMutableBytes { rng.fill($0) }
    let shares = Shamir.split(secret, threshold: 3, count: 5)
    for subset in [[0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]] {
        #expect(try Shamir.reconstruct(subset.map { shares[$0] }, threshold: 3) == secret)
    }
    #expect(throws: FederatedError.self) { try Shamir.reconstruct([shares[0], shares[1]], threshold: 3) }
    // Two shares interpolated as if the threshold were 2 give a different (wrong) secret.
    #expect(try Shamir.reconstruct([shares[0], shares[1]], threshold: 2) != secret)
}

@Test(arguments: [[Int](), [1], [1, 4]])
func unmaskedSumEqualsThePlainFixedPointSumExactly(dropped: [Int]) throws {
    let n = 6, d = 500
    let (_, inputs, encoding) = try randomInputs(clients: n, d: d, seed: 3)
    let protocolRound = try SecureAggregation(threshold: 4, clients: n)
    let result = try protocolRound.run(inputs: inputs, droppedBeforeInput: Set(dropped), round: 7)
    let survivors = (0..<n).filter { !dropped.contains($0) }
    #expect(result.survivors == survivors)
    let expected = plainSum(inputs, of: survivors)
    #expect(result.sum.map { Int64(Int32(bitPattern: $0)) } == expected)
    #expect(encoding.decode(result.sum) == expected.map { Double($0) / 65536 })
    // The server never holds an unmasked input.
    for u in survivors { #expect(result.maskedInputs[u] != inputs[u]) }
}

@Test func belowTheThresholdNothingIsUnmasked() throws {
    let (_, inputs, _) = try randomInputs(clients: 6, d: 10, seed: 4)
    let protocolRound = try SecureAggregation(threshold: 4, clients: 6)
    do {
        _ = try protocolRound.run(inputs: inputs, droppedBeforeInput: [0, 2, 5])
        Issue.record("expected a refusal")
    } catch let e as FederatedError {
        #expect(e.description.contains("below the threshold 4"))
    }
    #expect(throws: FederatedError.self) { try SecureAggregation(threshold: 3, clients: 6) } // not a majority
    #expect(throws: FederatedError.self) { try SecureAggregation(threshold: 7, clients: 6) }
}

@Test func aClientNeverRevealsBothSharesOfAPeer() throws {
    let a = SecureAggregationClient(index: 0, round: 0), b = SecureAggregationClient(index: 1, round: 0)
    let s = b.shares(threshold: 2, count: 2)
    a.receive(from: 1, key: s[0].key, seed: s[0].seed)
    _ = try a.unmaskingShares(survivors: [1], dropped: [])
    #expect(throws: FederatedError.self) { try a.unmaskingShares(survivors: [], dropped: [1]) }
}

/// Pearson's chi-square statistic of the byte `(v >> shift) & 255` over 256 bins.
private func chiSquare(_ values: [UInt32], shift: UInt32) -> Double {
    var counts = [Int](repeating: 0, count: 256)
    for v in values { counts[Int((v >> shift) & 255)] += 1 }
    let e = Double(values.count) / 256
    return counts.reduce(0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
}

@Test func aMaskedUpdateIsIndistinguishableFromUniform() throws {
    // One client's masked input of 65,536 coordinates whose true values are all 0 (the hardest
    // case: any structure in it is structure of the mask). The top and the bottom byte are each
    // tested against uniform on 256 bins at level 1e-6 (critical value 377.08 for 255 degrees
    // of freedom): a false failure once in 500,000 runs. Power: against an alternative whose
    // byte distribution is at chi-square distance D from uniform the statistic is noncentral
    // with lambda = 65536 D; the test rejects with probability 0.988 at D = 0.003 and
    // 0.999999 at D = 0.0046 (scipy.stats.ncx2). The unmasked input itself (D = 255) and
    // a mask with its top bit cleared (D = 1) are rejected with certainty, checked below.
    //
    // The server rebuilds a survivor's self-mask seed b_u in the unmasking step, so what it holds
    // of u is y_u - PRG(b_u) = x_u + pairwise masks: that is what must look uniform (the masked
    // input y_u itself is uniform from the self mask alone, even with the pairwise masks broken).
    let n = 3, d = 65_536
    let zeros = [[UInt32]](repeating: [UInt32](repeating: 0, count: d), count: n)
    let result = try SecureAggregation(threshold: 2, clients: n).run(inputs: zeros)
    let masked = result.maskedInputs[1]!
    var pairwise = masked
    MaskGenerator.subtract(
        &pairwise, try MaskGenerator.expand(seed: SymmetricKey(data: result.selfSeeds[1]!), count: d))
    let critical = 377.0781154988172
    for y in [masked, pairwise] {
        #expect(chiSquare(y, shift: 24) < critical)
        #expect(chiSquare(y, shift: 0) < critical)
    }
    #expect(chiSquare(zeros[1], shift: 24) > critical)
    #expect(chiSquare(masked.map { $0 & 0x7fff_ffff }, shift: 24) > critical)
}

@Test func fixedPointCapacityAndRangeAreChecked() throws {
    let e = try FixedPointEncoding(scaleBits: 20)
    // 1000 clients x 4 x 2^20 > 2^31.
    #expect(throws: FederatedError.self) { try e.checkCapacity(bound: 4, clients: 1000) }
    try e.checkCapacity(bound: 4, clients: 100)
    #expect(throws: FederatedError.self) { try e.encode([5], bound: 4) }
    #expect(throws: FederatedError.self) { try e.encode([.nan], bound: 4) }
    #expect(throws: FederatedError.self) { try FixedPointEncoding(scaleBits: 31) }
    #expect(e.decode(try e.encode([-1.5, 0.25], bound: 4)) == [-1.5, 0.25])
    // Without the capacity check a value of 2^31 / 2^s or more does not fit in 32 bits: an
    // error, not a trap.
    let wide = try FixedPointEncoding(scaleBits: 30)
    #expect(throws: FederatedError.self) { try wide.encode([2], bound: 8) }
    #expect(throws: FederatedError.self) { try wide.encode([-2.5], bound: 8) }
    #expect(wide.decode(try wide.encode([-2], bound: 8)) == [-2]) // -2^31 fits
}

@Test func maskGeneratorMatchesTheAESKnownAnswer() throws {
    // AES-256 of the zero block under the all-zero key is dc95c078a2408989ad48a21492842087
    // (the FIPS-197 / NIST AESAVS zero-key value). MaskGenerator runs CTR mode from the all-zero
    // 16-byte counter block, so the keystream's first block is exactly that value (and the
    // next is AES_0(0...01), the counter incremented as a 128-bit big-endian integer).
    let words = try MaskGenerator.expand(seed: SymmetricKey(data: [UInt8](repeating: 0, count: 32)), count: 4)
    let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
    #expect(bytes.map { String(format: "%02x", $0) }.joined() == "dc95c078a2408989ad48a21492842087")
}

@Test func maskGeneratorIsAESCTRKeystream() throws {
    // The PRG is AES-256-CTR from counter block 0: block 0 of the keystream is AES_k(0^128).
    // Cross-checked with AES-GCM's key schedule independently: encrypting 16 zero bytes in
    // CTR mode twice with the same key gives the same words, and different keys differ.
    let k1 = SymmetricKey(size: .bits256), k2 = SymmetricKey(size: .bits256)
    #expect(try MaskGenerator.expand(seed: k1, count: 8) == MaskGenerator.expand(seed: k1, count: 8))
    #expect(try MaskGenerator.expand(seed: k1, count: 8) != MaskGenerator.expand(seed: k2, count: 8))
    #expect(try Array(MaskGenerator.expand(seed: k1, count: 8).prefix(4)) == MaskGenerator.expand(seed: k1, count: 4))
}

@Test func encodedClippedUpdatesStayWithinTheClippingNorm() throws {
    // Rounding 1000 coordinates to 2^-8 adds about sqrt(1000 / 12) / 256 = 0.036 in quadrature;
    // clipping to C alone would leave the encoded norm above C in most draws. Clipping to
    // C - sqrt(d) / 2^9 keeps it at most C always (the triangle inequality), for flat and
    // per-layer clipping.
    let d = 1000, c = 0.5
    let encoding = try FixedPointEncoding(scaleBits: 8)
    var rng = PhiloxRandom(seed: 6, stream: 1)
    for perLayer in [false, true] {
        for _ in 0..<50 {
            let u = (0..<d).map { _ in Float(rng.nextNormalDouble()) }
            let encoded = try FederatedTrainer.encodeClipped(
                u, norm: c, encoding: encoding, layout: UpdateLayout(layerRanges: [0..<300, 300..<1000]),
                thresholds: perLayer ? [c / 2.0.squareRoot(), c / 2.0.squareRoot()] : nil)
            let decoded = encoding.decode(Array(encoded.prefix(d)))
            #expect(decoded.reduce(0) { $0 + $1 * $1 }.squareRoot() <= c)
            #expect(encoded[d] == 0) // the unclipped bit: these updates were clipped
        }
    }
}
