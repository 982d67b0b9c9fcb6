import Foundation
import Testing

@_spi(Testing) @testable import DPCrypto

// MARK: - Key files

@Test func keyFilesRoundTripWithTheirModes() throws {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    try KeyFile.create(dir.file("recipient.key.pem"), text: TestKeys.alice.pemText, secret: true)
    try KeyFile.create(dir.file("recipient.pem"), text: TestKeys.alice.publicKey.pemText, secret: false)
    try KeyFile.create(dir.file("signing.key.pem"), text: TestKeys.signer.pemText, secret: true)
    try KeyFile.create(dir.file("signing.pem"), text: TestKeys.signer.verificationKey.pemText, secret: false)
    func mode(_ name: String) throws -> Int? {
        try FileManager.default.attributesOfItem(atPath: dir.file(name))[.posixPermissions] as? Int
    }
    #expect(try mode("recipient.key.pem") == 0o600)
    #expect(try mode("signing.key.pem") == 0o600)
    #expect(try mode("recipient.pem") == 0o644)

    #expect(
        try RecipientPrivateKey.load(dir.file("recipient.key.pem")).publicKey.keyID == TestKeys.alice.publicKey.keyID)
    #expect(try RecipientPublicKey.load(dir.file("recipient.pem")).keyID == TestKeys.alice.publicKey.keyID)
    #expect(try SigningKey.load(dir.file("signing.key.pem")).verificationKey == TestKeys.signer.verificationKey)
    #expect(try VerificationKey.load(dir.file("signing.pem")) == TestKeys.signer.verificationKey)
    #expect(TestKeys.alice.publicKey.bits == 3072)
    // Keys are never overwritten.
    #expect(
        cryptoError { try KeyFile.create(dir.file("signing.pem"), text: "x", secret: false) }
            == .keyFileExists(path: dir.file("signing.pem")))
}

@Test(arguments: [0o640, 0o604, 0o644, 0o660])
func privateKeysOpenToOthersAreRefusedWithTheFix(_ mode: Int) throws {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    let path = dir.file("recipient.key.pem")
    try KeyFile.create(path, text: TestKeys.alice.pemText, secret: true)
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    let error = cryptoError { _ = try RecipientPrivateKey.load(path) }
    #expect(error == .keyFileTooOpen(path: path, mode: UInt32(0o100000 | mode)))
    #expect(error?.description.contains("chmod 600 \(path)") == true)
    #expect(cryptoError { _ = try DecryptionKey.load(path) } != nil)
}

@Test func wrongKindsOfKeyFilesAreNamed() throws {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    try KeyFile.create(dir.file("recipient.pem"), text: TestKeys.alice.publicKey.pemText, secret: true)
    try KeyFile.create(dir.file("signing.key.pem"), text: TestKeys.signer.pemText, secret: true)
    try KeyFile.create(dir.file("notes.txt"), text: "hello", secret: true)
    func detail(_ body: () throws -> Void) -> String { cryptoError(body)?.description ?? "accepted" }
    #expect(detail { _ = try RecipientPrivateKey.load(dir.file("recipient.pem")) }.contains("it is a public key"))
    #expect(detail { _ = try RecipientPublicKey.load(dir.file("signing.key.pem")) }.contains("it is a private key"))
    #expect(detail { _ = try RecipientPrivateKey.load(dir.file("signing.key.pem")) }.contains("Ed25519 signing key"))
    try KeyFile.create(dir.file("signing.pem"), text: TestKeys.signer.verificationKey.pemText, secret: false)
    #expect(detail { _ = try RecipientPublicKey.load(dir.file("signing.pem")) }.contains("Ed25519 signing key"))
    #expect(detail { _ = try Passphrase.load(dir.file("recipient.pem")) }.contains("not a passphrase file"))
    #expect(detail { _ = try SigningKey.load(dir.file("recipient.pem")) }.contains("public key"))
    #expect(detail { _ = try RecipientPrivateKey.load(dir.file("notes.txt")) }.contains("no -----BEGIN line"))
    #expect(
        cryptoError { _ = try RecipientPrivateKey.load(dir.file("absent.pem")) }
            == .keyFileMissing(path: dir.file("absent.pem")))
    #expect(cryptoError { _ = try RecipientPrivateKey.generate(bits: 2048) } != nil)
}

@Test func passphraseFilesDropTheirLineEnding() throws {
    let dir = try TemporaryDirectory()
    defer { dir.cleanup() }
    try KeyFile.create(dir.file("pass"), text: "open sesame\r\n", secret: true)
    #expect(try Passphrase.load(dir.file("pass")).bytes == Array("open sesame".utf8))
    guard case .passphrase(let p) = try DecryptionKey.load(dir.file("pass")) else {
        Issue.record("a passphrase file was read as a key")
        return
    }
    #expect(p.bytes == Array("open sesame".utf8))
    try KeyFile.create(dir.file("empty"), text: "\n", secret: true)
    #expect(cryptoError { _ = try Passphrase.load(dir.file("empty")) } != nil)
}

// MARK: - Folder signatures

