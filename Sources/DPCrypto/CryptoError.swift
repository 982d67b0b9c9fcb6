/// An encryption, key or signature error: what is wrong, with which file, and what to do.
///
/// Every message names the file and the fix. Nothing here is ever silent: a file that fails
/// authentication is refused whole, never returned in part.
public enum CryptoError: Error, CustomStringConvertible, Equatable, Sendable {
    // MARK: Envelopes

    /// The file does not start with the envelope magic `DPKITENV`.
    case notAnEnvelope(path: String)
    /// The envelope's version byte is not one this DPKit reads.
    case unsupportedVersion(path: String, version: UInt8)
    /// The header is cut short or holds a value outside the format (docs/encryption.md).
    case malformedHeader(path: String, detail: String)
    /// No recipient entry of the file is for the given private key.
    case notARecipient(path: String, keyID: String, recipientKeyIDs: [String], hasPassphrase: Bool)
    /// A passphrase was given, but the file has no passphrase entry.
    case noPassphraseEntry(path: String, recipientKeyIDs: [String])
    /// The passphrase does not open the file's passphrase entry.
    case wrongPassphrase(path: String)
    /// The RSA entry for this key does not decrypt with it, or the recovered key does not
    /// match the header's key commitment: the header was modified.
    case keyUnwrapFailed(path: String, detail: String)
    /// Chunk `index` does not authenticate: modified, reordered, or from another file.
    case chunkAuthenticationFailed(path: String, index: UInt64, offset: Int)
    /// The file ends after a chunk that is not the last one.
    case truncated(path: String, chunks: UInt64)
    /// Bytes follow the last chunk.
    case trailingData(path: String, chunks: UInt64)
    /// The output file exists; it is never overwritten.
    case outputExists(path: String)
    /// A file could not be opened, read, written or renamed.
    case io(path: String, action: String, reason: String)
    /// A setting of the encryptor is outside the format (no recipient, chunk size).
    case invalidSetting(String)

    // MARK: Keys

    /// The key file does not exist.
    case keyFileMissing(path: String)
    /// A private key file that its group or others may read.
    case keyFileTooOpen(path: String, mode: UInt32)
    /// The file is not a PEM key of the kind this command needs.
    case notAKey(path: String, expected: String, detail: String)
    /// An RSA key below 3072 bits.
    case keyTooSmall(path: String, bits: Int)
    /// Key files already exist where `keys generate` would write.
    case keyFileExists(path: String)

    // MARK: Signatures

    /// The folder has no signature file.
    case unsigned(directory: String)
    /// The signature file is not one DPKit wrote, or is damaged.
    case malformedSignature(path: String, detail: String)

    public var description: String {
        switch self {
        case .notAnEnvelope(let path):
            return "\(path): not a DPKit encrypted file (it does not start with DPKITENV). "
                + "Fix: give the file `dpkit encrypt` wrote, or leave out the decryption key for a plain file."
        case .unsupportedVersion(let path, let version):
            return "\(path): envelope format version \(version), but this DPKit reads version 1. "
                + "Fix: decrypt it with the DPKit that wrote it."
        case .malformedHeader(let path, let detail):
            return "\(path): damaged envelope header (\(detail)). Fix: get an intact copy of the file."
        case .notARecipient(let path, let keyID, let ids, let hasPassphrase):
            var s =
                "\(path): not encrypted for this key (key id \(short(keyID))); it is for "
                + (ids.isEmpty ? "no RSA key" : "key id \(ids.map(short).joined(separator: ", "))")
            if hasPassphrase { s += " and a passphrase" }
            return s + ". Fix: use the private key whose public key the file was encrypted for"
                + (hasPassphrase ? ", or the passphrase." : ".")
        case .noPassphraseEntry(let path, let ids):
            return
                "\(path): not encrypted for a passphrase; it is for key id \(ids.map(short).joined(separator: ", ")). "
                + "Fix: decrypt with --key and the matching private key."
        case .wrongPassphrase(let path):
            return "\(path): wrong passphrase (the passphrase entry does not authenticate). "
                + "Fix: check the passphrase file (its trailing newline is ignored)."
        case .keyUnwrapFailed(let path, let detail):
            return "\(path): the data key cannot be recovered (\(detail)): the header was modified or damaged. "
                + "Fix: get an intact copy of the file."
        case .chunkAuthenticationFailed(let path, let index, let offset):
            return "\(path): chunk \(index) (at byte \(offset)) fails authentication: the file was modified or "
                + "cut short, its chunks reordered, or its header changed. Nothing was written. Fix: get an intact copy of the file."
        case .truncated(let path, let chunks):
            return "\(path): truncated: the file ends after chunk \(chunks == 0 ? "header" : String(chunks - 1)), "
                + "which is not the last. Nothing was written. Fix: copy the whole file again."
        case .trailingData(let path, let chunks):
            return "\(path): bytes follow the last chunk (chunk \(chunks - 1)): the file was extended. "
                + "Nothing was written. Fix: get an intact copy of the file."
        case .outputExists(let path):
            return "\(path) already exists and is never overwritten. Fix: remove it, or choose another --output."
        case .io(let path, let action, let reason):
            return "cannot \(action) \(path): \(reason)."
        case .invalidSetting(let message):
            return message
        case .keyFileMissing(let path):
            return
                "\(path): key file not found. Fix: check the path, or make keys with `dpkit keys generate --output DIR`."
        case .keyFileTooOpen(let path, let mode):
            return "\(path): secret key file open to \(mode & 0o070 != 0 ? "its group" : "others") (mode "
                + "0\(String(mode & 0o777, radix: 8))); DPKit refuses to use it. Fix: `chmod 600 \(path)`."
        case .notAKey(let path, let expected, let detail):
            return "\(path): not \(expected) (\(detail)). Fix: give the file `dpkit keys generate` wrote for this."
        case .keyTooSmall(let path, let bits):
            return "\(path): RSA key of \(bits) bits; DPKit needs 3072 bits or more. "
                + "Fix: make a new key pair with `dpkit keys generate --output DIR`."
        case .keyFileExists(let path):
            return "\(path) already exists; keys are never overwritten. Fix: choose another --output folder."
        case .unsigned(let directory):
            return "\(directory): no signature.json: the folder was never signed. "
                + "Fix: sign it with `dpkit sign --key signing.key.pem \(directory)` (or `output.sign_with` in the config)."
        case .malformedSignature(let path, let detail):
            return "\(path): not a DPKit signature file (\(detail)). Fix: sign the folder again with `dpkit sign`."
        }
    }
}

/// The first 16 hex digits of a key id, as messages show it.
func short(_ keyID: String) -> String { String(keyID.prefix(16)) }
