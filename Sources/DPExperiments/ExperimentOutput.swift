import DPCrypto
import Foundation

/// The columns of `epochs.csv` and `runs.csv`.
///
/// Both start with `run_id, config_hash, seed`, then one column per varying key path of the
/// experiment (`privacy.target_epsilon`, `model.name`, ...), then fixed columns.
public enum OutputSchema {
    public static let leadingColumns = ["run_id", "config_hash", "seed"]

    public static let epochColumns = [
        "epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
        "epsilon_rdp", "epsilon_pld_lower", "epsilon_pld_upper", "delta", "noise_multiplier",
        "sampling_probability", "clipping_norm", "clipped_fraction", "wall_seconds",
    ]

    public static let runColumns = [
        "status", "kind", "dataset", "model", "target_epsilon", "epochs", "steps",
        "train_loss", "train_accuracy", "test_loss", "test_accuracy",
        "epsilon", "epsilon_rdp", "epsilon_pld_lower", "epsilon_pld_upper", "neighboring_relation", "privacy_unit",
        "randomness", "delta", "noise_multiplier", "sampling_probability", "clipping_norm",
        "epsilon_lower_empirical", "audit_confidence", "mia_auc", "mia_tpr_at_fpr_0.01", "wall_seconds", "error",
    ]

    public static func epochsHeader(varyingKeys: [String]) -> [String] { leadingColumns + varyingKeys + epochColumns }
    /// `derived`: the columns of `evaluation:` and `poisoning:` sections (``derivedColumns(_:)``),
    /// before `wall_seconds`; none for configs without them, whose runs.csv is unchanged.
    public static func runsHeader(varyingKeys: [String], derived: [String] = []) -> [String] {
        leadingColumns + varyingKeys + runColumns.dropLast(2) + derived + runColumns.suffix(2)
    }

    static func leadingFields(_ run: ResolvedRun) -> [String] {
        [run.runID, run.configHash, String(run.seed)] + run.varyingValues.map(\.value.displayText)
    }

    static func epochRow(_ run: ResolvedRun, _ r: EpochRecord) -> [String] {
        leadingFields(run) + [
            String(r.epoch), String(r.step), csvNumber(r.trainLoss), csvNumber(r.trainAccuracy),
            csvNumber(r.testLoss), csvNumber(r.testAccuracy), csvNumber(r.epsilonRDP), csvNumber(r.epsilonPLDLower),
            csvNumber(r.epsilonPLDUpper), csvNumber(r.delta), csvNumber(r.noiseMultiplier),
            csvNumber(r.samplingProbability), csvNumber(r.clippingNorm), csvNumber(r.clippedFraction),
            csvNumber(r.wallSeconds),
        ]
    }

    static func runRow(
        _ run: ResolvedRun, status: String, summary s: RunSummary?, wallSeconds: Double, error: String?,
        derived: [String] = []
    ) -> [String] {
        let c = run.config
        let derivedFields = derived.map { csvNumber(s?.derivedMetrics[$0]) }
        return leadingFields(run) + [
            status, run.kind.rawValue, c.dataset.name, c.model.label, csvNumber(c.privacy.targetEpsilon),
            s.map { String($0.epochs) } ?? "", s.map { String($0.steps) } ?? "",
            csvNumber(s?.trainLoss), csvNumber(s?.trainAccuracy), csvNumber(s?.testLoss), csvNumber(s?.testAccuracy),
            csvNumber(s?.epsilon), csvNumber(s?.epsilonRDP), csvNumber(s?.epsilonPLDLower),
            csvNumber(s?.epsilonPLDUpper),
            s?.privacy?.neighboringRelation.name ?? "", s?.privacy?.privacyUnit ?? "",
            s?.privacy?.randomness.rawValue ?? "",
            csvNumber(s?.delta ?? c.privacy.targetDelta), csvNumber(s?.noiseMultiplier ?? c.privacy.noiseMultiplier),
            csvNumber(s?.samplingProbability), csvNumber(s?.clippingNorm ?? c.privacy.clippingNorm),
            csvNumber(s?.audit?.empirical?.epsilon), csvNumber(s?.audit?.empirical?.confidence),
            csvNumber(s?.audit?.miaAUC), csvNumber(s?.audit?.miaTPRAtFPR001),
        ] + derivedFields + [csvNumber(wallSeconds), error ?? ""]
    }
}

/// Facts about the machine and build recorded in the manifest, passed in by the caller.
public struct RunEnvironment: Hashable, Sendable {
    public var dpkitVersion: String
    public var gitCommit: String?
    /// The OpenBLAS core name (`Haswell`, ...).
    public var blasCore: String?
    public var blasThreads: String?
    /// Data-parallel ranks each run trained on (`mpirun -np K`); 1: one process.
    public var ranks: Int

    public init(
        dpkitVersion: String = "unknown", gitCommit: String? = nil, blasCore: String? = nil, blasThreads: String? = nil,
        ranks: Int = 1
    ) {
        self.dpkitVersion = dpkitVersion
        self.gitCommit = gitCommit
        self.blasCore = blasCore
        self.blasThreads = blasThreads
        self.ranks = ranks
    }
}

