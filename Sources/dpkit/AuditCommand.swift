import ArgumentParser
import DPAuditing
import DPExperiments
import Foundation

/// `dpkit audit`: membership inference on the finished runs of a results folder, after the fact.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Membership-inference attacks (loss threshold, LiRA) on the trained models of a results folder.",
        discussion: """
            Attacks each finished run's exported model (models/<run_id>.safetensors) with EXAMPLES \
            training members against as many test examples. lira-online and lira-offline train \
            SHADOW-MODELS shadow models with the run's own config on random halves of the training \
            set plus the non-members (Carlini et al. 2022). Writes OUTPUT/membership.csv (AUC, TPR \
            at FPR 0.1% and 1%, balanced accuracy), OUTPUT/roc/<run_id>-<attack>.csv and the log-log \
            ROC figure OUTPUT/roc.svg. The audited folder is only read: OUTPUT must lie outside it. \
            The empirical epsilon lower bound of a run needs canaries planted while it trains: \
            add an audit: section to its config (docs/auditing.md).
            """)

    @Argument(help: "A results folder written by `dpkit run`.")
    var directory: String

    @Option(help: "Folder for the audit's files (outside the audited folder).")
    var output: String

    @Option(name: .customLong("run"), help: "Only this run (its run_id); repeat for several.")
    var runs: [String] = []

    @Option(
        name: .customLong("attack"),
        help: "loss, lira-online or lira-offline; repeat for several (default: loss).")
    var attacks: [String] = []

    @Option(help: "Shadow models for LiRA (at least 2; the paper uses 16 to 256).")
    var shadowModels = 8

    @Option(help: "Members and non-members each.")
    var examples = 1000

    @Option(help: "Seed of the evaluation set and the shadow models' data.")
    var seed: UInt64 = 0

    @Option(
        help:
            "Multi-run canary audit: dirac-gradient (white-box) or mislabelled (black-box); trains 2 x TRIALS runs of the config."
    )
    var canary: String?

    @Option(help: "Runs with the canary (and as many without it) for --canary.")
    var trials = 50

    @Option(help: "Confidence of the multi-run bound, in (0, 1).")
    var confidence = 0.95

    func validate() throws {
        if let canary, CanaryKind(rawValue: canary) == nil {
            throw ValidationError("unknown canary `\(canary)`: use dirac-gradient or mislabelled")
        }
        guard confidence > 0, confidence < 1 else {
            throw ValidationError(
                "--confidence \(confidence) is outside (0, 1): give the probability the bound holds, e.g. 0.95")
        }
        guard trials >= 2 else { throw ValidationError("--trials \(trials) must be at least 2") }
        for a in attacks where MembershipAudit.Attack(rawValue: a) == nil {
            throw ValidationError(
                "unknown attack `\(a)`: use \(MembershipAudit.Attack.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard examples >= 1 else { throw ValidationError("--examples \(examples) must be at least 1") }
        guard shadowModels >= 2 || attacks.allSatisfy({ $0 == "loss" }) else {
            throw ValidationError("--shadow-models \(shadowModels): LiRA needs at least 2")
        }
    }

    func run() throws {
        var options = MembershipAudit.Options()
        options.attacks = attacks.isEmpty ? [.loss] : attacks.compactMap(MembershipAudit.Attack.init(rawValue:))
        options.shadowModels = shadowModels
        options.examples = examples
        options.seed = seed
        let folder = URL(fileURLWithPath: directory)
        let out = URL(fileURLWithPath: output)
        do {
            try checkOutside(out, folder)
            if let canary, let kind = CanaryKind(rawValue: canary) {
                let audit = MultiRunCanaryAudit(
                    folder: folder, canary: kind, trials: trials, confidence: confidence, seed: seed,
                    log: { print($0) })
                print(
                    "wrote \(try MultiRunCanaryAudit.write(try audit.run(runIDs: runs), to: out, auditedFolder: folder).path)"
                )
                if attacks.isEmpty { return }
            }
            let audit = MembershipAudit(folder: folder, options: options, log: { print($0) })
            let results = try audit.run(runIDs: runs)
            for file in try MembershipAudit.write(results, to: out, auditedFolder: folder) {
                print("wrote \(file.path)")
            }
        } catch {
            throw reportFailure(error)
        }
    }
}
