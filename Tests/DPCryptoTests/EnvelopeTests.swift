import Foundation
import Testing

@_spi(Testing) @testable import DPCrypto

// MARK: - Round trips

/// Sizes around the chunk boundaries of 64-byte chunks, and of the default 64 KiB chunks up to 3 MB.
let roundTripCases: [(size: Int, log2: UInt8)] = [
    (0, 6), (1, 6), (63, 6), (64, 6), (65, 6), (128, 6), (1000, 6),
    (0, 16), (65_535, 16), (65_536, 16), (65_537, 16), (3_000_017, 16),
]

@Test(arguments: roundTripCases.indices)
func roundTripInMemoryAndThroughFiles(_ i: Int) throws {
    let (size, log2) = roundTripCases[i]
    let plain = pattern(size, seed: UInt64(i + 1))
    let envelope = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)], chunkSizeLog2: log2)
    let chunks = max(1, (size + (1 << log2) - 1) >> Int(log2))
    #expect(envelope.count == (try headerLength(envelope)) + size + 16 * chunks)
    #expect(try Envelope.decrypt(envelope, key: .privateKey(TestKeys.alice)) == plain)

    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    try dir.write(plain, to: "plain")
    try Envelope.encryptFile(
        at: dir.file("plain"), to: dir.file("plain.dpkenc"), recipients: [.publicKey(TestKeys.alice.publicKey)],
        chunkSizeLog2: log2)
    try Envelope.decryptFile(at: dir.file("plain.dpkenc"), to: dir.file("out"), key: .privateKey(TestKeys.alice))
    #expect(dir.read("out") == plain)
    #expect(try Envelope.decryptFile(at: dir.file("plain.dpkenc"), key: .privateKey(TestKeys.alice)) == plain)
    // Decrypted plaintext is private to its owner; no temporary file is left.
    let mode = try FileManager.default.attributesOfItem(atPath: dir.file("out"))[.posixPermissions] as? Int
    #expect(mode == 0o600)
    #expect(dir.names == ["out", "plain", "plain.dpkenc"])
}

@Test func twoEncryptionsOfOneFileDiffer() throws {
    let plain = pattern(100)
    let a = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)])
    let b = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)])
    #expect(a != b)
}

@Test func everyRecipientOpensAMultiRecipientFile() throws {
    let plain = pattern(300)
    let passphrase = try Passphrase(Array("correct horse".utf8))
    var source = MemorySource(plain)
    var sink = MemorySink()
    try Envelope.encrypt(
        from: &source, to: &sink,
        recipients: [
            .publicKey(TestKeys.alice.publicKey), .publicKey(TestKeys.bob.publicKey), .passphrase(passphrase),
        ],
        chunkSizeLog2: 6,
        randomness: EnvelopeRandomness(
            dataKey: pattern(32, seed: 9), nonceBase: pattern(12, seed: 10), scryptSalt: pattern(16, seed: 11),
            scryptCost: ScryptCost(log2N: 10, r: 8, p: 1)))
    let envelope = sink.bytes
    #expect(try Envelope.decrypt(envelope, key: .privateKey(TestKeys.alice)) == plain)
    #expect(try Envelope.decrypt(envelope, key: .privateKey(TestKeys.bob)) == plain)
    #expect(try Envelope.decrypt(envelope, key: .passphrase(passphrase)) == plain)
    let wrong = try Passphrase(Array("correct horse!".utf8))
    #expect(
        cryptoError { _ = try Envelope.decrypt(envelope, key: .passphrase(wrong)) }
            == .wrongPassphrase(path: "<memory>"))
    let info = try EnvelopeInfo.read(fromBytes: envelope)
    #expect(info.recipientKeyIDs == [TestKeys.alice.publicKey.keyID, TestKeys.bob.publicKey.keyID])
    #expect(info.hasPassphrase)
}

// MARK: - Tampering

/// A 5-chunk file of 64-byte chunks (the last one short) for Alice.
func tamperFixture() throws -> (plain: [UInt8], envelope: [UInt8], header: Int) {
    let plain = pattern(4 * 64 + 20, seed: 77)
    let envelope = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)], chunkSizeLog2: 6)
    return (plain, envelope, try headerLength(envelope))
}

@Test func everyByteFlipIsRejected() throws {
    let (_, envelope, header) = try tamperFixture()
    var accepted: [Int] = []
    for i in envelope.indices {
        var bad = envelope
        bad[i] ^= 0x01
        if cryptoError({ _ = try Envelope.decrypt(bad, key: .privateKey(TestKeys.alice)) }) == nil {
            accepted.append(i)
        }
    }
    #expect(accepted.isEmpty, "byte flips at \(accepted) were accepted (header is \(header) bytes)")
}

