import Crypto
import Foundation
import _CryptoExtras

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Recipients and keys

/// Who an envelope is encrypted for.
public enum EncryptionRecipient: Sendable {
    /// The holder of the private key of an RSA public key (RSA-OAEP-SHA256).
    case publicKey(RecipientPublicKey)
    /// Anyone who knows the passphrase (scrypt, N = 2^17, r = 8, p = 1).
    case passphrase(Passphrase)
}

/// What opens an envelope.
public enum DecryptionKey: Sendable {
    case privateKey(RecipientPrivateKey)
    case passphrase(Passphrase)

    /// The RSA private key file, or passphrase file, at `path`: a PEM private key is read as
    /// such, anything else as a passphrase file. Both must have mode 0600.
    public static func load(_ path: String) throws -> DecryptionKey {
        let text = try KeyFile.readText(path, secret: true)
        if text.contains("-----BEGIN ") { return .privateKey(try RecipientPrivateKey(pem: text, path: path)) }
        return .passphrase(try Passphrase.load(path))
    }
}

/// Randomness of one envelope, injected by tests to reproduce the documented test vectors.
@_spi(Testing)
public struct EnvelopeRandomness {
    public var dataKey: [UInt8]
    public var nonceBase: [UInt8]
    /// The recipient entries to write as they are (their wrapped keys come from the vectors).
    public var entries: [[UInt8]]?
    public var scryptSalt: [UInt8]?
    public var scryptCost: ScryptCost?

    public init(
        dataKey: [UInt8], nonceBase: [UInt8], entries: [[UInt8]]? = nil, scryptSalt: [UInt8]? = nil,
        scryptCost: ScryptCost? = nil
    ) {
        self.dataKey = dataKey
        self.nonceBase = nonceBase
        self.entries = entries
        self.scryptSalt = scryptSalt
        self.scryptCost = scryptCost
    }
}

// MARK: - Chunks

/// AES-256-GCM over the chunks of one envelope.
struct ChunkCipher {
    let key: SymmetricKey
    let nonceBase: [UInt8]
    let headerHash: [UInt8]

    /// nonce_base XOR (0^32 | u64 index).
    func nonce(_ index: UInt64) throws -> AES.GCM.Nonce {
        var n = nonceBase
        for i in 0..<8 { n[4 + i] ^= UInt8(truncatingIfNeeded: index >> (8 * UInt64(7 - i))) }
        return try AES.GCM.Nonce(data: n)
    }

    /// SHA-256(header) | u64 index | final flag.
    func aad(_ index: UInt64, final: Bool) -> [UInt8] {
        var a = headerHash
        appendBigEndian(index, bytes: 8, to: &a)
        a.append(final ? 1 : 0)
        return a
    }

    func seal(_ plaintext: UnsafeRawBufferPointer, index: UInt64, final: Bool, into sink: inout some ByteSink) throws {
        let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce(index), authenticating: aad(index, final: final))
        // nonce || ciphertext || tag: the stored chunk is all but the nonce, written at once.
        try sink.write(box.combined!.dropFirst(Envelope.nonceBytes))
    }

    /// The plaintext of a stored chunk (ciphertext then tag), or nil when it does not authenticate.
    func open(_ chunk: UnsafeRawBufferPointer, index: UInt64, final: Bool) -> Data? {
        guard chunk.count >= Envelope.tagBytes, let nonce = try? nonce(index) else { return nil }
        let split = chunk.count - Envelope.tagBytes
        guard
            let box = try? AES.GCM.SealedBox(
                nonce: nonce, ciphertext: UnsafeRawBufferPointer(rebasing: chunk[..<split]),
                tag: UnsafeRawBufferPointer(rebasing: chunk[split...]))
        else { return nil }
        return try? AES.GCM.open(box, using: key, authenticating: aad(index, final: final))
    }
}

// MARK: - Encryption

