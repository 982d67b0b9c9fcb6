import Crypto
import DPTensor
import Foundation
import _CryptoExtras

// Secure aggregation (Bonawitz et al. 2017, "Practical secure aggregation for privacy-preserving
// machine learning", the semi-honest protocol with double masking), simulated in one process:
// every message a client would send is a value here, and the server only ever holds masked
// inputs, public keys and the shares it asks for in the unmasking step.
//
// Primitives, all from swift-crypto:
// - key agreement: X25519 (`Curve25519.KeyAgreement`), a fresh key pair per client per round;
// - seed derivation: HKDF-SHA256 of the X25519 shared secret, salted with the round;
// - PRG: AES-256 in counter mode (`AES._CTR`, _CryptoExtras) over zeros, from a zero counter
//   block. AES-CTR is the standard PRG (NIST SP 800-90A's CTR_DRBG is built on it), runs on
//   AES-NI, and gives exactly the keystream; ChaChaPoly would add a tag and a nonce to manage.
//   Every key is used once (fresh per pair and round), so the fixed counter block is safe.
// - Shamir sharing (``Shamir``) of each client's X25519 private key and self-mask seed, with
//   coefficients from the OS generator.
// - share encryption (over the network, DPFederatedNetwork): each share travels sealed with
//   AES-256-GCM under HKDF-SHA256 of a second X25519 agreement (a second key pair per client and
//   round), the sender, receiver and round bound as associated data, so the relaying server
//   cannot read it. The in-process simulation hands shares over directly.
// Not implemented: the signatures of the actively secure variant; a malicious server that lies
// about who dropped out is out of scope.

// MARK: - Fixed-point encoding

/// Real vectors as elements of `Z_2^32`: `x -> round(x 2^s) mod 2^32` (two's complement).
///
/// Sums are taken mod `2^32` and read back as signed 32-bit integers, which is exact as long as
/// the true integer sum stays in `[-2^31, 2^31)`. With `n` clients whose coordinates satisfy
/// `|x_j| <= B`, the bound `n (B 2^s + 1/2) < 2^31` guarantees it; ``checkCapacity(bound:clients:)``
/// enforces it before any masking, and ``encode(_:bound:)`` refuses a value beyond `B`.
public struct FixedPointEncoding: Hashable, Sendable {
    /// `s`: values are multiplied by `2^s` and rounded to the nearest integer.
    public let scaleBits: Int

    public init(scaleBits: Int) throws {
        guard (0...30).contains(scaleBits) else {
            throw FederatedError("secure aggregation scale bits \(scaleBits) must be in 0...30 (16 is a good default)")
        }
        self.scaleBits = scaleBits
    }

    public var scale: Double { Double(1 << scaleBits) }

    /// The largest L2 norm rounding can add to a vector of `dimension` coordinates:
    /// `sqrt(d) / 2^(s+1)`. Clipping to `C - slack` before encoding keeps the encoded norm below `C`.
    public func roundingSlack(dimension d: Int) -> Double { Double(d).squareRoot() / (2 * scale) }

    /// - Throws: ``FederatedError`` when `n` values of magnitude `bound` could overflow the
    ///   signed 32-bit sum, naming the largest scale that fits.
    public func checkCapacity(bound: Double, clients n: Int) throws {
        let worst = Double(n) * (bound * scale + 0.5)
        guard worst < 2_147_483_648 else {
            let fits = Foundation.floor(Foundation.log2(max(1e-300, (2_147_483_648 / Double(n) - 0.5) / bound)))
            throw FederatedError(
                "secure aggregation overflow: \(n) clients x |x| <= \(bound) x 2^\(scaleBits) can exceed 2^31; use at most \(Int(max(0, fits))) scale bits, or fewer clients per round, or a smaller clipping norm"
            )
        }
    }

    public func encode(_ x: [Float], bound: Double) throws -> [UInt32] {
        try x.map { v in
            guard v.isFinite, Double(Swift.abs(v)) <= bound else {
                throw FederatedError(
                    "secure aggregation input \(v) is beyond the encoding bound \(bound): clip the update first")
            }
            // Int32(exactly:) instead of Int32(_:), which traps beyond 2^31 when the capacity
            // was not checked (bound 2^31 / 2^s or more).
            guard let w = Int32(exactly: (Double(v) * scale).rounded()) else {
                throw FederatedError(
                    "secure aggregation input \(v) x 2^\(scaleBits) does not fit in 32 bits: use fewer scale bits (checkCapacity names how many)"
                )
            }
            return UInt32(bitPattern: w)
        }
    }