/// A results folder like `dpkit run` writes.
func resultsFolder() throws -> TemporaryDirectory {
    let dir = try TemporaryDirectory()
    try FileManager.default.createDirectory(
        at: dir.url.appendingPathComponent("models"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
        at: dir.url.appendingPathComponent("metrics"), withIntermediateDirectories: true)
    try dir.write(Array("run_id,epsilon\nabc-s0,1.25\n".utf8), to: "runs.csv")
    try dir.write(Array("run_id,epoch\nabc-s0,1\n".utf8), to: "epochs.csv")
    try dir.write(Array(#"{"runs": [{"privacy_ledger": {"epsilon": 1.25}}]}"#.utf8), to: "manifest.json")
    try dir.write(pattern(1000), to: "models/abc-s0.safetensors")
    try dir.write(Array("{\"step\":1}\n".utf8), to: "metrics/abc-s0.jsonl")
    try dir.write(Array("<svg/>".utf8), to: "figure.svg")
    return dir
}

@Test func signedFolderVerifiesAndNamesEveryChange() throws {
    let dir = try resultsFolder()
    defer { dir.cleanup() }
    let doc = try FolderSignature.sign(directory: dir.url, key: TestKeys.signer)
    #expect(
        doc.files.map(\.path) == [
            "epochs.csv", "manifest.json", "metrics/abc-s0.jsonl", "models/abc-s0.safetensors", "runs.csv",
        ])
    var v = try FolderSignature.verify(directory: dir.url, expected: TestKeys.signer.verificationKey)
    #expect(v.verifies)
    #expect(v.report == ["verified: 5 files signed by key \(String(TestKeys.signer.verificationKey.keyID.prefix(16)))"])
    // Figures are not signed: drawing them later breaks nothing.
    try dir.write(Array("<svg></svg>".utf8), to: "figure.svg")
    #expect(try FolderSignature.verify(directory: dir.url).verifies)

    // One character of an epsilon in runs.csv and in the manifest's ledger.
    try dir.write(Array("run_id,epsilon\nabc-s0,1.24\n".utf8), to: "runs.csv")
    try dir.write(Array(#"{"runs": [{"privacy_ledger": {"epsilon": 1.15}}]}"#.utf8), to: "manifest.json")
    try FileManager.default.removeItem(atPath: dir.file("metrics/abc-s0.jsonl"))
    try dir.write([1], to: "models/extra.safetensors")
    try dir.write([1], to: "accounting.csv")
    v = try FolderSignature.verify(directory: dir.url, expected: TestKeys.signer.verificationKey)
    #expect(!v.verifies)
    #expect(v.signatureValid)
    #expect(v.changed == ["manifest.json", "runs.csv"])
    #expect(v.missing == ["metrics/abc-s0.jsonl"])
    #expect(v.added == ["accounting.csv", "models/extra.safetensors"])
    #expect(
        v.report == [
            "changed: manifest.json", "changed: runs.csv", "added: accounting.csv", "added: models/extra.safetensors",
            "missing: metrics/abc-s0.jsonl",
        ])
}

@Test func editedSignatureFileAndOtherSignersAreCaught() throws {
    let dir = try resultsFolder()
    defer { dir.cleanup() }
    try FolderSignature.sign(directory: dir.url, key: TestKeys.signer)
    #expect(!(try FolderSignature.verify(directory: dir.url, expected: TestKeys.otherSigner.verificationKey)).verifies)
    #expect(
        !(try FolderSignature.verify(directory: dir.url, expected: TestKeys.otherSigner.verificationKey)).signerMatches)

    // Someone edits runs.csv and the digest in signature.json to match: the signature breaks.
    try dir.write(Array("run_id,epsilon\nabc-s0,0.25\n".utf8), to: "runs.csv")
    var doc = try FolderSignature.read(dir.url)
    let i = doc.files.firstIndex { $0.path == "runs.csv" }!
    doc.files[i].sha256 = try FolderSignature.sha256(dir.url.appendingPathComponent("runs.csv"))
    try JSONEncoder().encode(doc).write(to: dir.url.appendingPathComponent(FolderSignature.fileName))
    let v = try FolderSignature.verify(directory: dir.url)
    #expect(!v.signatureValid)
    #expect(v.changed.isEmpty)
    #expect(v.report.first?.contains("does not verify") == true)

    // Re-signing with another key is seen when the expected key is given.
    try FolderSignature.sign(directory: dir.url, key: TestKeys.otherSigner)
    #expect(try FolderSignature.verify(directory: dir.url).verifies)
    #expect(!(try FolderSignature.verify(directory: dir.url, expected: TestKeys.signer.verificationKey)).verifies)

    try dir.write(Array("{}".utf8), to: FolderSignature.fileName)
    #expect(cryptoError { _ = try FolderSignature.verify(directory: dir.url) } != nil)
    try FileManager.default.removeItem(atPath: dir.file(FolderSignature.fileName))
    #expect(cryptoError { _ = try FolderSignature.verify(directory: dir.url) } == .unsigned(directory: dir.path))
}