extension Envelope {
    /// Encrypts everything `source` holds into `sink`, in constant memory (two chunks).
    static func encrypt(
        from source: inout some ByteSource, to sink: inout some ByteSink, recipients: [EncryptionRecipient],
        chunkSizeLog2: UInt8 = defaultChunkSizeLog2, randomness: EnvelopeRandomness? = nil
    ) throws {
        guard !recipients.isEmpty || randomness?.entries != nil else {
            throw CryptoError.invalidSetting("no recipient: give at least one --recipient public key or a passphrase")
        }
        guard chunkSizeLog2Range.contains(chunkSizeLog2) else {
            throw CryptoError.invalidSetting("chunk size 2^\(chunkSizeLog2) is outside 2^6 ... 2^24")
        }
        let dataKeyBytes = randomness?.dataKey ?? randomBytes(keyBytes)
        let dataKey = SymmetricKey(data: dataKeyBytes)
        let nonceBase = randomness?.nonceBase ?? randomBytes(nonceBytes)
        var entries: [RecipientEntry] = []
        if let fixed = randomness?.entries {
            var all: [UInt8] = []
            appendBigEndian(UInt64(fixed.count), bytes: 2, to: &all)
            for e in fixed { all += e }
            var s = MemorySource(magic + [version, chunkSizeLog2] + nonceBase + [UInt8](repeating: 0, count: 32) + all)
            entries = try EnvelopeHeader.read(from: &s, path: "<test vector>").0.entries
        } else {
            for recipient in recipients {
                entries.append(try wrap(dataKeyBytes, for: recipient, randomness: randomness))
            }
        }
        let header = EnvelopeHeader(
            chunkSizeLog2: chunkSizeLog2, nonceBase: nonceBase,
            keyCommitment: Array(HMAC<SHA256>.authenticationCode(for: commitmentMessage, using: dataKey)),
            entries: entries)
        let headerBytes = header.encoded()
        try sink.write(headerBytes)
        let cipher = ChunkCipher(key: dataKey, nonceBase: nonceBase, headerHash: Array(SHA256.hash(data: headerBytes)))

        let size = header.chunkSize
        var current = [UInt8](repeating: 0, count: size), next = [UInt8](repeating: 0, count: size)
        var count = try current.withUnsafeMutableBytes { try source.read(into: $0) }
        var index: UInt64 = 0
        while true {
            var nextCount = 0
            if count == size { nextCount = try next.withUnsafeMutableBytes { try source.read(into: $0) } }
            let final = nextCount == 0
            try current.withUnsafeBytes { p in
                try cipher.seal(UnsafeRawBufferPointer(rebasing: p[..<count]), index: index, final: final, into: &sink)
            }
            if final { break }
            swap(&current, &next)
            count = nextCount
            index += 1
        }
    }

    /// The recipient entry of `recipient` for `dataKey`.
    static func wrap(
        _ dataKey: [UInt8], for recipient: EncryptionRecipient, randomness: EnvelopeRandomness?
    ) throws -> RecipientEntry {
        switch recipient {
        case .publicKey(let k):
            let wrapped = try k.key.encrypt(dataKey, padding: .PKCS1_OAEP_SHA256)
            return .rsa(keyID: k.keyIDBytes, wrapped: Array(wrapped))
        case .passphrase(let p):
            let cost = randomness?.scryptCost ?? scryptCost
            let salt = randomness?.scryptSalt ?? randomBytes(saltBytes)
            let kek = try scryptKey(p, salt: salt, cost: cost)
            let box = try AES.GCM.seal(
                dataKey, using: kek, nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: nonceBytes)),
                authenticating: scryptWrapAAD)
            return .scrypt(cost: cost, salt: salt, wrapped: Array(box.ciphertext) + Array(box.tag))
        }
    }

    static func scryptKey(_ passphrase: Passphrase, salt: [UInt8], cost: ScryptCost) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(
            from: passphrase.bytes, salt: salt, outputByteCount: keyBytes, rounds: 1 << Int(cost.log2N),
            blockSize: Int(cost.r), parallelism: Int(cost.p), maxMemory: cost.memoryBytes + (1 << 20))
    }

    static func randomBytes(_ n: Int) -> [UInt8] {
        // SymmetricKey(size:) draws from BoringSSL's CSPRNG (the kernel's getrandom).
        SymmetricKey(size: .init(bitCount: 8 * n)).withUnsafeBytes { Array($0) }
    }
}

// MARK: - Decryption

extension Envelope {
    /// Decrypts `source` into `sink`, chunk by chunk in constant memory; a chunk reaches the
    /// sink only after it authenticated. A failure can leave earlier authenticated chunks in the
    /// sink: callers that write files discard them (``decryptFile(at:to:key:)``).
    static func decrypt(
        from source: inout some ByteSource, to sink: inout some ByteSink, key: DecryptionKey, path: String
    ) throws {
        let (header, headerBytes) = try EnvelopeHeader.read(from: &source, path: path)
        let dataKey = try unwrap(header, key: key, path: path)
        let cipher = ChunkCipher(
            key: dataKey, nonceBase: header.nonceBase, headerHash: Array(SHA256.hash(data: headerBytes)))
        let record = header.chunkSize + tagBytes
        var current = [UInt8](repeating: 0, count: record), next = [UInt8](repeating: 0, count: record)
        var count = try current.withUnsafeMutableBytes { try source.read(into: $0) }
        if count == 0 { throw CryptoError.truncated(path: path, chunks: 0) }
        var index: UInt64 = 0
        var offset = headerBytes.count
        while true {
            var nextCount = 0
            if count == record { nextCount = try next.withUnsafeMutableBytes { try source.read(into: $0) } }
            let final = nextCount == 0
            let plain: Data? = current.withUnsafeBytes { p in
                cipher.open(UnsafeRawBufferPointer(rebasing: p[..<count]), index: index, final: final)
            }
            guard let plain else {
                // Name the likely cause: a whole chunk that authenticates with the other flag.
                let other = current.withUnsafeBytes { p in
                    cipher.open(UnsafeRawBufferPointer(rebasing: p[..<count]), index: index, final: !final)
                }
                if other != nil {
                    throw final
                        ? CryptoError.truncated(path: path, chunks: index + 1)
                        : CryptoError.trailingData(path: path, chunks: index + 1)
                }
                throw CryptoError.chunkAuthenticationFailed(path: path, index: index, offset: offset)
            }
            try sink.write(plain)
            if final { break }
            swap(&current, &next)
            offset += count
            count = nextCount
            index += 1
        }
    }

