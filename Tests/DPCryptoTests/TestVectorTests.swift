import Crypto
import Foundation
import Testing

@_spi(Testing) @testable import DPCrypto

// The test vectors of docs/encryption.md, made by an independent Python implementation of that
// page (Benchmarks/peers/make_test_vectors.py): DPKit decrypts each envelope, recomputes every
// listed intermediate value, and re-encrypts to the same bytes.

private let document = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("docs/encryption.md")

/// The `# vector N` blocks of the document: field name to value (hex continued on indented lines).
private func vectors() throws -> [Int: [String: String]] {
    let text = try String(contentsOf: document, encoding: .utf8)
    var result: [Int: [String: String]] = [:]
    var current: Int?
    var last: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("# vector "), let n = Int(line.dropFirst(9)) {
            current = n
            result[n] = [:]
            continue
        }
        guard let n = current else { continue }
        if line == "```" {
            current = nil
            continue
        }
        if line.hasPrefix("    "), let key = last {
            result[n]![key]! += line.trimmingCharacters(in: .whitespaces)
        } else if let eq = line.range(of: " = ") {
            let key = String(line[..<eq.lowerBound])
            result[n]![key] = String(line[eq.upperBound...])
            last = key
        }
    }
    return result
}

/// The PEM private key of vector 1.
private func vectorKey() throws -> RecipientPrivateKey {
    let text = try String(contentsOf: document, encoding: .utf8)
    let begin = try #require(text.range(of: "-----BEGIN PRIVATE KEY-----"))
    let end = try #require(text.range(of: "-----END PRIVATE KEY-----"))
    return try RecipientPrivateKey(pem: String(text[begin.lowerBound..<end.upperBound]), path: "docs/encryption.md")
}

private func bytes(_ hex: String?) throws -> [UInt8] {
    let hex = try #require(hex, "missing field")
    if hex == "(empty)" { return [] }
    var out: [UInt8] = []
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        out.append(try #require(UInt8(hex[i..<j], radix: 16)))
        i = j
    }
    return out
}

@Test(arguments: [1, 2, 3])
func documentedTestVector(_ number: Int) throws {
    let v = try #require(try vectors()[number], "docs/encryption.md has no vector \(number)")
    let envelope = try bytes(v["envelope"]), plaintext = try bytes(v["plaintext"])
    let dataKey = try bytes(v["data_key"]), nonceBase = try bytes(v["nonce_base"]), entry = try bytes(v["entry_0"])
    let log2 = try #require(UInt8(v["chunk_size_log2"] ?? ""))
    let key: DecryptionKey
    var recipients: [EncryptionRecipient] = []
    var randomness = EnvelopeRandomness(dataKey: dataKey, nonceBase: nonceBase)
    if number == 1 {
        let k = try vectorKey()
        #expect(k.publicKey.keyIDBytes == (try bytes(v["key_id"])))
        key = .privateKey(k)
        randomness.entries = [entry] // RSA-OAEP is randomised: reuse the documented wrapped key
    } else {
        let p = try Passphrase(Array(try #require(v["passphrase_utf8"]).utf8))
        let cost = ScryptCost(
            log2N: try #require(UInt8(v["scrypt_log2_n"] ?? "")), r: try #require(UInt8(v["scrypt_r"] ?? "")),
            p: try #require(UInt8(v["scrypt_p"] ?? "")))
        let salt = try bytes(v["salt"])
        #expect(
            try Envelope.scryptKey(p, salt: salt, cost: cost).withUnsafeBytes { Array($0) } == (try bytes(v["kek"])))
        key = .passphrase(p)
        recipients = [.passphrase(p)]
        randomness.scryptSalt = salt
        randomness.scryptCost = cost
    }

    // Decryption.
    #expect(try Envelope.decrypt(envelope, key: key) == plaintext)

    // Intermediate values.
    let symmetric = SymmetricKey(data: dataKey)
    #expect(
        Array(HMAC<SHA256>.authenticationCode(for: Envelope.commitmentMessage, using: symmetric))
            == (try bytes(v["key_commitment"])))
    var source = MemorySource(envelope)
    let (header, headerBytes) = try EnvelopeHeader.read(from: &source, path: "vector")
    #expect(header.entries.count == 1 && headerBytes.suffix(entry.count).elementsEqual(entry))
    let headerHash = Array(SHA256.hash(data: headerBytes))
    #expect(headerHash == (try bytes(v["header_sha256"])))
    let cipher = ChunkCipher(key: symmetric, nonceBase: nonceBase, headerHash: headerHash)
    let chunks = max(1, (plaintext.count + (1 << Int(log2)) - 1) >> Int(log2))
    for i in [0, chunks - 1] {
        #expect(try cipher.nonce(UInt64(i)).withUnsafeBytes { Array($0) } == (try bytes(v["nonce_\(i)"])))
        #expect(cipher.aad(UInt64(i), final: i == chunks - 1) == (try bytes(v["aad_\(i)"])))
    }

    // Encryption with the documented randomness gives the documented bytes.
    #expect(try Envelope.encrypt(plaintext, for: recipients, chunkSizeLog2: log2, randomness: randomness) == envelope)
}