    public func decode(_ sum: [UInt32]) -> [Double] {
        sum.map { Double(Int32(bitPattern: $0)) / scale }
    }
}

// MARK: - Masks

public enum MaskGenerator {
    /// `count` words of `Z_2^32`: the AES-256-CTR keystream of `seed` (32 bytes), little-endian.
    /// - Throws: ``FederatedError`` for a seed that is not an AES key (16, 24 or 32 bytes).
    public static func expand(seed: SymmetricKey, count: Int) throws -> [UInt32] {
        let zeros = [UInt8](repeating: 0, count: 4 * count)
        // A 16-byte counter block of zeros: the keystream is AES_k(0), AES_k(1), ...
        let stream: Data
        do {
            let nonce = try AES._CTR.Nonce(nonceBytes: [UInt8](repeating: 0, count: 16))
            stream = try AES._CTR.encrypt(zeros, using: seed, nonce: nonce)
        } catch {
            throw FederatedError(
                "secure aggregation mask: a \(seed.bitCount)-bit seed is not an AES key (\(error)); seeds are 256-bit")
        }
        var out = [UInt32](repeating: 0, count: count)
        stream.withUnsafeBytes { raw in
            for i in 0..<count {
                out[i] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
            }
        }
        return out
    }

    /// The seed two clients share: HKDF-SHA256 of their X25519 secret, salted with the round.
    static func pairwiseSeed(
        _ mine: Curve25519.KeyAgreement.PrivateKey, _ theirs: Curve25519.KeyAgreement.PublicKey, round: UInt64
    ) throws -> SymmetricKey {
        let secret = try mine.sharedSecretFromKeyAgreement(with: theirs)
        return secret.hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: Array("dpkit-secagg round \(round)".utf8),
            sharedInfo: Array("pairwise mask".utf8), outputByteCount: 32)
    }

    static func add(_ a: inout [UInt32], _ b: [UInt32]) { for i in a.indices { a[i] &+= b[i] } }
    static func subtract(_ a: inout [UInt32], _ b: [UInt32]) { for i in a.indices { a[i] &-= b[i] } }
}

// MARK: - Client

/// One client's side of a round: its keys, the shares it received, and the rule that it never
/// reveals both a peer's self-mask share and its key share.
public final class SecureAggregationClient {
    public let index: Int
    let round: UInt64
    let maskKey = Curve25519.KeyAgreement.PrivateKey()
    /// The second key pair: agreement on the keys that seal shares between clients.
    let encryptionKey = Curve25519.KeyAgreement.PrivateKey()
    let selfSeed: [UInt8]
    /// Shares received from each peer: (key share, self-seed share).
    var received: [Int: (key: Shamir.Share, seed: Shamir.Share)] = [:]
    /// What this client has revealed about each peer (so it refuses to reveal the other half).
    var revealed: [Int: Bool] = [:] // true: the peer's seed share, false: its key share

    public init(index: Int, round: UInt64) {
        self.index = index
        self.round = round
        var rng = SystemRandom()
        var seed = [UInt8](repeating: 0, count: 32)
        seed.withUnsafeMutableBytes { rng.fill($0) }
        self.selfSeed = seed
    }

    /// Round 0 (advertise keys).
    public var publicKey: Curve25519.KeyAgreement.PublicKey { maskKey.publicKey }
    /// Round 0, over a network: the key peers seal their shares for this client with.
    public var encryptionPublicKey: Curve25519.KeyAgreement.PublicKey { encryptionKey.publicKey }