    /// The data key, from the entry `key` opens; checked against the key commitment.
    static func unwrap(_ header: EnvelopeHeader, key: DecryptionKey, path: String) throws -> SymmetricKey {
        var dataKey: [UInt8]?
        switch key {
        case .privateKey(let k):
            let id = k.publicKey.keyIDBytes
            guard
                let wrapped = header.entries.lazy.compactMap({ e -> [UInt8]? in
                    if case .rsa(let keyID, let w) = e, keyID == id { return w } else { return nil }
                }).first
            else {
                throw CryptoError.notARecipient(
                    path: path, keyID: k.publicKey.keyID, recipientKeyIDs: header.rsaKeyIDs,
                    hasPassphrase: header.hasPassphrase)
            }
            guard let opened = try? k.key.decrypt(wrapped, padding: .PKCS1_OAEP_SHA256), opened.count == keyBytes else {
                throw CryptoError.keyUnwrapFailed(path: path, detail: "the RSA entry for this key does not decrypt")
            }
            dataKey = Array(opened)
        case .passphrase(let p):
            let scryptEntries = header.entries.compactMap { e -> (ScryptCost, [UInt8], [UInt8])? in
                if case .scrypt(let c, let s, let w) = e { return (c, s, w) } else { return nil }
            }
            guard !scryptEntries.isEmpty else {
                throw CryptoError.noPassphraseEntry(path: path, recipientKeyIDs: header.rsaKeyIDs)
            }
            for (cost, salt, wrapped) in scryptEntries {
                let kek = try scryptKey(p, salt: salt, cost: cost)
                guard
                    let box = try? AES.GCM.SealedBox(
                        nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: nonceBytes)),
                        ciphertext: wrapped[0..<keyBytes], tag: wrapped[keyBytes...]),
                    let opened = try? AES.GCM.open(box, using: kek, authenticating: scryptWrapAAD)
                else { continue }
                dataKey = Array(opened)
                break
            }
            guard dataKey != nil else { throw CryptoError.wrongPassphrase(path: path) }
        }
        let symmetric = SymmetricKey(data: dataKey!)
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                header.keyCommitment, authenticating: commitmentMessage, using: symmetric)
        else {
            throw CryptoError.keyUnwrapFailed(path: path, detail: "the recovered key does not match the key commitment")
        }
        return symmetric
    }
}

// MARK: - Files and memory

extension Envelope {
    /// Encrypts the file at `input` into a new file `output` (mode 0644), written whole or not
    /// at all. Memory stays at two chunks whatever the file's size.
    /// - Throws: ``CryptoError/outputExists(path:)`` (never overwrites), I/O errors naming the file.
    public static func encryptFile(
        at input: String, to output: String, recipients: [EncryptionRecipient],
        chunkSizeLog2: UInt8 = defaultChunkSizeLog2
    ) throws {
        try streamFile(at: input, to: output, mode: 0o644) { source, sink in
            try encrypt(from: &source, to: &sink, recipients: recipients, chunkSizeLog2: chunkSizeLog2)
        }
    }

    /// Decrypts the envelope at `input` into a new file `output` (mode 0600) through a
    /// temporary file that is renamed only when every chunk authenticated; on any failure
    /// nothing is left at `output` and the temporary file is removed.
    public static func decryptFile(at input: String, to output: String, key: DecryptionKey) throws {
        try streamFile(at: input, to: output, mode: 0o600) { source, sink in
            try decrypt(from: &source, to: &sink, key: key, path: input)
        }
    }

    /// Streams the file at `input` through `transform` into a new file `output` of `mode`,
    /// written whole or not at all: the temporary file is removed on any failure.
    private static func streamFile(
        at input: String, to output: String, mode: mode_t,
        _ transform: (inout FileSource, inout FileSink) throws -> Void
    ) throws {
        let fd = try openForReading(input)
        defer { close(fd) }
        var source = FileSource(fd: fd, path: input)
        let out = try AtomicOutput(path: output, mode: mode)
        do {
            var sink = out.sink
            try transform(&source, &sink)
            try out.commit()
        } catch {
            out.discard()
            throw error
        }
    }

