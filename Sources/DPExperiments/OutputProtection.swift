import DPCrypto
import Foundation

// MARK: - Config

/// `output:` section: how an experiment's results are protected (docs/encryption.md).
public struct OutputConfig: Hashable, Sendable {
    /// `output.encrypt_for`: an RSA public key file (recipient.pem); checkpoints and exported
    /// models are written as envelopes for it (`<name>.dpkenc`).
    public var encryptFor: String?
    /// `output.sign_with`: an Ed25519 private key file (signing.key.pem); the results folder is
    /// signed (`signature.json`) when the experiment finishes.
    public var signWith: String?

    public init(encryptFor: String? = nil, signWith: String? = nil) {
        self.encryptFor = encryptFor
        self.signWith = signWith
    }

    static func parse(_ o: MapReader) throws -> OutputConfig {
        let config = OutputConfig(encryptFor: try o.string("encrypt_for"), signWith: try o.string("sign_with"))
        try o.finish()
        return config
    }
}

// MARK: - Keys

/// The keys behind `output:`, loaded before the first run trains: the recipient of checkpoints
/// and models, the key that reads encrypted checkpoints back on `--resume`, and the signing key.
public struct OutputProtection: Sendable {
    public var recipient: RecipientPublicKey?
    public var signingKey: SigningKey?
    /// Opens encrypted checkpoints: the key given to the runner, else a run's
    /// `dataset.decryption_key` when it is the private key of `recipient`.
    public var checkpointKey: DecryptionKey?

    public init(
        recipient: RecipientPublicKey? = nil, signingKey: SigningKey? = nil, checkpointKey: DecryptionKey? = nil
    ) {
        self.recipient = recipient
        self.signingKey = signingKey
        self.checkpointKey = checkpointKey
    }

    /// Loads the keys `config` names.
    /// - Throws: ``DPCrypto/CryptoError`` naming a key file that is missing, of the wrong kind
    ///   or open to others.
    public init(config: ExperimentConfig, decryptionKey: DecryptionKey? = nil) throws {
        recipient = try config.output.encryptFor.map(RecipientPublicKey.load)
        signingKey = try config.output.signWith.map(SigningKey.load)
        checkpointKey = decryptionKey
        if checkpointKey == nil, let recipient {
            for path in Set(config.runs.compactMap(\.config.dataset.decryptionKey)).sorted() {
                if case .privateKey(let k)? = try? DecryptionKey.load(path), k.publicKey.keyID == recipient.keyID {
                    checkpointKey = .privateKey(k)
                    break
                }
            }
        }
    }
}

// MARK: - Signature status

/// Whether a results folder's signature verifies, in one line for tables.
public enum ResultSignature {
    /// `Signature: verified (5 files, Ed25519 key 7f3a30c5db27a565)`, or what fails; nil when
    /// the folder was never signed.
    public static func status(directory: URL, expected: VerificationKey? = nil) -> (line: String, verifies: Bool)? {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent(FolderSignature.fileName).path)
        else { return nil }
        do {
            let v = try FolderSignature.verify(directory: directory, expected: expected)
            if v.verifies {
                let checked = expected == nil ? "; signer not checked (--public)" : ""
                return ("Signature: verified (\(v.fileCount) files, Ed25519 key \(v.keyID.prefix(16))\(checked))", true)
            }
            return ("Signature: DOES NOT VERIFY (" + v.report.joined(separator: "; ") + ")", false)
        } catch {
            return ("Signature: DOES NOT VERIFY (\(plainDescription(of: error)))", false)
        }
    }
}

// MARK: - Sealed files

extension OutputProtection {
    /// `data` as written: an envelope for ``recipient`` when there is one.
    func seal(_ data: Data) throws -> Data {
        guard let recipient else { return data }
        return Data(try Envelope.encrypt(Array(data), for: [.publicKey(recipient)]))
    }
}

/// The bytes of a checkpoint or model file, decrypted in memory when it is an envelope.
/// - Throws: ``OutputError`` for an envelope without a key, naming the fix.
func openSealed(_ data: Data, path: String, key: DecryptionKey?, what: String) throws -> Data {
    guard Envelope.isEnvelope(data) else { return data }
    guard let key else {
        let fix =
            what == "model"
            ? "`dpkit evaluate --key recipient.key.pem`"
            : "`dpkit run --resume --decryption-key recipient.key.pem` (or a dataset.decryption_key that is that key)"
        throw OutputError(
            "\(path) is encrypted (output.encrypt_for); give the private key to read the \(what): \(fix)",
            kind: .usage)
    }
    return Data(try Envelope.decrypt(Array(data), key: key, path: path))
}
