import Crypto
import Foundation
import _CryptoExtras

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - RSA recipients

/// The public half of an RSA key that files are encrypted for (RSA-OAEP-SHA256, 3072 bits or
/// more): a `-----BEGIN PUBLIC KEY-----` PEM file (SubjectPublicKeyInfo, RFC 5280).
public struct RecipientPublicKey: @unchecked Sendable {
    let key: _RSA.Encryption.PublicKey

    /// Hex SHA-256 of the key's SubjectPublicKeyInfo DER: how an envelope names its recipients.
    public let keyID: String
    /// The raw 32 bytes of ``keyID``.
    let keyIDBytes: [UInt8]

    init(_ key: _RSA.Encryption.PublicKey) {
        self.key = key
        keyIDBytes = Array(SHA256.hash(data: key.derRepresentation))
        keyID = hex(keyIDBytes)
    }

    /// The key in `pem`; `path` names it in errors.
    /// - Throws: ``CryptoError/notAKey(path:expected:detail:)``, ``CryptoError/keyTooSmall(path:bits:)``.
    public init(pem: String, path: String = "<memory>") throws {
        self.init(try RSAKeyHalf.publicKey.decode(pem, path: path) as _RSA.Encryption.PublicKey)
    }

    /// Reads a public key file.
    public static func load(_ path: String) throws -> RecipientPublicKey {
        try RecipientPublicKey(pem: KeyFile.readText(path, secret: false), path: path)
    }

    /// Modulus size in bits.
    public var bits: Int { key.keySizeInBits }

    /// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    public var pemText: String { key.pemRepresentation + "\n" }
}

/// An RSA private key that opens files encrypted for its public key: a
/// `-----BEGIN PRIVATE KEY-----` PEM file (PKCS #8), mode 0600.
public struct RecipientPrivateKey: @unchecked Sendable {
    let key: _RSA.Encryption.PrivateKey
    public let publicKey: RecipientPublicKey

    init(_ key: _RSA.Encryption.PrivateKey) {
        self.key = key
        publicKey = RecipientPublicKey(key.publicKey)
    }

    /// A new key of `bits` bits (3072 or more).
    public static func generate(bits: Int = 3072) throws -> RecipientPrivateKey {
        guard bits >= 3072, bits <= 16384, bits % 8 == 0 else {
            throw CryptoError.invalidSetting(
                "RSA key size \(bits): DPKit makes keys of 3072 to 16384 bits, a multiple of 8; use 3072 or 4096")
        }
        return RecipientPrivateKey(try _RSA.Encryption.PrivateKey(keySize: .init(bitCount: bits)))
    }

    /// The key in `pem` (PKCS #8 or PKCS #1); `path` names it in errors.
    public init(pem: String, path: String = "<memory>") throws {
        self.init(try RSAKeyHalf.privateKey.decode(pem, path: path) as _RSA.Encryption.PrivateKey)
    }

    /// Reads a private key file; refuses one its group or others may read.
    public static func load(_ path: String) throws -> RecipientPrivateKey {
        try RecipientPrivateKey(pem: KeyFile.readText(path, secret: true), path: path)
    }

    /// `-----BEGIN PRIVATE KEY-----` (PKCS #8).
    public var pemText: String { key.pkcs8PEMRepresentation + "\n" }
}

/// One half of an RSA key pair as a PEM file: what both halves check before and after
/// BoringSSL parses them, with the words that name a wrong file.
enum RSAKeyHalf {
    case publicKey, privateKey

    var expected: String {
        self == .publicKey ? "an RSA public key (recipient.pem)" : "an RSA private key (recipient.key.pem)"
    }

    /// The PEM labels this half may carry (SubjectPublicKeyInfo or PKCS #1; PKCS #8 or PKCS #1).
    var labels: Set<String> {
        self == .publicKey ? ["PUBLIC KEY", "RSA PUBLIC KEY"] : ["PRIVATE KEY", "RSA PRIVATE KEY"]
    }

    /// Why a PEM block of another label is refused: the other half, or something else.
    func wrongLabel(_ label: String) -> String {
        switch self {
        case .publicKey where label.contains("PRIVATE"): "it is a private key; give the public one"
        case .privateKey where label.contains("PUBLIC"): "it is a public key; decryption needs the private one"
        default: "PEM label \(label)"
        }
    }

    /// The Ed25519 framing of the same half, and how a key in it is named.
    var ed25519: (prefix: [UInt8], detail: String) {
        self == .publicKey
            ? (Ed25519DER.publicPrefix, "it is an Ed25519 signing key (signing.pem)")
            : (Ed25519DER.privatePrefix, "it is an Ed25519 signing key (signing.key.pem), not RSA")
    }

