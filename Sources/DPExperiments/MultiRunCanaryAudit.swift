import DPAuditing
import Foundation

/// The multi-run audit of a finished run's training algorithm (Jagielski, Ullman and Oprea
/// 2020; Nasr et al. 2021), after the fact (`dpkit audit RUN_DIR --canary ... --trials N`).
///
/// DPKit trains the run's config `2 N` more times, with its own seeds: N times with one canary
/// planted and N times without it (a Dirac gradient on one coordinate, the same in every run;
/// or one mislabelled example, otherwise removed, drawn from each run's data: for generated
/// data a different example each run, and the bound then holds for the algorithm run on data
/// drawn that way), scores the canary in each trained model as a one-run audit does, chooses a
/// threshold on the first half of the runs and bounds epsilon from the other half with
/// Clopper-Pearson intervals (``DPAuditing/MultiRunAudit``). The audited folder is only read.
public struct MultiRunCanaryAudit {
    public struct Result: Sendable {
        public var runID: String
        public var kind: String
        public var epsilon: Double?
        public var canary: CanaryKind
        public var bound: EmpiricalEpsilon
    }

    public var folder: URL
    public var canary: CanaryKind
    public var trials: Int
    public var confidence: Double
    public var seed: UInt64
    public var log: (String) -> Void

    public init(
        folder: URL, canary: CanaryKind, trials: Int, confidence: Double = 0.95, seed: UInt64 = 0,
        log: @escaping (String) -> Void = { _ in }
    ) {
        self.folder = folder
        self.canary = canary
        self.trials = trials
        self.confidence = confidence
        self.seed = seed
        self.log = log
    }

    /// - Throws: ``AuditError`` for fewer than 2 trials or a confidence outside
    ///   (0, 1); ``OutputError`` for a folder without finished runs.
    public func run(runIDs: [String] = []) throws -> [Result] {
        guard trials >= 2 else {
            throw AuditError(
                "--trials \(trials): a multi-run audit needs at least 2 runs with and 2 without the canary")
        }
        guard confidence > 0, confidence < 1 else {
            throw AuditError("confidence \(confidence) is outside (0, 1): give e.g. 0.95")
        }
        var results: [Result] = []
        let runs = try MembershipAudit.finishedRuns(in: folder, runIDs, requireModel: false)
        for run in runs { try MembershipAudit.refusePublicPart(run.id, run.config, audit: "a canary audit") }
        for run in runs {
            if run.config.privacy.enabled, run.config.privacy.sampling != .poisson {
                throw AuditError(
                    "run \(run.id) uses `\(run.config.privacy.sampling.rawValue)` sampling, accounted for replace-one; a canary audit tests add/remove-one DP, which Poisson sampling's accounting states: audit a run with `privacy.sampling: poisson`"
                )
            }
            var c = run.config
            c.audit = AuditConfig(
                canaries: canary, count: 1, confidence: confidence, membershipInference: false, miaExamples: 1,
                unclippedCanaryNorm: run.config.audit?.unclippedCanaryNorm ?? 1)
            var positives: [Double] = []
            var negatives: [Double] = []
            for t in 0..<(2 * trials) {
                let planted = t % 2 == 0
                c.seed = 2_000_000 + Int(seed % 1000) * 10_000 + t
                var context = RunContext()
                context.canaryInclusion = [planted]
                context.canarySeed = seed
                let trial = ResolvedRun(
                    index: t, config: c, runID: "\(run.id)-trial\(t)", configHash: c.configHash, seed: c.seed,
                    varyingValues: [], origin: "multi-run audit")
                let summary = try TrainingExecutor().execute(trial, context: context, progress: { _ in })
                guard let score = summary.audit?.canaryScores.first else {
                    throw AuditError("trial \(t) of run \(run.id) reported no canary score")
                }
                if planted { positives.append(score) } else { negatives.append(score) }
                log(
                    "\(run.id): trial \(t + 1)/\(2 * trials) (\(planted ? "with" : "without") the canary): score \(score)"
                )
            }
            let delta = run.config.privacy.targetDelta ?? 1e-5
            let bound = try MultiRunAudit.audit(
                positives: positives, negatives: negatives, delta: delta, confidence: confidence)
            log("\(run.id): \(bound.statement)")
            results.append(
                Result(runID: run.id, kind: run.config.kind.rawValue, epsilon: nil, canary: canary, bound: bound))
        }
        return results
    }

    public static let columns = [
        "run_id", "kind", "canary", "trials", "epsilon_lower_empirical", "delta", "confidence", "false_positives",
        "false_negatives", "selection",
    ]

    /// Writes `canary-audit.csv` into `output` (outside the audited folder).
    public static func write(_ results: [Result], to output: URL, auditedFolder: URL) throws -> URL {
        try checkOutside(output, auditedFolder)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        var text = CSV.line(columns)
        for r in results {
            text += CSV.line([
                r.runID, r.kind, r.canary.rawValue, String(r.bound.trials), csvNumber(r.bound.epsilon),
                csvNumber(r.bound.delta), csvNumber(r.bound.confidence), String(r.bound.counts["false_positives"] ?? 0),
                String(r.bound.counts["false_negatives"] ?? 0), r.bound.selection,
            ])
        }
        let url = output.appendingPathComponent("canary-audit.csv")
        try DurableFile.writeAtomically(text, to: url)
        return url
    }
}

/// Refuses an output folder inside the audited one: an audit never writes into what it audits.
/// `dpkit audit` calls it before any work, the writers again before writing.
public func checkOutside(_ output: URL, _ audited: URL) throws {
    let out = output.standardizedFileURL.resolvingSymlinksInPath().path
    let folder = audited.standardizedFileURL.resolvingSymlinksInPath().path
    if out == folder || out.hasPrefix(folder + "/") {
        throw OutputError(
            "--output \(output.path) is inside the audited folder \(audited.path): an audit never writes into the run it audits; give a folder outside it",
            kind: .usage)
    }
}