@Test func truncationAtEveryChunkBoundaryIsRejected() throws {
    let (_, envelope, header) = try tamperFixture()
    let record = 64 + 16
    // After the header, and after each of the four full chunks.
    for chunks in 0...4 {
        let cut = Array(envelope[..<(header + chunks * record)])
        let error = cryptoError { _ = try Envelope.decrypt(cut, key: .privateKey(TestKeys.alice)) }
        #expect(error == .truncated(path: "<memory>", chunks: UInt64(chunks)), "cut after \(chunks) chunks")
    }
    // Inside a chunk, and one byte short.
    for cut in [header + record / 2, header + 2 * record + 1, envelope.count - 1] {
        #expect(
            cryptoError { _ = try Envelope.decrypt(Array(envelope[..<cut]), key: .privateKey(TestKeys.alice)) } != nil)
    }
    // Inside the header.
    for cut in [0, 5, 20, header - 1] {
        #expect(
            cryptoError { _ = try Envelope.decrypt(Array(envelope[..<cut]), key: .privateKey(TestKeys.alice)) } != nil)
    }
}

@Test func extensionIsRejected() throws {
    let (_, envelope, _) = try tamperFixture()
    for extra in [[UInt8](repeating: 0, count: 1), pattern(16), pattern(80)] {
        #expect(cryptoError { _ = try Envelope.decrypt(envelope + extra, key: .privateKey(TestKeys.alice)) } != nil)
    }
    // A file of whole chunks with one more whole chunk appended from another file.
    let whole = try Envelope.encrypt(pattern(128), for: [.publicKey(TestKeys.alice.publicKey)], chunkSizeLog2: 6)
    let h = try headerLength(whole)
    #expect(
        cryptoError { _ = try Envelope.decrypt(whole + whole[h..<(h + 80)], key: .privateKey(TestKeys.alice)) }
            == .trailingData(path: "<memory>", chunks: 2))
}

@Test func reorderedChunksAreRejected() throws {
    let (_, envelope, header) = try tamperFixture()
    let record = 64 + 16
    var swapped = envelope
    swapped.replaceSubrange(
        (header + record)..<(header + 2 * record), with: envelope[(header + 2 * record)..<(header + 3 * record)])
    swapped.replaceSubrange(
        (header + 2 * record)..<(header + 3 * record), with: envelope[(header + record)..<(header + 2 * record)])
    #expect(
        cryptoError { _ = try Envelope.decrypt(swapped, key: .privateKey(TestKeys.alice)) }
            == .chunkAuthenticationFailed(path: "<memory>", index: 1, offset: header + record))
    // A chunk dropped from the middle.
    let dropped = Array(envelope[..<(header + record)] + envelope[(header + 2 * record)...])
    #expect(cryptoError { _ = try Envelope.decrypt(dropped, key: .privateKey(TestKeys.alice)) } != nil)
}

@Test func chunksOfAnotherFileWithTheSameKeyAreRejected() throws {
    // Same data key and nonce base, another header (a second recipient): the header hash differs.
    let plain = pattern(100)
    let r = EnvelopeRandomness(dataKey: pattern(32, seed: 3), nonceBase: pattern(12, seed: 4))
    let one = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)], chunkSizeLog2: 6, randomness: r)
    let two = try Envelope.encrypt(
        plain, for: [.publicKey(TestKeys.alice.publicKey), .publicKey(TestKeys.bob.publicKey)], chunkSizeLog2: 6,
        randomness: r)
    let spliced = Array(two[..<(try headerLength(two))] + one[(try headerLength(one))...])
    #expect(
        cryptoError { _ = try Envelope.decrypt(spliced, key: .privateKey(TestKeys.alice)) }
            == .chunkAuthenticationFailed(path: "<memory>", index: 0, offset: try headerLength(two)))
}

@Test func headerChangesAreRejected() throws {
    let (_, envelope, _) = try tamperFixture()
    func decrypt(_ bytes: [UInt8]) -> CryptoError? {
        cryptoError { _ = try Envelope.decrypt(bytes, key: .privateKey(TestKeys.alice)) }
    }
    var b = envelope
    b[0] = UInt8(ascii: "X")
    #expect(decrypt(b) == .notAnEnvelope(path: "<memory>"))
    b = envelope
    b[8] = 2
    #expect(decrypt(b) == .unsupportedVersion(path: "<memory>", version: 2))
    b = envelope
    b[9] = 7 // another chunk size
    #expect(decrypt(b) != nil)
    b = envelope
    b[9] = 40
    if case .malformedHeader? = decrypt(b) {} else { Issue.record("chunk size 2^40 accepted") }
    b = envelope
    b[15] ^= 0x80 // nonce base
    if case .chunkAuthenticationFailed? = decrypt(b) {
    } else {
        Issue.record("nonce base change: \(String(describing: decrypt(b)))")
    }
    b = envelope
    b[30] ^= 0x80 // key commitment
    if case .keyUnwrapFailed? = decrypt(b) {
    } else {
        Issue.record("commitment change: \(String(describing: decrypt(b)))")
    }
    b = envelope
    b[55] = 2 // entry count: the first chunk is read as an entry
    #expect(decrypt(b) != nil)
    b = envelope
    b[56] = 9 // entry type
    if case .malformedHeader? = decrypt(b) {
    } else {
        Issue.record("entry type change: \(String(describing: decrypt(b)))")
    }
}