    /// The key in `pem`, parsed by BoringSSL, of 3072 bits or more; `path` names it in errors.
    /// - Throws: ``CryptoError/notAKey(path:expected:detail:)``, ``CryptoError/keyTooSmall(path:bits:)``.
    func decode<Key: RSAPEMKey>(_ pem: String, path: String) throws -> Key {
        let block = try PEM.decode(pem, path: path, expected: expected)
        guard labels.contains(block.label) else {
            throw CryptoError.notAKey(path: path, expected: expected, detail: wrongLabel(block.label))
        }
        if Ed25519DER.key(from: block.der, prefix: ed25519.prefix) != nil {
            throw CryptoError.notAKey(path: path, expected: expected, detail: ed25519.detail)
        }
        let key: Key
        do { key = try Key(unsafePEMRepresentation: pem) } catch {
            throw CryptoError.notAKey(path: path, expected: expected, detail: "not an RSA key, or damaged")
        }
        guard key.keySizeInBits >= 3072 else { throw CryptoError.keyTooSmall(path: path, bits: key.keySizeInBits) }
        return key
    }
}

/// What both halves of an RSA key offer: parsing from PEM and the modulus size.
protocol RSAPEMKey {
    init(unsafePEMRepresentation: String) throws
    var keySizeInBits: Int { get }
}
extension _RSA.Encryption.PublicKey: RSAPEMKey {}
extension _RSA.Encryption.PrivateKey: RSAPEMKey {}

// MARK: - Ed25519 signing keys

/// RFC 8410's fixed DER framing of Ed25519 keys (the 32 key bytes follow).
enum Ed25519DER {
    /// SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (32 bytes) }.
    static let publicPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
    /// OneAsymmetricKey v0: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
    static let privatePrefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    static func key(from der: [UInt8], prefix: [UInt8]) -> [UInt8]? {
        guard der.count == prefix.count + 32, der.starts(with: prefix) else { return nil }
        return Array(der[prefix.count...])
    }
}

/// The public half of an Ed25519 signing key: `-----BEGIN PUBLIC KEY-----` (RFC 8410).
public struct VerificationKey: @unchecked Sendable, Equatable {
    let key: Curve25519.Signing.PublicKey
    /// The raw 32 bytes.
    public let rawBytes: [UInt8]
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    public let keyID: String

    init(_ key: Curve25519.Signing.PublicKey) {
        self.key = key
        rawBytes = Array(key.rawRepresentation)
        keyID = hex(Array(SHA256.hash(data: Ed25519DER.publicPrefix + rawBytes)))
    }

    /// A key from its raw 32 bytes.
    public init(rawBytes: [UInt8]) throws {
        guard rawBytes.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawBytes) else {
            throw CryptoError.invalidSetting("an Ed25519 public key is 32 bytes, got \(rawBytes.count)")
        }
        self.init(key)
    }

    public init(pem: String, path: String = "<memory>") throws {
        let expected = "an Ed25519 public key (signing.pem)"
        let block = try PEM.decode(pem, path: path, expected: expected)
        guard block.label == "PUBLIC KEY", let raw = Ed25519DER.key(from: block.der, prefix: Ed25519DER.publicPrefix)
        else {
            throw CryptoError.notAKey(
                path: path, expected: expected,
                detail: block.label.contains("PRIVATE")
                    ? "it is a private key; verification needs the public one (signing.pem)"
                    : "not an Ed25519 SubjectPublicKeyInfo (an RSA recipient key?)")
        }
        try self.init(rawBytes: raw)
    }

    public static func load(_ path: String) throws -> VerificationKey {
        try VerificationKey(pem: KeyFile.readText(path, secret: false), path: path)
    }

    public var pemText: String { PEM.encode(Ed25519DER.publicPrefix + rawBytes, label: "PUBLIC KEY") }

    /// True when `signature` is this key's Ed25519 signature of `message`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        key.isValidSignature(signature, for: message)
    }

    public static func == (a: VerificationKey, b: VerificationKey) -> Bool { a.rawBytes == b.rawBytes }
}

/// An Ed25519 private key that signs result folders: `-----BEGIN PRIVATE KEY-----` (PKCS #8,
/// RFC 8410), mode 0600.
public struct SigningKey: @unchecked Sendable {
    let key: Curve25519.Signing.PrivateKey
    public let verificationKey: VerificationKey

    init(_ key: Curve25519.Signing.PrivateKey) {
        self.key = key
        verificationKey = VerificationKey(key.publicKey)
    }

    public static func generate() -> SigningKey { SigningKey(Curve25519.Signing.PrivateKey()) }

    public init(pem: String, path: String = "<memory>") throws {
        let expected = "an Ed25519 private key (signing.key.pem)"
        let block = try PEM.decode(pem, path: path, expected: expected)
        guard block.label == "PRIVATE KEY",
            let seed = Ed25519DER.key(from: block.der, prefix: Ed25519DER.privatePrefix),
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else {
            throw CryptoError.notAKey(
                path: path, expected: expected,
                detail: block.label.contains("PUBLIC")
                    ? "it is a public key; signing needs the private one (signing.key.pem)"
                    : "not an Ed25519 PKCS #8 key (an RSA recipient key?)")
        }
        self.init(key)
    }