    /// The AES-GCM key between `self` and `peer` for shares of this round.
    func shareKey(with peerKey: Curve25519.KeyAgreement.PublicKey) throws -> SymmetricKey {
        let secret = try encryptionKey.sharedSecretFromKeyAgreement(with: peerKey)
        return secret.hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: Array("dpkit-secagg round \(round)".utf8),
            sharedInfo: Array("share encryption".utf8), outputByteCount: 32)
    }

    static func shareAssociatedData(from: Int, to: Int, round: UInt64) -> [UInt8] {
        Array("dpkit-secagg share \(from)->\(to) round \(round)".utf8)
    }

    /// Round 1, over a network: this client's shares for `peer` (key share, then seed share),
    /// sealed with AES-256-GCM so that only `peer` can open them.
    public func sealShare(
        _ share: (key: Shamir.Share, seed: Shamir.Share), to peer: Int,
        peerEncryptionKey: Curve25519.KeyAgreement.PublicKey
    ) throws -> [UInt8] {
        let plain = share.key.bytes + share.seed.bytes
        let box = try AES.GCM.seal(
            plain, using: try shareKey(with: peerEncryptionKey),
            authenticating: Self.shareAssociatedData(from: index, to: peer, round: round))
        guard let combined = box.combined else { throw FederatedError("secure aggregation: sealing a share failed") }
        return Array(combined)
    }

    /// Round 1, over a network: opens and keeps the shares `peer` sealed for this client.
    /// - Throws: ``FederatedError`` when they do not authenticate (tampered with, or not for us).
    public func openShare(
        _ sealed: [UInt8], from peer: Int, peerEncryptionKey: Curve25519.KeyAgreement.PublicKey
    ) throws {
        let plain: Data
        do {
            plain = try AES.GCM.open(
                AES.GCM.SealedBox(combined: sealed), using: try shareKey(with: peerEncryptionKey),
                authenticating: Self.shareAssociatedData(from: peer, to: index, round: round))
        } catch {
            throw FederatedError(
                "secure aggregation: the shares from client \(peer) to client \(index) do not authenticate (\(error)); the round is abandoned"
            )
        }
        var bytes = Array(plain)[...]
        let key = try Shamir.Share(consuming: &bytes)
        let seed = try Shamir.Share(consuming: &bytes)
        receive(from: peer, key: key, seed: seed)
    }

    /// Round 1 (share keys): for each of the `count` clients (by position), a share of the private
    /// key and of the self-mask seed, `threshold` of which reconstruct them.
    public func shares(threshold: Int, count: Int) -> [(key: Shamir.Share, seed: Shamir.Share)] {
        let keyShares = Shamir.split(Array(maskKey.rawRepresentation), threshold: threshold, count: count)
        let seedShares = Shamir.split(selfSeed, threshold: threshold, count: count)
        return Array(zip(keyShares, seedShares))
    }

    public func receive(from peer: Int, key: Shamir.Share, seed: Shamir.Share) { received[peer] = (key, seed) }

    /// Round 2 (masked input): `y = x + PRG(b) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)`
    /// over the peers that shared keys.
    public func maskedInput(_ x: [UInt32], peers: [Int: Curve25519.KeyAgreement.PublicKey]) throws -> [UInt32] {
        var y = x
        MaskGenerator.add(&y, try MaskGenerator.expand(seed: SymmetricKey(data: selfSeed), count: x.count))
        for (v, pk) in peers where v != index {
            let mask = try MaskGenerator.expand(
                seed: try MaskGenerator.pairwiseSeed(maskKey, pk, round: round), count: x.count)
            if v > index { MaskGenerator.add(&y, mask) } else { MaskGenerator.subtract(&y, mask) }
        }
        return y
    }

    /// Round 3 (unmasking): the self-seed shares of the survivors and the key shares of the
    /// dropped. A client asked for both halves of one peer refuses (that would unmask the peer).
    public func unmaskingShares(
        survivors: Set<Int>, dropped: Set<Int>
    ) throws -> (seeds: [Int: Shamir.Share], keys: [Int: Shamir.Share]) {
        guard survivors.isDisjoint(with: dropped) else {
            throw FederatedError(
                "secure aggregation: the server asked for both shares of clients \(survivors.intersection(dropped).sorted()); refused"
            )
        }
        var seeds: [Int: Shamir.Share] = [:], keys: [Int: Shamir.Share] = [:]
        for u in survivors {
            guard let r = received[u], revealed[u] != false else {
                throw FederatedError("secure aggregation: client \(index) refuses the seed share of client \(u)")
            }
            seeds[u] = r.seed
            revealed[u] = true
        }
        for u in dropped {
            guard let r = received[u], revealed[u] != true else {
                throw FederatedError("secure aggregation: client \(index) refuses the key share of client \(u)")
            }
            keys[u] = r.key
            revealed[u] = false
        }
        return (seeds, keys)
    }
}

// MARK: - Server and one simulated round

/// One round of secure aggregation of `Z_2^32` vectors among clients `0..<n`, `threshold` of
/// which must survive to the end.
public struct SecureAggregation: Sendable {
    public let threshold: Int

    /// - Throws: ``FederatedError`` unless `n/2 < threshold <= n` (a majority threshold: fewer
    ///   colluding clients than `threshold` together with the server learn nothing but the sum).
    public init(threshold: Int, clients n: Int) throws {
        guard threshold <= n, 2 * threshold > n else {
            throw FederatedError(
                "secure aggregation threshold \(threshold) for \(n) clients must be in \(n / 2 + 1)...\(n) (more than half)"
            )
        }
        self.threshold = threshold
    }

