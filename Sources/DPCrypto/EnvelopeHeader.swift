import Crypto
import Foundation

// MARK: - Format

/// The DPKit envelope, version 1: any file encrypted under a random 256-bit data key with
/// AES-256-GCM in chunks, the data key wrapped for each recipient. docs/encryption.md is the
/// specification; this type holds its constants.
///
/// ```
/// header  = magic "DPKITENV" | version 0x01 | chunk_size_log2 | nonce_base (12)
///         | key_commitment (32) | entry_count (u16) | entries
/// entry   = type (u8) | length (u16) | body
///           type 1, RSA-OAEP-SHA256: key_id (32, SHA-256 of the recipient's SPKI DER) | wrapped key
///           type 2, scrypt:          log2_n | r | p | salt (16) | AES-256-GCM(KEK, 0^96, data key) (48)
/// chunk i = AES-256-GCM(data key, nonce_base XOR (0^32 | u64 i), P_i,
///                       aad = SHA-256(header) | u64 i | final flag) = C_i | tag (16)
/// ```
/// Every chunk but the last holds exactly `2^chunk_size_log2` plaintext bytes; the last holds
/// 0 to that many and has the final flag 1. Integers are big-endian.
public enum Envelope {
    /// The first 8 bytes of every envelope: ASCII `DPKITENV`.
    public static let magic: [UInt8] = Array("DPKITENV".utf8)
    public static let version: UInt8 = 1
    /// The name DPKit gives encrypted files: `<name>.dpkenc`.
    public static let fileExtension = "dpkenc"
    /// 64 KiB chunks.
    public static let defaultChunkSizeLog2: UInt8 = 16
    /// Chunk sizes a file may declare: 64 bytes to 16 MiB.
    public static let chunkSizeLog2Range: ClosedRange<UInt8> = 6...24
    static let keyBytes = 32, nonceBytes = 12, tagBytes = 16, saltBytes = 16
    /// HMAC-SHA256 message of the key commitment.
    static let commitmentMessage = Array("DPKit envelope v1 key commitment".utf8)
    /// Associated data of the scrypt entry's key wrap.
    static let scryptWrapAAD = Array("DPKit envelope v1 scrypt".utf8)
    /// scrypt cost of new passphrase entries: N = 2^17, r = 8, p = 1 (128 MiB, OWASP's setting).
    public static let scryptCost = ScryptCost(log2N: 17, r: 8, p: 1)

    /// True when `bytes` starts with the envelope magic.
    public static func isEnvelope(_ bytes: some Collection<UInt8>) -> Bool { bytes.starts(with: magic) }

    /// True when the file at `path` starts with the envelope magic (false when it cannot be read).
    public static func isEnvelope(path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return isEnvelope(Array((try? handle.read(upToCount: magic.count)) ?? Data()))
    }
}

/// scrypt parameters (RFC 7914) of a passphrase entry.
public struct ScryptCost: Hashable, Sendable {
    public var log2N: UInt8
    public var r: UInt8
    public var p: UInt8

    public init(log2N: UInt8, r: UInt8, p: UInt8) {
        self.log2N = log2N
        self.r = r
        self.p = p
    }

    /// Bytes of memory scrypt needs: 128 r N (plus 128 r p).
    var memoryBytes: Int { 128 * Int(r) * ((1 << Int(log2N)) + Int(p)) }

    /// What a reader accepts: 1 <= log2 N <= 20, 1 <= r <= 32, 1 <= p <= 16, at most 1 GiB.
    var isAcceptable: Bool {
        (1...20).contains(log2N) && (1...32).contains(r) && (1...16).contains(p) && memoryBytes <= 1 << 30
    }
}

// MARK: - Header

/// One recipient of an envelope: how its data key is wrapped.
enum RecipientEntry: Equatable {
    /// RSA-OAEP with SHA-256 (and MGF1-SHA-256, empty label) of the 32-byte data key.
    case rsa(keyID: [UInt8], wrapped: [UInt8])
    /// AES-256-GCM of the data key under the scrypt key of a passphrase.
    case scrypt(cost: ScryptCost, salt: [UInt8], wrapped: [UInt8])

    static let rsaType: UInt8 = 1, scryptType: UInt8 = 2

    var body: [UInt8] {
        switch self {
        case .rsa(let keyID, let wrapped): return keyID + wrapped
        case .scrypt(let cost, let salt, let wrapped): return [cost.log2N, cost.r, cost.p] + salt + wrapped
        }
    }

    var type: UInt8 {
        if case .rsa = self { return Self.rsaType }
        return Self.scryptType
    }
}

