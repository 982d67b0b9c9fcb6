import DPCrypto
import DPData
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Encrypted datasets, checkpoints and models, and signed results folders, end to end through
// the runner (docs/encryption.md).

/// An RSA key pair and a signing key written to a folder as `dpkit keys generate` writes them.
private struct KeyFolder {
    static let rsa = try! RecipientPrivateKey.generate()
    static let signer = SigningKey.generate()
    let url: URL
    var recipient: String { url.appendingPathComponent("recipient.pem").path }
    var recipientKey: String { url.appendingPathComponent("recipient.key.pem").path }
    var signing: String { url.appendingPathComponent("signing.pem").path }
    var signingKey: String { url.appendingPathComponent("signing.key.pem").path }

    init(in dir: URL) throws {
        url = dir.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try KeyFile.create(recipientKey, text: Self.rsa.pemText, secret: true)
        try KeyFile.create(recipient, text: Self.rsa.publicKey.pemText, secret: false)
        try KeyFile.create(signingKey, text: Self.signer.pemText, secret: true)
        try KeyFile.create(signing, text: Self.signer.verificationKey.pemText, secret: false)
    }
}

/// epochs.csv or runs.csv without the wall-clock column.
private func rowsWithoutTime(_ url: URL) throws -> [[String: String]] {
    let (_, rows) = CSV.table(try String(contentsOf: url, encoding: .utf8))
    return rows.map { $0.filter { $0.key != "wall_seconds" } }
}

/// Fashion-MNIST-shaped IDX files (28x28, 10 classes), small, with a pattern a model can learn a little.
private func writeSmallFashionMNIST(to dir: URL, train: Int = 240, test: Int = 60) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let labels = (0..<n).map { UInt8(($0 * 7 + 3) % 10) }
        var pixels = [UInt8](repeating: 0, count: n * 784)
        for i in 0..<n {
            for p in 0..<784 {
                pixels[i * 784 + p] = UInt8((p * 13 + i * 31 + Int(labels[i]) * 50 * (p % 28 < 14 ? 1 : 0)) % 256)
            }
        }
        try IDX(dimensions: [n, 28, 28], bytes: pixels).write(
            to: dir.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz").path, gzip: true)
        try IDX(dimensions: [n], bytes: labels).write(
            to: dir.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz").path, gzip: true)
    }
}

private func fashionYAML(path: String, extra: String = "") -> String {
    """
    name: encrypted-data
    dataset:
      name: fashion-mnist
      path: \(path)
      normalize: private-standardize
      normalize_options: {noise_multiplier: 50, lower: 0, upper: 1}
    \(extra)
    model:
      name: mlp
      options: {hidden_sizes: [16]}
    optimizer: {name: sgd, learning_rate: 0.5}
    privacy: {noise_multiplier: 1.0, delta: 1.0e-5, clipping_norm: 1.0}
    training: {expected_batch_size: 40, epochs: 2}
    seeds: [0]

    """
}

/// Runs `body` in a new temporary folder that holds the ``KeyFolder``; removes the folder after.
private func withKeyFolder(_ body: (_ dir: URL, _ keys: KeyFolder) throws -> Void) throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    try body(dir, try KeyFolder(in: dir))
}

private func run(_ yaml: String, into out: URL, resume: Bool = false) throws -> ExperimentReport {
    let runner = ExperimentRunner(
        config: try ExperimentConfig.parse(yaml: yaml, file: "enc.yaml"), outputDirectory: out,
        executor: TrainingExecutor(), resume: resume, clock: { 0 }, log: { _ in })
    return try runner.run()
}

@Test("training on encrypted Fashion-MNIST files is the same run, bit for bit, as on the plain files")
func encryptedDatasetTrainsBitForBitAsThePlainOne() throws {
    try withKeyFolder { dir, keys in
        let data = dir.appendingPathComponent("fashion")
        try writeSmallFashionMNIST(to: data)
        let plainOut = dir.appendingPathComponent("plain")
        #expect(try run(fashionYAML(path: data.path), into: plainOut).finished.count == 1)

        // The same folder, now holding envelopes under the same names (a decryption key does not
        // change the run id: it is left out of the config hash).
        let recipient = try RecipientPublicKey.load(keys.recipient)
        for name in try FileManager.default.contentsOfDirectory(atPath: data.path) {
            let path = data.appendingPathComponent(name).path
            try Envelope.encryptFile(at: path, to: path + ".tmp", recipients: [.publicKey(recipient)])
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
            #expect(Envelope.isEnvelope(path: path))
        }
        // Without the key: the file is named and the fix given.
        let noKey = try ExperimentConfig.parse(yaml: fashionYAML(path: data.path), file: "enc.yaml")
        #expect(throws: DataError.self) { _ = try TrainingExecutor().loadData(noKey.runs[0].config) }

        let encryptedOut = dir.appendingPathComponent("encrypted")
        let yaml = fashionYAML(path: data.path, extra: "  decryption_key: \(keys.recipientKey)")
        #expect(try run(yaml, into: encryptedOut).finished.count == 1)
        for file in ["epochs.csv", "runs.csv"] {
            #expect(
                try rowsWithoutTime(plainOut.appendingPathComponent(file))
                    == rowsWithoutTime(encryptedOut.appendingPathComponent(file)), "\(file) differs")
        }
        let id = try #require(noKey.runs.first?.runID)
        for file in ["models/\(id).safetensors", "metrics/\(id).jsonl"] {
            let a = try Data(contentsOf: plainOut.appendingPathComponent(file))
            let b = try Data(contentsOf: encryptedOut.appendingPathComponent(file))
            #expect(a == b, "\(file) differs")
        }
    }
}