    /// The plaintext of the envelope at `path`, in memory (nothing is written to disk).
    public static func decryptFile(at path: String, key: DecryptionKey) throws -> [UInt8] {
        let fd = try openForReading(path)
        defer { close(fd) }
        var source = FileSource(fd: fd, path: path)
        var sink = MemorySink()
        sink.bytes.reserveCapacity(regularFileSize(fd) ?? 0)
        try decrypt(from: &source, to: &sink, key: key, path: path)
        return sink.bytes
    }

    /// `plaintext` as an envelope.
    public static func encrypt(
        _ plaintext: [UInt8], for recipients: [EncryptionRecipient], chunkSizeLog2: UInt8 = defaultChunkSizeLog2
    ) throws -> [UInt8] {
        var source = MemorySource(plaintext)
        var sink = MemorySink()
        sink.bytes.reserveCapacity(plaintext.count + plaintext.count >> 10 + 4096)
        try encrypt(from: &source, to: &sink, recipients: recipients, chunkSizeLog2: chunkSizeLog2)
        return sink.bytes
    }

    /// The plaintext of an envelope in memory; `path` names it in errors.
    public static func decrypt(_ envelope: [UInt8], key: DecryptionKey, path: String = "<memory>") throws -> [UInt8] {
        var source = MemorySource(envelope)
        var sink = MemorySink()
        sink.bytes.reserveCapacity(envelope.count)
        try decrypt(from: &source, to: &sink, key: key, path: path)
        return sink.bytes
    }

    /// Encrypts a stream: `read` fills the buffer it is given and returns the byte count (0 at
    /// the end); `write` receives the envelope's bytes in order. Two chunks of memory.
    public static func encryptStream(
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int,
        write: @escaping (UnsafeRawBufferPointer) throws -> Void,
        recipients: [EncryptionRecipient], chunkSizeLog2: UInt8 = defaultChunkSizeLog2
    ) throws {
        var source = ClosureSource(body: read)
        var sink = ClosureSink(body: write)
        try encrypt(from: &source, to: &sink, recipients: recipients, chunkSizeLog2: chunkSizeLog2)
    }

    /// Decrypts a stream: `write` receives each chunk's plaintext once it authenticated. The
    /// plaintext is valid only when this returns without throwing (a later chunk may fail), so
    /// `write` must not publish it before then. `path` names the stream in errors.
    public static func decryptStream(
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int,
        write: @escaping (UnsafeRawBufferPointer) throws -> Void,
        key: DecryptionKey, path: String = "<stream>"
    ) throws {
        var source = ClosureSource(body: read)
        var sink = ClosureSink(body: write)
        try decrypt(from: &source, to: &sink, key: key, path: path)
    }

    /// As ``encrypt(_:for:chunkSizeLog2:)`` with the data key, nonce base and entries given:
    /// reproduces the test vectors of docs/encryption.md byte for byte.
    @_spi(Testing)
    public static func encrypt(
        _ plaintext: [UInt8], for recipients: [EncryptionRecipient], chunkSizeLog2: UInt8,
        randomness: EnvelopeRandomness
    ) throws -> [UInt8] {
        var source = MemorySource(plaintext)
        var sink = MemorySink()
        try encrypt(
            from: &source, to: &sink, recipients: recipients, chunkSizeLog2: chunkSizeLog2, randomness: randomness)
        return sink.bytes
    }
}

// MARK: - Inspection

/// What the header of an envelope says, without decrypting it (`dpkit decrypt --info`).
public struct EnvelopeInfo: Sendable, Equatable {
    public var chunkSize: Int
    /// Hex key ids of the RSA recipients.
    public var recipientKeyIDs: [String]
    public var hasPassphrase: Bool
    public var headerBytes: Int

    public static func read(_ path: String) throws -> EnvelopeInfo {
        let fd = try openForReading(path)
        defer { close(fd) }
        var source = FileSource(fd: fd, path: path)
        return try read(from: &source, path: path)
    }

    /// The header of an envelope in memory.
    public static func read(fromBytes envelope: [UInt8], path: String = "<memory>") throws -> EnvelopeInfo {
        var source = MemorySource(envelope)
        return try read(from: &source, path: path)
    }

    static func read(from source: inout some ByteSource, path: String) throws -> EnvelopeInfo {
        let (header, bytes) = try EnvelopeHeader.read(from: &source, path: path)
        return EnvelopeInfo(
            chunkSize: header.chunkSize, recipientKeyIDs: header.rsaKeyIDs, hasPassphrase: header.hasPassphrase,
            headerBytes: bytes.count)
    }
}
