import DPCrypto
import DPData
import DPTraining
import Foundation

/// What an epoch record and a run summary both report.
protocol RunFiguresSource {
    var trainLoss: Double? { get }
    var trainAccuracy: Double? { get }
    var testLoss: Double? { get }
    var testAccuracy: Double? { get }
    var epsilonRDP: Double? { get }
    var epsilonPLDLower: Double? { get }
    var epsilonPLDUpper: Double? { get }
}

extension EpochRecord: RunFiguresSource {}
extension RunSummary: RunFiguresSource {}

/// The figures of a run so far (the last epoch's), carried from a checkpoint into the summary.
struct RunFigures: Codable, Equatable {
    var trainLoss, trainAccuracy, testLoss, testAccuracy: Double?
    var epsilonRDP, epsilonPLDLower, epsilonPLDUpper: Double?

    init(_ r: some RunFiguresSource) {
        trainLoss = r.trainLoss
        trainAccuracy = r.trainAccuracy
        testLoss = r.testLoss
        testAccuracy = r.testAccuracy
        epsilonRDP = r.epsilonRDP
        epsilonPLDLower = r.epsilonPLDLower
        epsilonPLDUpper = r.epsilonPLDUpper
    }

    /// Fills the summary with these figures; a figure an epoch did not compute (no evaluation
    /// that epoch) keeps the summary's earlier value.
    func apply(to s: inout RunSummary) {
        s.trainLoss = trainLoss ?? s.trainLoss
        s.trainAccuracy = trainAccuracy ?? s.trainAccuracy
        s.testLoss = testLoss ?? s.testLoss
        s.testAccuracy = testAccuracy ?? s.testAccuracy
        s.epsilonRDP = epsilonRDP
        s.epsilonPLDLower = epsilonPLDLower
        s.epsilonPLDUpper = epsilonPLDUpper
    }
}

/// A run's state at the end of an epoch: the trainer's checkpoint (model, optimizer, every
/// random stream, ledger), the input scaling in use, and the runner's bookkeeping.
struct RunCheckpoint: Codable {
    static let formatVersion = 1
    var formatVersion = RunCheckpoint.formatVersion
    var runID: String
    /// The last completed epoch (epochs.csv holds exactly the rows up to it).
    var epoch: Int
    /// True when the run had nothing left to do (budget reached or all steps taken).
    var stopped: Bool
    var wallSeconds: Double
    var trainer: Checkpoint
    var transform: InputTransform
    var figures: RunFigures

    /// Atomic and durable (temporary file, fsync, rename): a kill leaves the previous one.
    /// `encryptFor`: written as an envelope for that key.
    func write(to url: URL, encryptFor recipient: RecipientPublicKey? = nil) throws {
        let data = try Checkpoint.encoder.encode(self)
        try DurableFile.writeAtomically(OutputProtection(recipient: recipient).seal(data), to: url)
    }

    /// The checkpoint at `url`, decrypted with `key` when it is an envelope.
    /// - Throws: ``OutputError`` naming the file when it is unreadable, corrupt, of another
    ///   format version or of another run (delete it to start that run afresh), or encrypted
    ///   and no key was given; ``DPCrypto/CryptoError`` when it does not open with `key`.
    static func read(from url: URL, runID: String, key: DecryptionKey? = nil) throws -> RunCheckpoint {
        guard let stored = FileManager.default.contents(atPath: url.path) else {
            throw OutputError("cannot read the checkpoint \(url.path); delete it to start run \(runID) afresh")
        }
        let data = try openSealed(stored, path: url.path, key: key, what: "checkpoint")
        guard let c = try? Checkpoint.decoder.decode(RunCheckpoint.self, from: data) else {
            throw OutputError(
                "\(url.path) is not a DPKit run checkpoint or is corrupt; delete it to start run \(runID) afresh")
        }
        guard c.formatVersion == formatVersion, c.runID == runID else {
            throw OutputError(
                "\(url.path) belongs to run \(c.runID) (format \(c.formatVersion)), not \(runID) (format \(formatVersion)); delete it to start afresh"
            )
        }
        return c
    }

    /// The epoch of the checkpoint at `url`, or nil when there is none or it cannot be read.
    /// - Throws: when it is encrypted and `key` is nil or does not open it (resuming would
    ///   otherwise drop the run's progress).
    static func epoch(at url: URL, key: DecryptionKey? = nil) throws -> Int? {
        guard let stored = FileManager.default.contents(atPath: url.path) else { return nil }
        let data = try openSealed(stored, path: url.path, key: key, what: "checkpoint")
        return (try? Checkpoint.decoder.decode(RunCheckpoint.self, from: data))?.epoch
    }
}

/// A run's `metrics.jsonl`.
enum MetricsLog {
    /// Keeps the lines up to and including `step` (0: none), dropping what an interrupted run
    /// wrote after its checkpoint; atomic.
    static func keep(_ url: URL, throughStep step: Int) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { return }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let range = line.range(of: "\"step\":"),
                let s = Int(line[range.upperBound...].prefix { $0.isNumber })
            else { return false }
            return s <= step
        }
        try DurableFile.writeAtomically(kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n", to: url)
    }
}