@Test("output.encrypt_for: checkpoints and models are envelopes; a resumed run reads its checkpoint back")
func encryptedCheckpointsAndModelsResume() throws {
    try withKeyFolder { dir, keys in
        let config = try parse(baseYAML)
        let run = try #require(config.runs.first)
        let executor = TrainingExecutor()
        let full = RunContext(model: dir.appendingPathComponent("full.safetensors"))
        _ = try executor.execute(run, context: full) { _ in }

        struct Killed: Error {}
        var context = RunContext(
            checkpoint: dir.appendingPathComponent("run.json.dpkenc"),
            model: dir.appendingPathComponent("resumed.safetensors.dpkenc"))
        context.encryptFor = try RecipientPublicKey.load(keys.recipient)
        #expect(throws: Killed.self) {
            _ = try executor.execute(run, context: context) { r in if r.epoch == 3 { throw Killed() } }
        }
        #expect(Envelope.isEnvelope(path: context.checkpoint!.path))
        // Without the key the checkpoint is refused with the fix; with it the run continues.
        #expect(throws: OutputError.self) { _ = try RunCheckpoint.epoch(at: context.checkpoint!) }
        context.checkpointKey = try DecryptionKey.load(keys.recipientKey)
        #expect(try RunCheckpoint.epoch(at: context.checkpoint!, key: context.checkpointKey) == 2)
        _ = try executor.execute(run, context: context) { _ in }
        #expect(Envelope.isEnvelope(path: context.model!.path))
        let model = try Envelope.decryptFile(at: context.model!.path, key: context.checkpointKey!)
        #expect(Data(model) == (try Data(contentsOf: full.model!)), "the resumed encrypted model differs")
        let evaluated = try ModelEvaluation.evaluate(file: context.model!, keyPath: keys.recipientKey)
        #expect(evaluated.examples > 0)
        #expect(throws: OutputError.self) { _ = try ModelEvaluation.evaluate(file: context.model!) }
    }
}

@Test("output.sign_with signs the folder; verify and the table catch a one-character edit of an epsilon")
func signedResultsCatchEpsilonEdits() throws {
    try withKeyFolder { dir, keys in
        let out = dir.appendingPathComponent("out")
        let yaml = baseYAML + "output:\n  sign_with: \(keys.signingKey)\n  encrypt_for: \(keys.recipient)\n"
        #expect(try run(yaml, into: out).finished.count == 1)
        let expected = try VerificationKey.load(keys.signing)
        let signed = try FolderSignature.verify(directory: out, expected: expected)
        #expect(signed.verifies, "\(signed.report)")
        #expect(try FolderSignature.read(out).files.map(\.path).contains { $0.hasSuffix(".safetensors.dpkenc") })
        #expect(ResultSignature.status(directory: out, expected: expected)?.verifies == true)
        let manifest = try String(contentsOf: out.appendingPathComponent("manifest.json"), encoding: .utf8)
        #expect(manifest.contains(KeyFolder.signer.verificationKey.keyID))

        /// Changes one digit of the first number after `marker` in `file`; returns the original text.
        func editDigit(_ file: String, after marker: String) throws -> String {
            let url = out.appendingPathComponent(file)
            let text = try String(contentsOf: url, encoding: .utf8)
            let start = try #require(text.range(of: marker)).upperBound
            let digit = try #require(text[start...].firstIndex { $0.isNumber && $0 != "0" })
            var edited = text
            edited.replaceSubrange(digit...digit, with: text[digit] == "1" ? "2" : "1")
            try edited.write(to: url, atomically: true, encoding: .utf8)
            return text
        }
        // An epsilon in runs.csv (the `epsilon` column of the one row).
        let header = try String(contentsOf: out.appendingPathComponent("runs.csv"), encoding: .utf8)
            .split(separator: "\n")[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let column = try #require(header.firstIndex(of: "epsilon"))
        let runsText = try String(contentsOf: out.appendingPathComponent("runs.csv"), encoding: .utf8)
        let row = runsText.split(separator: "\n")[1].split(separator: ",", omittingEmptySubsequences: false).map(
            String.init)
        let original = try editDigit("runs.csv", after: row[..<column].joined(separator: ",") + ",")
        var v = try FolderSignature.verify(directory: out, expected: expected)
        #expect(!v.verifies && v.changed == ["runs.csv"], "\(v.report)")
        #expect(ResultSignature.status(directory: out)?.line.contains("changed: runs.csv") == true)
        try original.write(to: out.appendingPathComponent("runs.csv"), atomically: true, encoding: .utf8)
        #expect(try FolderSignature.verify(directory: out, expected: expected).verifies)

        // The noise multiplier of the ledger's events in the manifest (what epsilon is computed from).
        _ = try editDigit("manifest.json", after: "\"privacy_ledger\"")
        v = try FolderSignature.verify(directory: out, expected: expected)
        #expect(!v.verifies && v.changed == ["manifest.json"], "\(v.report)")
    }
}

@Test func encryptionKeysInConfigsAreValidated() throws {
    // decryption_key only where files are read.
    let generated = configError(
        baseYAML.replacingOccurrences(of: "  train_size: 1000", with: "  train_size: 1000\n  decryption_key: k.pem"))
    #expect(generated?.path == "dataset.decryption_key")
    #expect(generated?.message.contains("fashion-mnist, csv") == true)
    // output: known keys only; not part of any run's config hash.
    let misspelt = configError(baseYAML + "output:\n  encrypt_fro: r.pem\n")
    #expect(misspelt?.path == "output.encrypt_fro")
    let plain = try parse(baseYAML),
        protected = try parse(baseYAML + "output:\n  encrypt_for: r.pem\n  sign_with: s.pem\n")
    #expect(protected.output == OutputConfig(encryptFor: "r.pem", signWith: "s.pem"))
    #expect(plain.runs.map(\.runID) == protected.runs.map(\.runID))
    let csv = try parse(
        baseYAML.replacingOccurrences(
            of: "  name: gaussian-mixture\n  train_size: 1000",
            with: "  name: csv\n  path: d.csv\n  decryption_key: k.pem"))
    #expect(csv.runs.first?.config.dataset.decryptionKey == "k.pem")
    // A missing key file stops the runner before anything is written.
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(throws: CryptoError.self) {
        _ = try run(
            baseYAML + "output:\n  sign_with: \(dir.path)/absent.key.pem\n", into: dir.appendingPathComponent("out"))
    }
    #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
}

// MARK: - The commands

/// Runs the `dpkit` executable beside the tests; returns its exit status and standard error.
private func dpkit(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var executable: URL?
    for _ in 0..<3 where executable == nil {
        let candidate = dir.appendingPathComponent("dpkit")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { executable = candidate }
        dir = dir.deletingLastPathComponent()
    }
    let p = Process()
    p.executableURL = try #require(executable, "run `swift build --build-tests` first: dpkit is not beside the tests")
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["DPKIT_NO_BLAS_REEXEC"] = "1"
    p.environment = env
    let err = Pipe()
    p.standardOutput = FileHandle.nullDevice
    p.standardError = err
    try p.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

@Test("dpkit decrypt and verify: a clear error, exit status 65 and no output file")
func commandsRefuseTamperedFiles() throws {
    try withKeyFolder { dir, keys in
        let plain = dir.appendingPathComponent("plain.bin")
        try Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: plain)
        #expect(try dpkit(["encrypt", "--recipient", keys.recipient, plain.path]).status == 0)
        let envelope = plain.path + ".dpkenc"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: envelope))
        bytes[150_000] ^= 0x40
        let tampered = dir.appendingPathComponent("tampered.dpkenc")
        try bytes.write(to: tampered)
        let out = dir.appendingPathComponent("out.bin").path
        let refused = try dpkit(["decrypt", "--key", keys.recipientKey, tampered.path, "--output", out])
        #expect(refused.status == ExitStatus.dataError.rawValue)
        #expect(refused.stderr.contains("fails authentication") && refused.stderr.contains("Fix:"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        let cut = dir.appendingPathComponent("cut.dpkenc")
        try bytes.prefix(65_536 + 16 + 500).write(to: cut)
        #expect(try dpkit(["decrypt", "--key", keys.recipientKey, cut.path, "--output", out]).status == 65)
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try dpkit(["decrypt", "--key", keys.recipientKey, envelope, "--output", out]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: plain))

        // A group-readable private key is refused with the chmod command.
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: keys.recipientKey)
        let open = try dpkit(["decrypt", "--key", keys.recipientKey, envelope, "--output", out + "2"])
        #expect(open.status == ExitStatus.usage.rawValue && open.stderr.contains("chmod 600 \(keys.recipientKey)"))

        // dpkit verify names the changed file and exits 65.
        let results = dir.appendingPathComponent("results")
        try FileManager.default.createDirectory(at: results, withIntermediateDirectories: true)
        try "run_id,epsilon\na-s0,2.5\n".write(
            to: results.appendingPathComponent("runs.csv"), atomically: true, encoding: .utf8)
        #expect(try dpkit(["sign", "--key", keys.signingKey, results.path]).status == 0)
        #expect(try dpkit(["verify", "--public", keys.signing, results.path]).status == 0)
        try "run_id,epsilon\na-s0,1.5\n".write(
            to: results.appendingPathComponent("runs.csv"), atomically: true, encoding: .utf8)
        #expect(try dpkit(["verify", "--public", keys.signing, results.path]).status == 65)
    }
}