/// The three output files of an experiment directory.
struct OutputFiles {
    let directory: URL
    /// Checkpoints and models are envelopes (`output.encrypt_for`), named `<name>.dpkenc`.
    var encrypted = false
    private var suffix: String { encrypted ? "." + Envelope.fileExtension : "" }
    var epochs: URL { directory.appendingPathComponent("epochs.csv") }
    var runs: URL { directory.appendingPathComponent("runs.csv") }
    var manifest: URL { directory.appendingPathComponent("manifest.json") }
    /// Per-run checkpoints, written after every epoch and removed when the run finishes.
    var checkpoints: URL { directory.appendingPathComponent("checkpoints") }
    func checkpoint(_ runID: String) -> URL { checkpoints.appendingPathComponent("\(runID).json\(suffix)") }
    /// The checkpoint files a run may have left, encrypted or not.
    func checkpointVariants(_ runID: String) -> [URL] {
        ["", "." + Envelope.fileExtension].map { checkpoints.appendingPathComponent("\(runID).json\($0)") }
    }
    /// Per-step metrics, one JSON Lines file per run.
    var metrics: URL { directory.appendingPathComponent("metrics") }
    func metrics(_ runID: String) -> URL { metrics.appendingPathComponent("\(runID).jsonl") }
    /// Trained models, one safetensors file per finished run.
    var models: URL { directory.appendingPathComponent("models") }
    func model(_ runID: String) -> URL { models.appendingPathComponent("\(runID).safetensors\(suffix)") }
    /// Audit outputs (the membership-inference ROC), one file per audited run.
    var audits: URL { directory.appendingPathComponent("audits") }
    func roc(_ runID: String) -> URL { audits.appendingPathComponent("\(runID)-mia-roc.csv") }
    /// Pictures of a run (the backdoor's triggered examples), SVG.
    var pictures: URL { directory.appendingPathComponent("pictures") }
    func picture(_ runID: String, _ name: String) -> URL { pictures.appendingPathComponent("\(runID)-\(name).svg") }

    /// Makes sure `url` holds `header` as its first line: writes it into an empty file, cuts a
    /// trailing partial line, and refuses a file written with other columns.
    func prepare(_ url: URL, header: [String]) throws {
        try DurableFile.repairTrailingPartialLine(at: url)
        let text = try FileIO.readText(url.path) ?? ""
        if text.isEmpty {
            try DurableFile.append(CSV.line(header), to: url)
            return
        }
        let existing = CSV.parse(String(text.prefix { $0 != "\n" }) + "\n").first ?? []
        if existing != header {
            let missing = header.filter { !existing.contains($0) }, extra = existing.filter { !header.contains($0) }
            throw OutputError(
                "\(url.path) has other columns than this config writes (missing: \(missing.joined(separator: ", ")); unexpected: \(extra.joined(separator: ", "))); use another output directory",
                kind: .cannotCreateOutput)
        }
    }

    /// Data rows (header excluded) of a CSV file, or none when it does not exist.
    /// - Throws: `FileError` when it exists and cannot be read or is not UTF-8.
    func rows(_ url: URL) throws -> [[String]] {
        guard let text = try FileIO.readText(url.path) else { return [] }
        return Array(CSV.parse(text).dropFirst().filter { $0 != [""] })
    }

    /// Refuses to start a run whose id already has rows: a run is written once (another writer
    /// or a bug would otherwise duplicate it, and tables would count it twice).
    /// `epochsThrough`: a run continuing from its checkpoint keeps its epochs.csv rows up to that epoch.
    func checkNoRows(of runID: String, epochsThrough kept: Int = 0) throws {
        let header =
            try rows(epochs).isEmpty
            ? []
            : CSV.parse(String(decoding: FileManager.default.contents(atPath: epochs.path) ?? Data(), as: UTF8.self))
                .first ?? []
        let epochColumn = header.firstIndex(of: "epoch")
        let clash: (URL, [String]) -> Bool = { url, row in
            guard row.first == runID else { return false }
            if url == self.epochs, let c = epochColumn, c < row.count, let e = Int(row[c]), e <= kept { return false }
            return true
        }
        for url in [runs, epochs] where try rows(url).contains(where: { clash(url, $0) }) {
            throw OutputError(
                "\(url.path) already holds rows of run \(runID), which is about to run; a run is written once. Was the folder written by another process?"
            )
        }
    }

    /// Appends a `runs.csv` row after checking that its run id is not there yet.
    func appendRunRow(_ row: [String]) throws {
        if let id = row.first, try rows(runs).contains(where: { $0.first == id }) {
            throw OutputError(
                "\(runs.path) already holds run \(id); a run id is written once, so this row is not appended")
        }
        try DurableFile.append(CSV.line(row), to: runs)
    }

    /// Keeps the data rows for which `keep` holds; rewrites the file atomically if any is dropped.
    /// Returns the number of dropped rows.
    @discardableResult
    func filter(_ url: URL, header: [String], keep: ([String: String]) -> Bool) throws -> Int {
        let all = try rows(url)
        let kept = all.filter { fields in
            fields.count == header.count
                && keep(Dictionary(zip(header, fields).map { ($0, $1) }, uniquingKeysWith: { a, _ in a }))
        }
        guard kept.count != all.count else { return 0 }
        try DurableFile.writeAtomically(CSV.line(header) + kept.map(CSV.line).joined(), to: url)
        return all.count - kept.count
    }
}