    /// What the server saw and computed.
    public struct Result {
        /// The masked input of each survivor (all the server ever holds of an individual update).
        public var maskedInputs: [Int: [UInt32]]
        /// The sum of the survivors' inputs, mod 2^32.
        public var sum: [UInt32]
        public var survivors: [Int]
        /// The self-mask seeds the server rebuilt for the survivors (what lets it strip `PRG(b_u)`
        /// from `y_u`; what remains of `y_u` must still look uniform).
        public var selfSeeds: [Int: [UInt8]]
    }

    /// Runs the protocol: every client takes part in key advertising and sharing; those in
    /// `droppedBeforeInput` drop out before sending their masked input. The server unmasks the
    /// sum of the others' inputs.
    /// - Throws: ``FederatedError`` when fewer than `threshold` clients survive (nothing is
    ///   unmasked, and nothing individual can be).
    public func run(inputs: [[UInt32]], droppedBeforeInput: Set<Int> = [], round: UInt64 = 0) throws -> Result {
        let n = inputs.count
        let d = inputs.first?.count ?? 0
        precondition(inputs.allSatisfy { $0.count == d }, "SecureAggregation: inputs of different lengths")
        let clients = (0..<n).map { SecureAggregationClient(index: $0, round: round) }
        // Round 0: public keys to the server, which forwards them.
        var publicKeys: [Int: Curve25519.KeyAgreement.PublicKey] = [:]
        for c in clients { publicKeys[c.index] = c.publicKey }
        // Round 1: shares, relayed by the server (encrypted between clients in a deployment).
        for c in clients {
            for (v, s) in c.shares(threshold: threshold, count: n).enumerated() {
                clients[v].receive(from: c.index, key: s.key, seed: s.seed)
            }
        }
        // Round 2: masked inputs from those still there.
        let survivors = (0..<n).filter { !droppedBeforeInput.contains($0) }
        guard survivors.count >= threshold else {
            throw FederatedError(
                "secure aggregation: only \(survivors.count) of \(n) clients sent their input, below the threshold \(threshold); the round is abandoned and nothing is unmasked"
            )
        }
        var masked: [Int: [UInt32]] = [:]
        for u in survivors { masked[u] = try clients[u].maskedInput(inputs[u], peers: publicKeys) }
        // Round 3: unmasking shares from the survivors.
        let dropped = Set(0..<n).subtracting(survivors)
        var responses: [(seeds: [Int: Shamir.Share], keys: [Int: Shamir.Share])] = []
        for v in survivors {
            responses.append(try clients[v].unmaskingShares(survivors: Set(survivors), dropped: dropped))
        }
        let (sum, seeds) = try Self.unmask(
            masked: masked, dropped: dropped, publicKeys: publicKeys, responses: responses, threshold: threshold,
            dimension: d, round: round)
        return Result(maskedInputs: masked, sum: sum, survivors: survivors, selfSeeds: seeds)
    }

    /// The server's unmasking: sum the masked inputs, remove each survivor's self mask (its
    /// seed rebuilt from `threshold` shares) and each dropped client's pairwise masks with the
    /// survivors (its X25519 key rebuilt from `threshold` shares).
    public static func unmask(
        masked: [Int: [UInt32]], dropped: Set<Int>, publicKeys: [Int: Curve25519.KeyAgreement.PublicKey],
        responses: [(seeds: [Int: Shamir.Share], keys: [Int: Shamir.Share])], threshold: Int, dimension d: Int,
        round: UInt64
    ) throws -> (sum: [UInt32], selfSeeds: [Int: [UInt8]]) {
        guard responses.count >= threshold else {
            throw FederatedError(
                "secure aggregation: \(responses.count) clients answered the unmasking request, below the threshold \(threshold); nothing is unmasked"
            )
        }
        var z = [UInt32](repeating: 0, count: d)
        for (_, y) in masked { MaskGenerator.add(&z, y) }
        var seeds: [Int: [UInt8]] = [:]
        for u in masked.keys {
            let seed = try Shamir.reconstruct(responses.compactMap { $0.seeds[u] }, threshold: threshold)
            seeds[u] = seed
            MaskGenerator.subtract(&z, try MaskGenerator.expand(seed: SymmetricKey(data: seed), count: d))
        }
        for u in dropped {
            let raw = try Shamir.reconstruct(responses.compactMap { $0.keys[u] }, threshold: threshold)
            let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
            for v in masked.keys {
                let mask = try MaskGenerator.expand(
                    seed: try MaskGenerator.pairwiseSeed(key, publicKeys[v]!, round: round), count: d)
                // v added PRG(s_uv) if u > v, subtracted it if u < v.
                if u > v { MaskGenerator.subtract(&z, mask) } else { MaskGenerator.add(&z, mask) }
            }
        }
        return (z, seeds)
    }
}