    /// Reads a private key file; refuses one its group or others may read.
    public static func load(_ path: String) throws -> SigningKey {
        try SigningKey(pem: KeyFile.readText(path, secret: true), path: path)
    }

    public var pemText: String {
        PEM.encode(Ed25519DER.privatePrefix + Array(key.rawRepresentation), label: "PRIVATE KEY")
    }

    /// The Ed25519 signature (RFC 8032, 64 bytes) of `message`.
    public func signature(for message: [UInt8]) throws -> [UInt8] { Array(try key.signature(for: message)) }
}

// MARK: - Passphrases

/// A passphrase that an envelope's data key is wrapped for through scrypt.
public struct Passphrase: Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else {
            throw CryptoError.invalidSetting("the passphrase is empty; put the passphrase in the file")
        }
        self.bytes = bytes
    }

    /// The first line of a passphrase file (mode 0600), without its line ending.
    public static func load(_ path: String) throws -> Passphrase {
        let text = try KeyFile.readText(path, secret: true)
        if text.contains("-----BEGIN ") {
            throw CryptoError.invalidSetting(
                "\(path): a PEM key file, not a passphrase file; give the key with --recipient or --key, or a file whose first line is the passphrase"
            )
        }
        var bytes = Array(text.utf8)
        if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) { bytes.removeSubrange(newline...) }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.isEmpty else {
            throw CryptoError.invalidSetting(
                "\(path): the passphrase file is empty; put the passphrase on its first line")
        }
        return try Passphrase(bytes)
    }
}

// MARK: - Key files

/// Reading and writing key files: secrets are refused when their group or others may read
/// them, and written with mode 0600.
public enum KeyFile {
    /// The text of a key file. `secret`: refuse it if any permission bit for group or others is set.
    public static func readText(_ path: String, secret: Bool) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw CryptoError.keyFileMissing(path: path) }
            throw CryptoError.io(path: path, action: "read the key file", reason: posixReason(errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CryptoError.io(path: path, action: "read the key file", reason: "not a regular file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CryptoError.io(path: path, action: "read the key file", reason: "permission denied")
        }
        guard data.count < 1 << 20, let text = String(data: data, encoding: .utf8) else {
            throw CryptoError.notAKey(path: path, expected: "a PEM key file", detail: "not PEM text")
        }
        // A public key given where a private one belongs is named as such by the caller, not
        // refused for its (rightly) open mode.
        if secret, UInt32(st.st_mode) & 0o077 != 0, !text.contains("PUBLIC KEY-----") {
            throw CryptoError.keyFileTooOpen(path: path, mode: UInt32(st.st_mode))
        }
        return text
    }

    /// Writes a new file (never replaces one): mode 0600 when `secret`, else 0644.
    public static func create(_ path: String, text: String, secret: Bool) throws {
        let mode: mode_t = secret ? 0o600 : 0o644
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 {
            if errno == EEXIST { throw CryptoError.keyFileExists(path: path) }
            throw CryptoError.io(path: path, action: "create", reason: posixReason(errno))
        }
        defer { close(fd) }
        // The umask may only have removed bits; set the mode exactly.
        fchmod(fd, mode)
        try writeAll(fd, Array(text.utf8), path: path)
        guard fsync(fd) == 0 else { throw CryptoError.io(path: path, action: "write", reason: posixReason(errno)) }
    }
}

// MARK: - PEM

/// PEM text (RFC 7468): a base64 DER block between BEGIN and END lines.
enum PEM {
    static func encode(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines = ["-----BEGIN \(label)-----"]
        var rest = Substring(base64)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(64)))
            rest = rest.dropFirst(64)
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The first PEM block of `text`.
    static func decode(_ text: String, path: String, expected: String) throws -> (label: String, der: [UInt8]) {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("-----") }) else {
            throw CryptoError.notAKey(path: path, expected: expected, detail: "no -----BEGIN line")
        }
        let label = String(lines[begin].dropFirst(11).dropLast(5))
        guard let end = lines[begin...].firstIndex(of: "-----END \(label)-----") else {
            throw CryptoError.notAKey(path: path, expected: expected, detail: "no -----END \(label)----- line")
        }
        guard let der = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else {
            throw CryptoError.notAKey(path: path, expected: expected, detail: "the base64 text is damaged")
        }
        return (label, Array(der))
    }
}

// MARK: - Helpers

/// Lowercase hexadecimal.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The C library's words for an errno.
func posixReason(_ code: Int32) -> String { String(cString: strerror(code)).lowercased() }

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw CryptoError.io(path: path, action: "write", reason: posixReason(errno))
        }
        done += n
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
    try bytes.withUnsafeBytes { try writeAll(fd, $0, path: path) }
}
