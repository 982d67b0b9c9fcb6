import ArgumentParser
import DPCrypto
import DPExperiments
import Foundation

// MARK: - keys

/// `dpkit keys`: key pairs for encryption and signatures.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Make key pairs for encryption and result signatures.",
        subcommands: [KeysGenerateCommand.self])
}

struct KeysGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write an RSA key pair (encryption) and an Ed25519 key pair (signatures) into a folder.",
        discussion: """
            Writes recipient.pem (RSA public key: give it to `dpkit encrypt --recipient` and \
            `output.encrypt_for`), recipient.key.pem (its private key: `dpkit decrypt --key`, \
            `dataset.decryption_key`), signing.pem (Ed25519 public key: `dpkit verify --public`) and \
            signing.key.pem (its private key: `dpkit sign --key`, `output.sign_with`). Private keys \
            get mode 0600 and a new folder mode 0700; existing key files are never overwritten. \
            See docs/encryption.md for the key-handling rules.
            """)

    @Option(help: "The folder for the four key files (created if missing).") var output: String
    @Option(help: "RSA key size in bits: 3072 (default) or more.") var bits = 3072

    func validate() throws {
        guard bits >= 3072, bits <= 16384, bits % 8 == 0 else {
            throw ValidationError("--bits \(bits): give 3072, 4096 or another multiple of 8 from 3072 to 16384")
        }
    }

    func run() throws {
        try reportingFailure {
            let dir = URL(fileURLWithPath: output)
            if !FileManager.default.fileExists(atPath: dir.path) {
                try FileIO.createDirectory(dir)
                chmod(dir.path, 0o700)
            }
            let names = ["recipient.pem", "recipient.key.pem", "signing.pem", "signing.key.pem"]
            for name in names where FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
                throw CryptoError.keyFileExists(path: dir.appendingPathComponent(name).path)
            }
            let rsa = try RecipientPrivateKey.generate(bits: bits)
            let ed = SigningKey.generate()
            func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
            try KeyFile.create(path("recipient.key.pem"), text: rsa.pemText, secret: true)
            try KeyFile.create(path("recipient.pem"), text: rsa.publicKey.pemText, secret: false)
            try KeyFile.create(path("signing.key.pem"), text: ed.pemText, secret: true)
            try KeyFile.create(path("signing.pem"), text: ed.verificationKey.pemText, secret: false)
            print("\(path("recipient.pem")): RSA-\(bits) public key, key id \(rsa.publicKey.keyID)")
            print("\(path("recipient.key.pem")): its private key (mode 0600)")
            print("\(path("signing.pem")): Ed25519 public key, key id \(ed.verificationKey.keyID)")
            print("\(path("signing.key.pem")): its private key (mode 0600)")
        }
    }
}

// MARK: - encrypt and decrypt

struct EncryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt",
        abstract: "Encrypt a file for one or more RSA public keys (and/or a passphrase).",
        discussion: """
            Writes a DPKit envelope (docs/encryption.md): AES-256-GCM in 64 KiB chunks under a \
            random data key, wrapped for each recipient with RSA-OAEP-SHA256 (and, with \
            --passphrase-file, with scrypt). Streams in constant memory; the output is written \
            whole or not at all and never replaces an existing file.
            """)

    @Argument(help: "The file to encrypt.") var input: String
    @Option(help: "Where to write the envelope (default: INPUT.dpkenc).") var output: String?
    @Option(help: "An RSA public key (recipient.pem) that may decrypt the file; repeatable.") var recipient: [String] =
        []
    @Option(help: "A file (mode 0600) whose first line is a passphrase that may also decrypt the file.")
    var passphraseFile: String?

    func validate() throws {
        if recipient.isEmpty && passphraseFile == nil {
            throw ValidationError("give at least one --recipient PUB.pem (or --passphrase-file FILE)")
        }
    }

    func run() throws {
        let out = output ?? input + "." + Envelope.fileExtension
        try reportingFailure {
            var recipients = try recipient.map { EncryptionRecipient.publicKey(try RecipientPublicKey.load($0)) }
            if let p = passphraseFile { recipients.append(.passphrase(try Passphrase.load(p))) }
            try Envelope.encryptFile(at: input, to: out, recipients: recipients)
            let ids = recipients.compactMap { r -> String? in
                if case .publicKey(let k) = r { return String(k.keyID.prefix(16)) } else { return nil }
            }
            var whom = ids.isEmpty ? [] : ["key id " + ids.joined(separator: ", ")]
            if passphraseFile != nil { whom.append("a passphrase") }
            print("\(out): encrypted for \(whom.joined(separator: " and "))")
        }
    }
}

struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt a DPKit envelope with a private key (or its passphrase).",
        discussion: """
            Every chunk is authenticated before it is written to a temporary file beside OUTPUT \
            (mode 0600), which is renamed to OUTPUT only when the whole file authenticated. A \
            modified, truncated, reordered or extended file, a wrong key or a file for other \
            recipients is refused with exit status 65, and nothing is written.
            """)

    @Argument(help: "The envelope to decrypt.") var input: String
    @Option(help: "Where to write the plaintext (never replaced if it exists).") var output: String
    @Option(help: "The RSA private key (recipient.key.pem, mode 0600).") var key: String?
    @Option(help: "A file (mode 0600) whose first line is the passphrase.") var passphraseFile: String?

    func validate() throws {
        if (key == nil) == (passphraseFile == nil) {
            throw ValidationError("give exactly one of --key KEY.pem and --passphrase-file FILE")
        }
    }

    func run() throws {
        try reportingFailure {
            let k: DecryptionKey =
                try key.map { .privateKey(try RecipientPrivateKey.load($0)) }
                ?? .passphrase(try Passphrase.load(passphraseFile!))
            try Envelope.decryptFile(at: input, to: output, key: k)
            print("\(output): decrypted and authenticated")
        }
    }
}

// MARK: - sign and verify

struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract:
            "Sign a results folder: an Ed25519 signature over the SHA-256 of its manifest, CSVs, models and metrics.",
        discussion: """
            Writes RUN_DIR/signature.json (replacing an earlier one). Signed: manifest.json, every \
            *.csv in the folder, and every file under models/ and metrics/; not signed: figures, \
            checkpoints and the lock. `dpkit verify` checks it.
            """)

    @Argument(help: "The results folder (`dpkit run --output`).") var directory: String
    @Option(help: "The Ed25519 private key (signing.key.pem, mode 0600).") var key: String

    func run() throws {
        try reportingFailure {
            let url = URL(fileURLWithPath: directory)
            try checkResultsFolder(url)
            let doc = try FolderSignature.sign(directory: url, key: try SigningKey.load(key))
            print(
                "\(url.appendingPathComponent(FolderSignature.fileName).path): \(doc.files.count) files signed by key \(doc.keyID.prefix(16))"
            )
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a signed results folder: names every file changed, added or missing since it was signed.",
        discussion: """
            Exit status 0 when the signature is valid, made with the --public key, and every signed \
            file is as it was signed; 65 otherwise, with one line per problem. Without --public \
            only integrity since signing is checked, not who signed.
            """)

    @Argument(help: "The results folder.") var directory: String
    @Option(name: .customLong("public"), help: "The signer's Ed25519 public key (signing.pem).") var publicKey: String?
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let v = try reportingFailure {
            let expected = try publicKey.map { try VerificationKey.load($0) }
            return try FolderSignature.verify(directory: URL(fileURLWithPath: directory), expected: expected)
        }
        if json {
            try printJSON([
                "directory": directory, "verifies": v.verifies, "signature_valid": v.signatureValid,
                "signer_matches": v.signerMatches, "key_id": v.keyID, "changed": v.changed, "added": v.added,
                "missing": v.missing, "files": v.fileCount, "signer_checked": publicKey != nil,
            ])
        } else {
            for line in v.report { print("\(directory): \(line)") }
            if publicKey == nil && v.verifies {
                print("note: the signer was not checked; pass --public signing.pem to check who signed")
            }
        }
        if !v.verifies { throw ExitCode(ExitStatus.dataError.rawValue) }
    }
}

/// Refuses a folder that holds no results (a typo would otherwise sign an empty list).
func checkResultsFolder(_ url: URL) throws {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw FileError(.read, path: url.path, reason: .notFound, hint: "give the folder `dpkit run --output` wrote")
    }
    let known = ["manifest.json", "runs.csv", "accounting.csv"]
    guard known.contains(where: { fm.fileExists(atPath: url.appendingPathComponent($0).path) }) else {
        throw FileError(
            .read, path: url.path,
            reason: .other("not a results folder (no manifest.json, runs.csv or accounting.csv)"),
            hint: "give the folder `dpkit run --output` wrote")
    }
}