// MARK: - Keys and recipients

@Test func wrongKeyAndWrongRecipientAreRejected() throws {
    let plain = pattern(100)
    let forAlice = try Envelope.encrypt(plain, for: [.publicKey(TestKeys.alice.publicKey)])
    #expect(
        cryptoError { _ = try Envelope.decrypt(forAlice, key: .privateKey(TestKeys.bob)) }
            == .notARecipient(
                path: "<memory>", keyID: TestKeys.bob.publicKey.keyID,
                recipientKeyIDs: [TestKeys.alice.publicKey.keyID], hasPassphrase: false))
    let passphrase = try Passphrase(Array("pw".utf8))
    #expect(
        cryptoError { _ = try Envelope.decrypt(forAlice, key: .passphrase(passphrase)) }
            == .noPassphraseEntry(path: "<memory>", recipientKeyIDs: [TestKeys.alice.publicKey.keyID]))
    // An entry that names Bob's key id but holds Alice's wrapped key: Bob's key cannot open it.
    var forged = forAlice
    let idStart = 8 + 1 + 1 + 12 + 32 + 2 + 1 + 2
    forged.replaceSubrange(idStart..<(idStart + 32), with: TestKeys.bob.publicKey.keyIDBytes)
    if case .keyUnwrapFailed? = cryptoError({ _ = try Envelope.decrypt(forged, key: .privateKey(TestKeys.bob)) }) {
    } else {
        Issue.record("a forged key id was not refused as such")
    }
    #expect(cryptoError { _ = try Envelope.encrypt(plain, for: []) } != nil)
}

@Test func failedDecryptionLeavesNoOutputFile() throws {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    let (_, envelope, header) = try tamperFixture()
    var cases: [(String, [UInt8], DecryptionKey)] = []
    var flipped = envelope
    flipped[envelope.count - 3] ^= 1 // the last chunk: four chunks authenticate before it fails
    cases.append(("flip", flipped, .privateKey(TestKeys.alice)))
    cases.append(("truncated", Array(envelope[..<(header + 3 * 80)]), .privateKey(TestKeys.alice)))
    cases.append(("wrong-key", envelope, .privateKey(TestKeys.bob)))
    for (name, bytes, key) in cases {
        try dir.write(bytes, to: name)
        #expect(
            cryptoError { try Envelope.decryptFile(at: dir.file(name), to: dir.file(name + ".out"), key: key) } != nil)
        #expect(!dir.exists(name + ".out"))
    }
    #expect(dir.names == cases.map(\.0).sorted(), "a temporary file was left behind")
    // An existing output is never replaced.
    try dir.write(envelope, to: "good")
    try dir.write([1, 2, 3], to: "taken")
    #expect(
        cryptoError {
            try Envelope.decryptFile(at: dir.file("good"), to: dir.file("taken"), key: .privateKey(TestKeys.alice))
        }
            == .outputExists(path: dir.file("taken")))
    #expect(dir.read("taken") == [1, 2, 3])
    #expect(
        cryptoError { _ = try Envelope.decryptFile(at: dir.file("absent"), key: .privateKey(TestKeys.alice)) } != nil)
}

@Test func plainFileIsNotAnEnvelope() throws {
    #expect(
        cryptoError { _ = try Envelope.decrypt(Array("hello".utf8), key: .privateKey(TestKeys.alice)) }
            == .notAnEnvelope(path: "<memory>"))
    #expect(
        cryptoError { _ = try Envelope.decrypt([], key: .privateKey(TestKeys.alice)) }
            == .notAnEnvelope(path: "<memory>"))
    #expect(!Envelope.isEnvelope(Array("DPKITEN".utf8)))
    #expect(Envelope.isEnvelope(Array("DPKITENV".utf8) + [1]))
}

@Test func streamsWithShortReadsRoundTrip() throws {
    let plain = pattern(5000, seed: 5)
    // A reader that hands out at most 7 bytes at a time.
    func reader(_ data: [UInt8]) -> (UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        return { buffer in
            let n = min(buffer.count, 7, data.count - offset)
            for i in 0..<n { buffer[i] = data[offset + i] }
            offset += n
            return n
        }
    }
    var envelope: [UInt8] = []
    try Envelope.encryptStream(
        read: reader(plain), write: { envelope.append(contentsOf: $0) },
        recipients: [.publicKey(TestKeys.alice.publicKey)], chunkSizeLog2: 8)
    #expect(try Envelope.decrypt(envelope, key: .privateKey(TestKeys.alice)) == plain)
    var out: [UInt8] = []
    try Envelope.decryptStream(
        read: reader(envelope), write: { out.append(contentsOf: $0) }, key: .privateKey(TestKeys.alice))
    #expect(out == plain)
}