/// The parsed header of an envelope.
struct EnvelopeHeader: Equatable {
    var chunkSizeLog2: UInt8
    var nonceBase: [UInt8]
    var keyCommitment: [UInt8]
    var entries: [RecipientEntry]

    var chunkSize: Int { 1 << Int(chunkSizeLog2) }

    /// The header's bytes, as written and as hashed into every chunk's associated data.
    func encoded() -> [UInt8] {
        var out = Envelope.magic
        out.append(Envelope.version)
        out.append(chunkSizeLog2)
        out += nonceBase
        out += keyCommitment
        appendBigEndian(UInt64(entries.count), bytes: 2, to: &out)
        for entry in entries {
            let body = entry.body
            out.append(entry.type)
            appendBigEndian(UInt64(body.count), bytes: 2, to: &out)
            out += body
        }
        return out
    }

    /// Reads a header from `source`; returns it and its bytes.
    static func read(from source: inout some ByteSource, path: String) throws -> (EnvelopeHeader, [UInt8]) {
        var raw: [UInt8] = []
        func take(_ n: Int, _ what: String) throws -> [UInt8] {
            let bytes = try source.read(count: n)
            raw += bytes
            guard bytes.count == n else {
                if raw.count < Envelope.magic.count || !Envelope.isEnvelope(raw) {
                    throw CryptoError.notAnEnvelope(path: path)
                }
                throw CryptoError.malformedHeader(path: path, detail: "the file ends inside the header, in \(what)")
            }
            return bytes
        }
        guard try take(8, "the magic") == Envelope.magic else { throw CryptoError.notAnEnvelope(path: path) }
        let version = try take(1, "the version")[0]
        guard version == Envelope.version else { throw CryptoError.unsupportedVersion(path: path, version: version) }
        let log2 = try take(1, "the chunk size")[0]
        guard Envelope.chunkSizeLog2Range.contains(log2) else {
            throw CryptoError.malformedHeader(
                path: path, detail: "chunk size 2^\(log2) is outside 2^6 ... 2^24")
        }
        let nonceBase = try take(Envelope.nonceBytes, "the nonce base")
        let commitment = try take(32, "the key commitment")
        let count = Int(bigEndian(try take(2, "the entry count")))
        guard count >= 1 else { throw CryptoError.malformedHeader(path: path, detail: "no recipient entry") }
        var entries: [RecipientEntry] = []
        for i in 0..<count {
            let type = try take(1, "entry \(i)")[0]
            let length = Int(bigEndian(try take(2, "entry \(i)")))
            let body = try take(length, "entry \(i)")
            switch type {
            case RecipientEntry.rsaType:
                guard length >= 32 + 384 else {
                    throw CryptoError.malformedHeader(
                        path: path, detail: "RSA entry \(i) has \(length) bytes, fewer than a 3072-bit key needs")
                }
                entries.append(.rsa(keyID: Array(body[0..<32]), wrapped: Array(body[32...])))
            case RecipientEntry.scryptType:
                guard length == 3 + Envelope.saltBytes + Envelope.keyBytes + Envelope.tagBytes else {
                    throw CryptoError.malformedHeader(
                        path: path, detail: "scrypt entry \(i) has \(length) bytes, not 67")
                }
                let cost = ScryptCost(log2N: body[0], r: body[1], p: body[2])
                guard cost.isAcceptable else {
                    throw CryptoError.malformedHeader(
                        path: path,
                        detail:
                            "scrypt entry \(i) asks for log2 N = \(cost.log2N), r = \(cost.r), p = \(cost.p), beyond the limits"
                    )
                }
                entries.append(.scrypt(cost: cost, salt: Array(body[3..<19]), wrapped: Array(body[19...])))
            default:
                throw CryptoError.malformedHeader(path: path, detail: "entry \(i) has unknown type \(type)")
            }
        }
        let header = EnvelopeHeader(
            chunkSizeLog2: log2, nonceBase: nonceBase, keyCommitment: commitment, entries: entries)
        return (header, raw)
    }

    /// Hex key ids of the RSA entries.
    var rsaKeyIDs: [String] {
        entries.compactMap { if case .rsa(let id, _) = $0 { return hex(id) } else { return nil } }
    }

    var hasPassphrase: Bool { entries.contains { if case .scrypt = $0 { return true } else { return false } } }
}

// MARK: - Big-endian integers

func appendBigEndian(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
    for i in stride(from: bytes - 1, through: 0, by: -1) {
        out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))))
    }
}

func bigEndian(_ bytes: [UInt8]) -> UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }
