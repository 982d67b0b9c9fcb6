import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An Ed25519 signature over a results folder: a signed list of the SHA-256 digests of its
/// manifest, CSV files, models and metrics, in `signature.json`.
///
/// The signed message is the UTF-8 text
/// ```
/// dpkit-signature-1
/// key <key id>
/// <sha256 hex>  <path>        one line per file, paths relative to the folder, sorted bytewise
/// ```
/// Which files are signed: `manifest.json`, every `*.csv` in the folder itself, and every file
/// under `models/` and `metrics/` (checkpoints, locks, figures and the signature itself are not).
public enum FolderSignature {
    public static let fileName = "signature.json"
    public static let format = "dpkit-signature-1"
    /// Subfolders whose every file is signed.
    public static let signedFolders = ["models", "metrics"]

    /// One signed file.
    public struct Entry: Codable, Equatable, Sendable {
        public var path: String
        public var sha256: String
    }

    /// The contents of `signature.json`.
    public struct Document: Codable, Equatable, Sendable {
        public var format: String
        /// Hex SHA-256 of the signer's SubjectPublicKeyInfo.
        public var keyID: String
        /// The signer's raw Ed25519 public key, base64.
        public var publicKey: String
        public var files: [Entry]
        /// Base64 Ed25519 signature of ``message``.
        public var signature: String

        enum CodingKeys: String, CodingKey {
            case format, keyID = "key_id", publicKey = "public_key", files, signature
        }

        /// The signed text.
        public var message: [UInt8] {
            var text = "\(format)\nkey \(keyID)\n"
            for e in files.sorted(by: { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }) {
                text += "\(e.sha256)  \(e.path)\n"
            }
            return Array(text.utf8)
        }
    }

    // MARK: Signing

    /// Signs the folder: writes `signature.json` (replacing an earlier one, atomically).
    /// - Returns: the signed document.
    @discardableResult
    public static func sign(directory: URL, key: SigningKey) throws -> Document {
        let entries = try digests(directory)
        var doc = Document(
            format: format, keyID: key.verificationKey.keyID,
            publicKey: Data(key.verificationKey.rawBytes).base64EncodedString(), files: entries, signature: "")
        doc.signature = Data(try key.signature(for: doc.message)).base64EncodedString()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(doc) + Data("\n".utf8)
        let url = directory.appendingPathComponent(fileName)
        let temporary = directory.appendingPathComponent(".\(fileName).tmp")
        do {
            try data.write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else {
                throw CryptoError.io(path: url.path, action: "write", reason: posixReason(errno))
            }
        } catch let error as CryptoError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw CryptoError.io(path: url.path, action: "write", reason: "\(error.localizedDescription)")
        }
        return doc
    }

    // MARK: Verifying

    /// The result of checking a folder against its signature.
    public struct Verification: Equatable, Sendable {
        /// The key that made the signature.
        public var keyID: String
        /// The Ed25519 signature is valid for the listed digests under that key.
        public var signatureValid: Bool
        /// False when an expected key was given and the folder was signed with another.
        public var signerMatches: Bool
        public var changed: [String] = []
        public var added: [String] = []
        public var missing: [String] = []
        public var fileCount: Int

        /// Signature valid, signed by the expected key, and every signed file as signed.
        public var verifies: Bool {
            signatureValid && signerMatches && changed.isEmpty && added.isEmpty && missing.isEmpty
        }

        /// One line per problem, or the success line.
        public var report: [String] {
            var lines: [String] = []
            if !signatureValid { lines.append("the signature does not verify: signature.json was edited") }
            if !signerMatches { lines.append("signed with another key (key id \(short(keyID)))") }
            lines += changed.map { "changed: \($0)" }
            lines += added.map { "added: \($0)" }
            lines += missing.map { "missing: \($0)" }
            if lines.isEmpty { lines.append("verified: \(fileCount) files signed by key \(short(keyID))") }
            return lines
        }
    }

    /// Checks the folder against its `signature.json`.
    /// - Parameter expected: the signer's public key; nil checks against the key in the file
    ///   (integrity since signing, not who signed).
    /// - Throws: ``CryptoError/unsigned(directory:)`` when there is no signature file,
    ///   ``CryptoError/malformedSignature(path:detail:)`` when it is not one DPKit wrote.
    public static func verify(directory: URL, expected: VerificationKey? = nil) throws -> Verification {
        let doc = try read(directory)
        let url = directory.appendingPathComponent(fileName)
        guard doc.format == format else {
            throw CryptoError.malformedSignature(path: url.path, detail: "format \(doc.format), expected \(format)")
        }
        guard let raw = Data(base64Encoded: doc.publicKey), let key = try? VerificationKey(rawBytes: Array(raw)),
            let signature = Data(base64Encoded: doc.signature)
        else {
            throw CryptoError.malformedSignature(path: url.path, detail: "damaged public_key or signature")
        }
        var result = Verification(
            keyID: key.keyID,
            signatureValid: key.keyID == doc.keyID && key.isValidSignature(Array(signature), for: doc.message),
            signerMatches: expected.map { $0 == key } ?? true, fileCount: doc.files.count)
        let signed = Dictionary(doc.files.map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        let present = try digests(directory)
        let now = Dictionary(present.map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        for e in doc.files.sorted(by: { $0.path < $1.path }) {
            guard let digest = now[e.path] else {
                result.missing.append(e.path)
                continue
            }
            if digest != e.sha256 { result.changed.append(e.path) }
        }
        result.added = present.map(\.path).filter { signed[$0] == nil }.sorted()
        return result
    }

    /// The signature file of `directory`.
    public static func read(_ directory: URL) throws -> Document {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            if FileManager.default.fileExists(atPath: url.path) {
                throw CryptoError.io(path: url.path, action: "read", reason: "permission denied")
            }
            throw CryptoError.unsigned(directory: directory.path)
        }
        do { return try JSONDecoder().decode(Document.self, from: data) } catch {
            throw CryptoError.malformedSignature(path: url.path, detail: "not the JSON DPKit writes")
        }
    }

    // MARK: Files

    /// The signed files of `directory` (relative paths) with their digests, sorted.
    public static func digests(_ directory: URL) throws -> [Entry] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CryptoError.io(path: directory.path, action: "sign", reason: "no such folder")
        }
        var paths: [String] = []
        let top = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in top where name == "manifest.json" || name.hasSuffix(".csv") {
            if isRegularFile(directory.appendingPathComponent(name)) { paths.append(name) }
        }
        for folder in signedFolders {
            let base = directory.appendingPathComponent(folder)
            guard let walker = fm.enumerator(atPath: base.path) else { continue }
            while let relative = walker.nextObject() as? String {
                if isRegularFile(base.appendingPathComponent(relative)) { paths.append(folder + "/" + relative) }
            }
        }
        if let odd = paths.first(where: { $0.contains("\n") || $0.contains("\r") }) {
            throw CryptoError.invalidSetting("\(odd): a file name with a line break cannot be signed; rename it")
        }
        return try paths.sorted().map { Entry(path: $0, sha256: try sha256(directory.appendingPathComponent($0))) }
    }

    static func isRegularFile(_ url: URL) -> Bool {
        (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true
    }

    /// Hex SHA-256 of a file, read in 1 MiB pieces.
    public static func sha256(_ url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw CryptoError.io(path: url.path, action: "read", reason: "cannot open it")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let data: Data
            do { data = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
                throw CryptoError.io(path: url.path, action: "read", reason: error.localizedDescription)
            }
            if data.isEmpty { break }
            hasher.update(data: data)
        }
        return hex(hasher.finalize())
    }
}
